"""The Alembic migrations build exactly the schema the code declares, on every state dialect."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from support import unavailable

from handoff.state.schema import metadata, open_state


def _diffs(url: str) -> list[object]:
    engine = open_state(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))


def test_sqlite_state_schema_matches_the_declared_tables(tmp_path: Path) -> None:
    assert _diffs(f"sqlite:///{tmp_path / 'state.db'}") == []


@pytest.mark.postgres
def test_postgres_state_schema_matches_the_declared_tables() -> None:
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    name = "handoff_migration_check"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable: {exc.orig}")
    try:
        assert _diffs(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}") == []
    finally:
        sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}").dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_the_head_revision_handoff_checks_for_is_alembics_newest(tmp_path: Path) -> None:
    """A database at head opens without Alembic; the constant it compares with is the newest migration."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from handoff.state.schema import _MIGRATIONS, HEAD_REVISION, open_state

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD_REVISION
