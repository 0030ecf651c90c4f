"""The raw-grouped and coded exclusion aggregates count exactly what the per-row CASE aggregate counts.

Adversarial data on each source dialect: nulls in every condition's column and the jurisdiction,
unknown codes (padded and case-shifted ones too, which MariaDB's collations compare loosely),
unknown and out-of-scope jurisdictions, and a requested state the order excludes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from support import POLICY_DIR

from handoff.extract import reader as extract
from handoff.policy.order import PolicySet
from handoff_tools.seed import seed_database

ORDER = PolicySet(POLICY_DIR).current()
TX_OUT = ORDER.model_copy(
    update={"jurisdiction_scope": ORDER.jurisdiction_scope.model_copy(update={"overrides": {"TX": "excluded"}})}
)
# The null test first, the list conditions after: the coded form must still give each row the
# first condition it fails, in the order's order.
NULL_TEST_FIRST = ORDER.model_copy(
    update={"population": ORDER.population.model_copy(
        update={"all_of": [ORDER.population.all_of[-1], *ORDER.population.all_of[:-1]]})}
)  # fmt: skip
PLANTS = [
    ("ctznshp_ind", None), ("ctznshp_ind", "9"), ("ctznshp_ind", "0 "), ("imgrtn_stus_cd", None),
    ("imgrtn_stus_cd", "X"), ("imgrtn_stus_cd", "3 "), ("imgrtn_stus_cd", ""), ("imgrtn_vrfctn_ind", None),
    ("imgrtn_vrfctn_ind", "7"), ("submtg_state_cd", None), ("submtg_state_cd", "99"), ("submtg_state_cd", "XX"),
    ("submtg_state_cd", "06 "), ("imgrtn_stus_5_yr_bar_end_dt", "2030-01-01"),
]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def adversarial_url(request: pytest.FixtureRequest, make_source: Any) -> str:
    if request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        engine = extract.open_source(url, must_exist=False)
        seed_database(engine, 3000, 11, replace=True, dirty_rate=0.05)
        engine.dispose()
    else:
        url = make_source(request.param, rows=3000, seed=11, dirty_rate=0.05)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        ids = conn.execute(sa.text("SELECT msis_ident_num FROM enrollees WHERE ctznshp_ind = '0' AND "
                                   "imgrtn_stus_cd = '3' ORDER BY msis_ident_num")).scalars().all()  # fmt: skip
        for i, (column, value) in zip(ids, PLANTS * 3, strict=False):
            conn.execute(sa.text(f"UPDATE enrollees SET {column} = :v WHERE msis_ident_num = :i"), {"v": value, "i": i})
    engine.dispose()
    return url


def _both(engine: sa.Engine, order: Any, requested: list[str] | None, **window: Any) -> tuple[Any, Any]:
    """The per-row CASE's counts, and the raw-grouped ones (after checking the coded form's equal them)."""
    table = extract.source_table(engine, order)
    raw = extract.exact_text_columns(engine, order)
    with engine.connect() as conn:
        case = extract.read_counts(conn, extract.counts_statement(table, order, requested, form="case", **window))
        grouped = extract.read_counts(conn, extract.counts_statement(table, order, requested, raw=raw, **window))
        coded = extract.read_counts(
            conn, extract.counts_statement(table, order, requested, raw=raw, form="coded", **window)
        )
    assert coded == grouped, (requested, window)
    return case, grouped


@pytest.mark.postgres
def test_raw_grouped_counts_equal_the_case_aggregate(adversarial_url: str) -> None:
    engine = extract.open_source(adversarial_url)
    try:
        raw = extract.exact_text_columns(engine, ORDER)
        codes = {"ctznshp_ind", "imgrtn_stus_cd", "imgrtn_vrfctn_ind", "submtg_state_cd"}
        assert raw == (frozenset() if engine.dialect.name == "mysql" else codes), raw  # MariaDB: the DB judges
        # handoff runs the coded form, except on MariaDB (its collations: the database judges each condition).
        assert extract.counts_form(engine) == ("raw-grouped" if engine.dialect.name == "mysql" else "coded")
        # Every read counts through its plan, so the fast path and partitions run that form too.
        the_plan = extract.plan(engine, ORDER, None)
        assert the_plan.form == extract.counts_form(engine)
        grouped_on = [c.name for c in the_plan.counts(ORDER, None).statement.selected_columns]
        assert ("code" in grouped_on) == (engine.dialect.name != "mysql"), grouped_on
        # The newest change of all is on rows no count may include: a bad jurisdiction, and Texas (TX_OUT).
        with engine.begin() as conn:
            for state, year in (("99", 2032), ("48", 2031)):
                conn.execute(sa.text("UPDATE enrollees SET updated_at = :t WHERE submtg_state_cd = :s"),
                             {"t": dt.datetime(year, 1, 1), "s": state})  # fmt: skip
        # The plan counts the order's whole scope: grouped on an exactly compared jurisdiction, with no
        # jurisdiction list in its WHERE (the groups outside are left out as they are read).
        whole = the_plan.counts(ORDER, None)
        assert (whole.jurisdictions is None) == (engine.dialect.name == "mysql")
        assert ('submtg_state_cd" IN' in str(whole.statement.whereclause)) == (engine.dialect.name == "mysql")
        narrower = the_plan.counts(ORDER, ["06"])  # one state: its list spares the other states' rows the CASE
        assert narrower.jurisdictions is None and 'submtg_state_cd" IN' in str(narrower.statement.whereclause)
        requests: list[tuple[Any, list[str] | None]] = [
            (ORDER, None), (ORDER, ["06"]), (ORDER, ["06", "48"]), (TX_OUT, ["06", "48"]), (TX_OUT, None),
            (NULL_TEST_FIRST, None), (ORDER, ORDER.in_scope_fips()), (TX_OUT, TX_OUT.in_scope_fips()),
        ]  # fmt: skip
        for order, requested in requests:
            case, grouped = _both(engine, order, requested)
            assert grouped == case, (order.jurisdiction_scope.overrides, requested)
        for order in (ORDER, TX_OUT):  # the order's whole scope: no change outside it is the newest
            counts, newest = _both(engine, order, order.in_scope_fips())[1]
            if order is TX_OUT:
                assert "TX" not in counts and newest is not None and newest < dt.datetime(2031, 1, 1), newest
            else:
                assert counts["TX"] and newest == dt.datetime(2031, 1, 1), newest
        window = {"since": dt.datetime(2025, 1, 1), "until": dt.datetime(2025, 9, 1)}
        assert _both(engine, ORDER, None, **window)[0] == _both(engine, ORDER, None, **window)[1]
        case, _ = _both(engine, TX_OUT, None)
        reasons = {r for per_state in case[0].values() for r in per_state}
        assert {"unknown_jurisdiction", "out_of_scope", "null_ctznshp_ind", "lawful_status_category",
                "five_year_bar_date", "included"} <= reasons  # the data really is adversarial  # fmt: skip
    finally:
        engine.dispose()
