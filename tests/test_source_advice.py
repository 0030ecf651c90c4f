"""`handoff source advise`: the DDL a DBA runs makes the exclusion count read an index alone, and
changes nothing about what leaves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import POLICY_DIR, build_settings, cli_env, run_cli

from handoff.extract.advice import advise
from handoff.policy.order import Condition, PolicySet

pytestmark = pytest.mark.postgres


def _run_ddl(url: str, ddl: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")  # CREATE INDEX CONCURRENTLY: no transaction
    with engine.connect() as conn:
        for statement in ddl.split(";\n"):  # as a DBA's client runs the printed file
            code = "\n".join(x for x in statement.splitlines() if not x.startswith("--")).strip()
            if code:
                conn.exec_driver_sql(code)
    engine.dispose()


def _plan(url: str, sql: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # a 4,000-row table: show what the planner *can* use
        text = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
    engine.dispose()
    return text


def _jurisdiction_list_in_count(url: str, order: Any) -> bool:
    """Whether the exclusion count that a transfer of the order's whole scope runs tests the jurisdiction list."""
    from handoff.extract import reader as extract

    engine = extract.open_source(url)
    try:
        where = str(extract.plan(engine, order, None).counts(order, None).statement.whereclause)
    finally:
        engine.dispose()
    return 'submtg_state_cd" IN' in where


def _staged(url: str, home: Path) -> Any:
    from support import INITIATOR, NOW

    from handoff.staging.pipeline import StageRequest, stage_batch

    return stage_batch(build_settings(home), StageRequest(url, initiator=INITIATOR), NOW)


def test_the_advised_index_serves_the_exclusion_count_and_changes_nothing_that_leaves(
    make_source: Any, tmp_path: Path
) -> None:
    from handoff_tools.bench_source import statements

    url = make_source("postgresql")
    order = PolicySet(POLICY_DIR).current()
    before = _staged(url, tmp_path / "before")
    assert _jurisdiction_list_in_count(url, order) is False  # no index: grouping leaves out the other states
    res = run_cli("source", "advise", "--db", url, env=cli_env(tmp_path / "h"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "CREATE INDEX CONCURRENTLY" in res.stdout and "VACUUM ANALYZE" in res.stdout
    _run_ddl(url, res.stdout)

    # With the index the list stays: PostgreSQL takes it as the index's condition (without it, the
    # planner prices reading the whole index above the table's seq scan, and reads the table).
    assert _jurisdiction_list_in_count(url, order) is True
    engine = sa.create_engine(url)
    counts_sql = statements(engine, order)["counts_sql"]
    engine.dispose()
    plan = _plan(url, counts_sql)
    assert f"Index Only Scan using {advise(order).name}" in plan, plan

    after = _staged(url, tmp_path / "after")
    assert after.status == before.status == "staged"
    assert after.content_hash == before.content_hash, "an index must never change what leaves"
    assert after.excluded == before.excluded and after.rows_staged == before.rows_staged


def test_the_advice_follows_the_order_in_force() -> None:
    order = PolicySet(POLICY_DIR).current()
    first = advise(order)
    assert first.key[0] == order.source.jurisdiction_column
    assert set(first.key[1:]) == {c.column for c in order.population.all_of}
    assert first.include == [order.source.updated_column]
    extra = Condition(column="chip_cd", **{"in": ["0"]}, reason="not_chip", explain="CHIP enrollees excluded")
    wider = order.model_copy(update={"population": order.population.model_copy(
        update={"all_of": [*order.population.all_of, extra]})})  # fmt: skip
    second = advise(wider)
    assert second.key == [*first.key, "chip_cd"] and "chip_cd" in second.statistics
    assert second.name != first.name, "another set of columns must not reuse the first index's name"


def test_advice_for_an_unmeasured_database_is_refused_in_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "h")
    res = run_cli("source", "advise", "--db", f"sqlite:///{tmp_path / 'x.db'}", env=env, cwd=tmp_path)
    assert res.returncode == 2 and "measured on PostgreSQL only" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.db").exists(), "advice never connects to the source"
    listed = run_cli("source", "advise", "--json", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert doc["index"].startswith("handoff_population_") and doc["sql"].count(doc["index"]) == 2
