"""The state database: its schema (migrated by Alembic), the batch state machine, batch records and
their files, the hash-chained ledger, what validation recorded, incremental watermarks, and how a
deployment names its source. Uses ``policy`` and ``extract`` (the staged files' records).
"""
