-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- The server's own database (POSTGRES_DB=prefect) is created by the image itself.
CREATE DATABASE handoff_state;   -- HANDOFF_STATE_URL: batches, approvals, ledger
CREATE DATABASE handoff_source;  -- synthetic source records for local runs (seed it first)
