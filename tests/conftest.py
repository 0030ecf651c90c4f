"""Fixtures that build real things: seeded SQLite and PostgreSQL sources, settings, moto's S3 server.

Sources seeded once per session are shared by tests that only read them; a test that changes
its source (adds a column, plants a value) asks for ``fresh_source_url`` instead.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Telemetry off before anything imports Great Expectations or Prefect.
os.environ["GX_ANALYTICS_ENABLED"] = "False"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
KEPT = ("HANDOFF_SCREENSHOTS", "HANDOFF_REQUIRE_SERVICES")  # where CI keeps screenshots; CI's "no skipping"
for _k in [k for k in os.environ if k.startswith("HANDOFF_") and k not in KEPT]:
    del os.environ[_k]  # an operator's HANDOFF_BUCKET etc. must not steer the tests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from support import DIRTY_RATE, ROWS, SEED, build_settings, unavailable  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"

SOURCE_KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def pytest_configure(config: pytest.Config) -> None:
    # GX's pandas regex metrics warn about our (deliberately portable) match groups on every chunk.
    config.addinivalue_line("filterwarnings", "ignore:This pattern is interpreted as a regular expression:UserWarning")


@pytest.fixture(scope="session", autouse=True)
def _no_config_file(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["HANDOFF_CONFIG"] = str(tmp_path_factory.mktemp("cfg") / "absent.toml")


# ----- PostgreSQL ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database for this session, dropped at the end; skips when PostgreSQL is down."""
    name = f"handoff_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc.orig}")
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


SourceFactory = Callable[..., str]


@pytest.fixture(scope="session")
def make_source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SourceFactory:
    """Seed a new source of ``kind`` and return its URL.

    SQLite: a new file. PostgreSQL: a new schema in the session database, selected through
    ``search_path`` in the URL, so the product sees a plain ``enrollees`` table.
    """
    from handoff.extract.reader import open_source
    from handoff_tools.seed import seed_database

    shared: dict[tuple[Any, ...], str] = {}

    def factory(kind: str, rows: int = ROWS, seed: int = SEED, dirty_rate: float = DIRTY_RATE,
                share: bool = False) -> str:  # fmt: skip
        key = (kind, rows, seed, dirty_rate)
        if share and key in shared:
            return shared[key]
        tag = uuid.uuid4().hex[:8]
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('source') / f'source-{tag}.db'}"
        elif kind == "postgresql":
            base = request.getfixturevalue("pg_database")
            engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "src_{tag}"')
            engine.dispose()
            url = f"{base}?options=-csearch_path%3Dsrc_{tag}"
        else:
            raise ValueError(kind)
        engine = open_source(url, must_exist=False)
        seed_database(engine, rows, seed, replace=True, dirty_rate=dirty_rate)
        engine.dispose()
        if share:
            shared[key] = url
        return url

    return factory


@pytest.fixture(scope="session", params=SOURCE_KINDS)
def source_url(request: pytest.FixtureRequest, make_source: SourceFactory) -> str:
    """A seeded source shared by the session: do not change it."""
    return make_source(request.param, share=True)


@pytest.fixture(params=SOURCE_KINDS)
def fresh_source_url(request: pytest.FixtureRequest, make_source: SourceFactory) -> str:
    """A seeded source of this test's own, free to change."""
    return make_source(request.param)


@pytest.fixture(scope="session")
def sqlite_source_url(make_source: SourceFactory) -> str:
    """The shared SQLite source, for tests about *when* data leaves, where the database is incidental."""
    return make_source("sqlite", share=True)


@pytest.fixture(scope="session")
def crowded_source_url(make_source: SourceFactory) -> str:
    """A small SQLite source where nearly everyone is in the population: one batch spans several files."""
    from support import execute

    url = make_source("sqlite", rows=2500)
    execute(url, "UPDATE enrollees SET ctznshp_ind = '0', imgrtn_stus_cd = '3', imgrtn_vrfctn_ind = '1', "
                 "imgrtn_stus_5_yr_bar_end_dt = NULL")  # fmt: skip
    return url


@pytest.fixture(scope="session")
def pg_source_url(make_source: SourceFactory) -> str:
    """The shared PostgreSQL source, for tests about PostgreSQL alone (mark them ``postgres``)."""
    return make_source("postgresql", share=True)


# ----- settings --------------------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path: Path) -> Any:
    return build_settings(tmp_path / "home")


@pytest.fixture(scope="session")
def staged(source_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, str]:
    """(settings, batch, source URL): one batch staged from each shared source, read-only."""
    from support import INITIATOR, NOW

    from handoff.staging.pipeline import StageRequest, stage_batch

    settings = build_settings(tmp_path_factory.mktemp("staged-home"))
    batch = stage_batch(settings, StageRequest(source_url, initiator=INITIATOR), NOW)
    return settings, batch, source_url


# ----- S3 through moto's real HTTP server -----------------------------------------------------------
@dataclass
class Bucket:
    name: str
    kms_key_id: str
    endpoint: str
    client: Any

    def object_keys(self) -> list[str]:
        res = self.client.list_objects_v2(Bucket=self.name)
        return sorted(o["Key"] for o in res.get("Contents", []))

    def listing(self) -> dict[str, tuple[str, Any]]:
        res = self.client.list_objects_v2(Bucket=self.name)
        return {o["Key"]: (o["ETag"], o["LastModified"]) for o in res.get("Contents", [])}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    from handoff_tools import emulator

    local = emulator.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def s3(s3_server: Any) -> Bucket:
    """A new bucket and KMS key on the session's moto server."""
    import boto3

    from handoff_tools import emulator

    name = f"handoff-test-{uuid.uuid4().hex[:12]}"
    key = emulator.create_bucket(s3_server, name)
    return Bucket(name, key, s3_server.endpoint, boto3.client("s3", region_name="us-east-1"))


@pytest.fixture
def audit_bucket(s3_server: Any) -> str:
    """A new Object Lock bucket for one state database's anchors and stop markers."""
    from handoff_tools import emulator

    name = f"handoff-audit-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(s3_server, name, object_lock=True)
    return name


@pytest.fixture
def delivery_settings(tmp_path: Path, s3: Bucket, audit_bucket: str) -> Any:
    return build_settings(tmp_path / "home", bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket)


@pytest.fixture
def life(delivery_settings: Any) -> Any:
    from handoff.transfer import Lifecycle

    lc = Lifecycle(delivery_settings)
    yield lc
    lc.engine.dispose()


# ----- MariaDB ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A fresh MariaDB database for this session; skips when MariaDB is unreachable."""
    name = f"handoff_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(MARIADB_URL)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    except (sa.exc.OperationalError, ModuleNotFoundError) as exc:
        unavailable(f"MariaDB not reachable on 127.0.0.1:3306: {exc}")
    try:
        yield MARIADB_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


# ----- state on a server database -----------------------------------------------------------------
@pytest.fixture(params=["postgresql", "mariadb"])
def server_state_url(request: pytest.FixtureRequest) -> str:
    """An empty server database (PostgreSQL: a new schema; MariaDB: a new database) for handoff's state."""
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


# ----- Prefect ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for every test that runs a flow in-process."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
