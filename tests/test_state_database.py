"""The state database on PostgreSQL and MariaDB: a full delivery is recorded and the ledger verifies."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from support import NOW, approve, build_settings, ledger_kinds, record_upheld, transfer

from handoff import ledger
from handoff.transfer import Lifecycle


@pytest.fixture(params=["postgresql", "mariadb"])
def state_url(request: pytest.FixtureRequest) -> str:
    """An empty database (PostgreSQL: a new schema) holding nothing but handoff's state."""
    if request.param == "postgresql":
        base = request.getfixturevalue("pg_database")
        schema = f"state_{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        engine.dispose()
        return f"{base}?options=-csearch_path%3D{schema}"
    server = request.getfixturevalue("mariadb_url").rsplit("/", 1)[0]
    name = f"handoff_state_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(f"{server}/test")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    request.addfinalizer(lambda: _drop_mariadb(engine, name))
    return f"{server}/{name}"


def _drop_mariadb(engine: sa.Engine, name: str) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    engine.dispose()


@pytest.mark.postgres
def test_full_delivery_with_state_on_a_server_database(state_url: str, sqlite_source_url: str, s3, tmp_path) -> None:
    settings = build_settings(tmp_path / "home", state_url=state_url, bucket=s3.name, kms_key_id=s3.kms_key_id)
    life = Lifecycle(settings)
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    assert batch.status == "held"
    assert len(batch.jurisdictions) == 51  # every state and DC: the widest watermark key
    record_upheld(life)
    approve(life, batch.id, "ada", NOW)

    [done] = life.release(NOW)

    assert done.batch.status == "delivered"
    assert len(s3.object_keys()) == len(batch.files) + 1
    assert ledger_kinds(life, batch.id).count("delivered") == 1
    assert life.watermark(batch.order_id, batch.jurisdictions) is not None
    with life.engine.connect() as conn:
        assert ledger.verify(conn).ok
    assert not (tmp_path / "home" / "state.db").exists()
    life.engine.dispose()
