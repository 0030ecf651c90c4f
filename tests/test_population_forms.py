"""Who is excluded, and why, is the same in every form the exclusion aggregate takes.

One row per reason (and one included row), each failing exactly the condition it is named for, plus
rows that fail several (the first reason in the order's precedence wins). Pure: an in-memory SQLite
table and the order in force; the CASE form, the coded form and the raw-grouped form are each run and
must name every row's reason alike, as a person reading `policy whatif` expects.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from support import POLICY_DIR

from handoff.policy.order import PolicySet
from handoff.policy.population import (
    INCLUDED,
    OUT_OF_SCOPE,
    UNKNOWN_JURISDICTION,
    grouping,
    null_reason,
    reason_code_expression,
    reason_labels,
    where_clause,
)

ORDER = PolicySet(POLICY_DIR).current()
IN_SCOPE = sorted(ORDER.in_scope_fips())[0]
GOOD = {"ctznshp_ind": "0", "imgrtn_stus_cd": "3", "imgrtn_vrfctn_ind": "1", "imgrtn_stus_5_yr_bar_end_dt": None}
ROWS: list[tuple[str, dict[str, Any]]] = [
    (INCLUDED, {}),
    (UNKNOWN_JURISDICTION, {"submtg_state_cd": None}),
    (UNKNOWN_JURISDICTION, {"submtg_state_cd": "99"}),
    (UNKNOWN_JURISDICTION, {"submtg_state_cd": "99", "ctznshp_ind": "1"}),  # the jurisdiction is judged first
    ("citizen_or_national", {"ctznshp_ind": "1"}),
    (null_reason(ORDER.population.all_of[0]), {"ctznshp_ind": None}),
    ("lawful_status_category", {"imgrtn_stus_cd": "1"}),
    (null_reason(ORDER.population.all_of[1]), {"imgrtn_stus_cd": None}),
    ("status_not_verified", {"imgrtn_vrfctn_ind": "0"}),
    (null_reason(ORDER.population.all_of[2]), {"imgrtn_vrfctn_ind": None}),
    ("five_year_bar_date", {"imgrtn_stus_5_yr_bar_end_dt": "2027-01-01"}),
    ("citizen_or_national", {"ctznshp_ind": "1", "imgrtn_stus_cd": "1"}),  # the first condition wins
    ("lawful_status_category", {"imgrtn_stus_cd": "2", "imgrtn_stus_5_yr_bar_end_dt": "2027-01-01"}),
]
OUT = sorted(set(__import__("handoff.policy.source_model", fromlist=["STATES"]).STATES) - set(ORDER.in_scope_fips()))
if OUT:
    ROWS.append((OUT_OF_SCOPE, {"submtg_state_cd": OUT[0]}))


@pytest.fixture(scope="module")
def table() -> Any:
    engine = sa.create_engine("sqlite://")
    meta = sa.MetaData()
    t = sa.Table("enrollees", meta, sa.Column("n", sa.Integer, primary_key=True), sa.Column("submtg_state_cd", sa.Text),
                 *(sa.Column(c, sa.Text) for c in GOOD))  # fmt: skip
    meta.create_all(engine)
    with engine.begin() as conn:
        for n, (_, change) in enumerate(ROWS):
            conn.execute(t.insert().values(n=n, **{"submtg_state_cd": IN_SCOPE, **GOOD, **change}))
    return engine, t


def _expected() -> list[str]:
    return [reason for reason, _ in ROWS]


@pytest.mark.parametrize("scope_filtered", [False, True])
def test_the_case_form_names_each_rows_reason(table: Any, scope_filtered: bool) -> None:
    engine, t = table
    code, names = reason_code_expression(t, ORDER, scope_filtered=scope_filtered)
    with engine.connect() as conn:
        got = [names[int(c)] for (c,) in conn.execute(sa.select(code).order_by(t.c.n))]
    want = _expected()
    if scope_filtered:  # the query keeps only in-scope jurisdictions: the jurisdiction tests are left out
        keep = [i for i, (r, _) in enumerate(ROWS) if r not in (UNKNOWN_JURISDICTION, OUT_OF_SCOPE)]
        got, want = [got[i] for i in keep], [want[i] for i in keep]
    assert got == want


def test_by_default_the_case_form_judges_the_jurisdiction_too(table: Any) -> None:
    engine, t = table
    code, names = reason_code_expression(t, ORDER)
    with engine.connect() as conn:
        got = [names[int(c)] for (c,) in conn.execute(sa.select(code).order_by(t.c.n))]
    assert got == _expected()


@pytest.mark.parametrize(("raw", "coded"), [(frozenset(), True), (frozenset(), False),
                                            (frozenset(GOOD) | {"submtg_state_cd"}, False)])  # fmt: skip
def test_the_grouped_forms_name_each_rows_reason(table: Any, raw: frozenset[str], coded: bool) -> None:
    engine, t = table
    g = grouping(t, ORDER, raw, coded=coded)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*(e for _, e in g.expressions)).order_by(t.c.n)).all()
    assert [g.classify(tuple(r)) for r in rows] == _expected()


def test_only_included_rows_meet_the_where_clause(table: Any) -> None:
    engine, t = table
    with engine.connect() as conn:
        kept = [n for (n,) in conn.execute(sa.select(t.c.n).where(where_clause(t, ORDER, None)).order_by(t.c.n))]
    assert kept == [i for i, (r, _) in enumerate(ROWS) if r == INCLUDED]


def test_every_reason_has_a_label_a_person_can_read() -> None:
    labels = reason_labels(ORDER)
    assert labels[INCLUDED] == "meets every condition of the order"
    assert labels[UNKNOWN_JURISDICTION] == "submitting state is null or not a state/DC FIPS code"
    assert labels[OUT_OF_SCOPE] == "jurisdiction excluded by the order's scope"
    for cond in ORDER.population.all_of:
        assert labels[cond.reason] == cond.explain
        if cond.in_ is not None:
            assert labels[null_reason(cond)] == f"{cond.column} is null or unknown"
        else:
            assert null_reason(cond) not in labels
    assert set(labels) >= set(_expected())
