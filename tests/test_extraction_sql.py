"""The extraction statement: permitted columns only, never ``*``, bound parameters, never ``claims``."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from support import DENIED, INITIATOR, NOW, POLICY_DIR

from handoff import extract
from handoff.order import PolicySet
from handoff.pipeline import StageRequest, stage_batch

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
    for sql in (str(compiled), the_plan.sql):
        assert not re.search(r"'[^']*'", sql), f"a literal is inlined in the SQL: {sql}"
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


def test_a_whole_transfer_never_touches_claims_or_selects_star(source_url: str, settings) -> None:
    seen: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if conn.engine.url.render_as_string(hide_password=False) == sa.make_url(source_url).render_as_string(
            hide_password=False
        ):
            seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", capture)
    try:
        batch = stage_batch(settings, StageRequest(source_url, initiator=INITIATOR), NOW)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", capture)

    assert batch.status == "staged"
    assert seen, "no statement against the source was observed"
    for statement in seen:
        low = statement.lower()
        assert "claims" not in low
        assert not re.search(r"select\s+\*|\.\*", low), statement
    data_reads = [s for s in seen if "elgbl_phne_num_home" in s]
    assert data_reads and all("ssn_num" not in s and "race" not in s for s in data_reads)
