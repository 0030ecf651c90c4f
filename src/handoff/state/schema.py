"""The state database: batches, files, row quarantine, ledger, calendar, approvals, deliveries.

Portable SQLAlchemy Core over SQLite (default), PostgreSQL and MariaDB. The schema is owned
by Alembic (``handoff/migrations``); ``open_state`` upgrades to head before first use.
Times are stored as ISO-8601 UTC text so every dialect round-trips them identically.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from handoff.errors import StateError
from handoff.urls import safe_url

metadata = sa.MetaData()

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("order_ref", sa.String(128), nullable=False),
    sa.Column("order_id", sa.String(120), nullable=False),
    sa.Column("order_version", sa.Integer, nullable=False),
    sa.Column("policy_hash", sa.String(64), nullable=False),
    sa.Column("suite_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("status_reason", sa.Text),
    sa.Column("initiator", sa.String(120), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("jurisdictions", sa.JSON, nullable=False),
    sa.Column("source_url", sa.Text, nullable=False),
    sa.Column("source_tables", sa.JSON, nullable=False),
    sa.Column("query_sql", sa.Text, nullable=False),
    sa.Column("query_hash", sa.String(64), nullable=False),
    sa.Column("snapshot_at", sa.String(40), nullable=False),
    sa.Column("since", sa.String(40)),
    sa.Column("watermark", sa.String(40)),
    sa.Column("rows_extracted", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_staged", sa.BigInteger, nullable=False, default=0),
    sa.Column("excluded", sa.JSON, nullable=False),
    sa.Column("quarantined_by_rule", sa.JSON, nullable=False),
    sa.Column("validation", sa.JSON, nullable=False),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("staging_path", sa.Text),
    sa.Column("flow_run_id", sa.String(64)),
    sa.Column("bucket", sa.String(63)),
    sa.Column("initiator_key", sa.String(64)),
    sa.Column("request_statement", sa.Text),
    sa.Column("request_signature", sa.Text),
    sa.Column("lease_owner", sa.String(120)),
    sa.Column("lease_until", sa.String(40)),
)

batch_files = sa.Table(
    "batch_files",
    metadata,
    sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.id"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
)

row_quarantine = sa.Table(
    "row_quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.id"), nullable=False, index=True),
    sa.Column("medicaid_id", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(120), nullable=False),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("batch_id", sa.String(64), index=True),
    sa.Column("order_ref", sa.String(128)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

hearings = sa.Table(
    "hearings",
    metadata,
    sa.Column("id", sa.String(120), primary_key=True),
    sa.Column("order_id", sa.String(120), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("added_by", sa.String(120), nullable=False),
    sa.Column("added_at", sa.String(40), nullable=False),
    sa.Column("outcome", sa.String(20)),
    sa.Column("outcome_by", sa.String(120)),
    sa.Column("outcome_at", sa.String(40)),
    sa.Column("outcome_order_ref", sa.String(128)),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.id"), nullable=False, index=True),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("approver", sa.String(120), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("policy_hash", sa.String(64), nullable=False),
    sa.Column("order_ref", sa.String(128), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("key_fingerprint", sa.String(64)),
    sa.Column("statement", sa.Text),
    sa.Column("signature", sa.Text),
    sa.Column("expires_at", sa.String(40)),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.id"), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("bucket", sa.String(63), nullable=False),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("completed_at", sa.String(40)),
    sa.Column("manifest_key", sa.Text),
    sa.Column("objects", sa.JSON),
)

watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("order_id", sa.String(120), primary_key=True),
    # The key joins every jurisdiction of the batch ("AL,AK,...": 152 characters for all 51).
    sa.Column("jurisdiction", sa.String(255), primary_key=True),
    sa.Column("watermark", sa.String(40), nullable=False),
    sa.Column("batch_id", sa.String(64), nullable=False),
)


# One row, locked by every ledger append (see ``ledger.append``).
ledger_lock = sa.Table("ledger_lock", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime; pass an aware one")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


_MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
# The newest revision in migrations/versions (a test holds the two together). A database already at
# it is opened without loading Alembic (a quarter of a second of every command's start).
HEAD_REVISION = "0004"
_UPGRADED: set[str] = set()


def _at_head(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
    except sa.exc.DBAPIError:  # no such table yet: a new database
        return False


def upgrade(engine: Engine) -> None:
    """Bring the state schema to the newest Alembic revision."""
    if _at_head(engine):
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_state(url: str) -> Engine:
    """Engine for the state database, migrated to head once per process."""
    try:
        engine = sa.create_engine(url, future=True)
        if engine.dialect.name == "sqlite":
            _serialise_sqlite_writers(engine)
        if url not in _UPGRADED:
            upgrade(engine)
            _UPGRADED.add(url)
    except sa.exc.OperationalError as exc:
        raise StateError(f"cannot open the state database {safe_url(url)}: {exc.orig}") from None
    except (sa.exc.ArgumentError, ValueError):
        # The parser's message quotes the URL, password and all: name the URL without it.
        raise StateError(f"bad state database URL {safe_url(url)}; check HANDOFF_STATE_URL "
                         "(dialect+driver://user@host:port/database)") from None  # fmt: skip
    return engine


def _serialise_sqlite_writers(engine: Engine) -> None:
    """Every SQLite transaction takes the write lock up front (BEGIN IMMEDIATE).

    Gates are re-checked in the transaction that starts an upload; on SQLite this makes that
    check and the "delivering" ledger row atomic against another process doing the same.
    """

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = 30000")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def lock_for_decision(conn: sa.Connection) -> None:
    """Serialise writers that read state and then append to the ledger (appends, upload start, approval).

    Every dialect locks the same single row; SQLite's BEGIN IMMEDIATE already holds the write lock.
    The lock lasts until the transaction ends, so the read and the append that follows are atomic.
    """
    if conn.dialect.name != "sqlite":
        conn.execute(sa.select(ledger_lock.c.id).where(ledger_lock.c.id == 1).with_for_update())
