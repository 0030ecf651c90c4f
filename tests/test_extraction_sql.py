"""The extraction statement: permitted columns only, never ``*``, bound parameters, never ``claims``."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from support import DENIED, INITIATOR, NOW, POLICY_DIR, build_settings

from handoff.extract import reader as extract
from handoff.policy.order import PolicySet
from handoff.staging.pipeline import StageRequest, stage_batch

FILTER_INPUTS = {"imgrtn_vrfctn_ind", "imgrtn_stus_5_yr_bar_end_dt", "submtg_state_cd", "updated_at"}


@pytest.fixture
def order():
    return PolicySet(POLICY_DIR).current()


@pytest.fixture
def plan(source_url: str, order):
    engine = extract.open_source(source_url)
    yield engine, extract.plan(engine, order, None)
    engine.dispose()


def _identifiers(sql: str) -> list[str]:
    """Quoted column identifiers in order of appearance (the table name left out)."""
    return [n for n in re.findall(r'["`]([a-z_0-9]+)["`]', sql) if n != "enrollees"]


def test_statement_selects_exactly_the_permitted_columns(plan, order) -> None:
    _, the_plan = plan
    assert [c.name for c in the_plan.statement.selected_columns] == order.columns


def test_sql_never_uses_star_or_claims_and_names_no_denied_output(plan, order) -> None:
    engine, the_plan = plan
    compiled = the_plan.statement.compile(dialect=engine.dialect)
    for sql in (str(compiled), the_plan.sql):
        assert "*" not in sql
        assert "claims" not in sql.lower()
        select_list = sql.split("FROM", 1)[0]
        assert select_list.startswith("SELECT ")
        assert _identifiers(select_list) == order.columns
        named = set(_identifiers(sql))
        assert named <= set(order.columns) | FILTER_INPUTS
        leaked = named & (set(DENIED) - FILTER_INPUTS)
        assert not leaked


def test_sql_binds_every_value_as_a_parameter(plan) -> None:
    engine, the_plan = plan
    compiled = the_plan.statement.compile(dialect=engine.dialect)
    values = {repr(v) for v in compiled.params.values()}
    assert any("'0'" in v for v in values) and any("'3'" in v for v in values) and any("'1'" in v for v in values)
    assert any("'06'" in v for v in values), "jurisdictions are bound, not inlined"
    sql = str(compiled)
    assert not re.search(r"'[^']*'", sql), f"a literal is inlined in the SQL that runs: {sql}"
    # What lineage shows is that statement with its values written in (no placeholders to decode).
    assert "'06'" in the_plan.sql and "POSTCOMPILE" not in the_plan.sql
    # The statement still runs with only bound values.
    with engine.connect() as conn:
        assert conn.execute(the_plan.statement.limit(1)).first() is not None


def test_query_hash_is_stable_and_tracks_the_statement(source_url: str, order, plan) -> None:
    engine, the_plan = plan
    again = extract.plan(engine, order, None)
    assert again.query_hash == the_plan.query_hash and again.sql == the_plan.sql
    narrowed = extract.plan(engine, order, ["06"])
    assert narrowed.query_hash != the_plan.query_hash
    assert narrowed.jurisdictions == ["CA"]


@pytest.fixture
def source_statements(source_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every SQL text sent to the source: through SQLAlchemy, and through ADBC on PostgreSQL's fast path."""
    seen: list[str] = []
    target = sa.make_url(source_url).render_as_string(hide_password=False)

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if conn.engine.url.render_as_string(hide_password=False) == target:
            seen.append(statement)

    try:
        from adbc_driver_manager import dbapi as adbc_dbapi

        real_execute = adbc_dbapi.Cursor.execute

        def adbc_execute(self, operation, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(str(operation))
            return real_execute(self, operation, *args, **kwargs)

        monkeypatch.setattr(adbc_dbapi.Cursor, "execute", adbc_execute)
    except ImportError:
        pass
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", capture)
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", capture)


@pytest.mark.parametrize("fast_path", [True, False], ids=["default-path", "portable-path"])
def test_a_whole_transfer_never_touches_claims_or_selects_star(
    source_url: str, tmp_path, source_statements: list[str], fast_path: bool
) -> None:
    settings = build_settings(tmp_path / "home", fast_path=fast_path)
    batch = stage_batch(settings, StageRequest(source_url, initiator=INITIATOR), NOW)

    assert batch.status == "staged"
    assert source_statements, "no statement against the source was observed"
    for statement in source_statements:
        low = statement.lower()
        assert "claims" not in low
        assert not re.search(r"select\s+\*|\.\*", low), statement
    order = PolicySet(POLICY_DIR).current()
    data_reads = [s for s in source_statements if "elgbl_phne_num_home" in s and "count(" not in s.lower()]
    assert len(data_reads) == 1
    select_list = data_reads[0].split("FROM", 1)[0]
    assert _identifiers(select_list) == order.columns


@pytest.mark.postgres
def test_postgres_fast_and_portable_paths_stage_identical_files(pg_source_url: str, tmp_path) -> None:
    source_url = pg_source_url
    request = StageRequest(source_url, initiator=INITIATOR)
    fast = stage_batch(build_settings(tmp_path / "fast", fast_path=True), request, NOW)
    portable = stage_batch(build_settings(tmp_path / "portable", fast_path=False), request, NOW)
    assert fast.status == portable.status == "staged"
    assert fast.content_hash == portable.content_hash
    assert fast.excluded["totals"] == portable.excluded["totals"]
    assert fast.rows_quarantined == portable.rows_quarantined


@pytest.mark.postgres
def test_source_sessions_take_their_parallel_workers_from_configuration(pg_source_url: str, tmp_path) -> None:
    from handoff.extract.snapshot import open_read

    order = PolicySet(POLICY_DIR).current()
    engine = extract.open_source(pg_source_url)
    read = open_read(engine, order, None, None, fast=True, parallel=3)
    try:
        assert read.kind.startswith("PostgreSQL snapshot")
        conn, cur = read._rows  # the ADBC row session, joined to the snapshot
        cur.execute("SELECT current_setting('max_parallel_workers_per_gather')")
        assert cur.fetchone()[0] == "3"
        assert read.conn.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar() == "3"
    finally:
        read.counts()
        read.close()
    settings = build_settings(tmp_path / "home", source_parallel=0)
    batch = stage_batch(settings, StageRequest(pg_source_url, initiator=INITIATOR), NOW)
    assert batch.validation["read_path"].startswith("PostgreSQL snapshot")
    portable = stage_batch(build_settings(tmp_path / "p", fast_path=False), StageRequest(pg_source_url), NOW)
    assert portable.validation["read_path"].startswith("portable")
