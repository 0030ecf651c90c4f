"""Who may be disclosed: the order's population rule and jurisdiction scope as SQL.

Builds SQLAlchemy Core expressions from the structured rule, with bound parameters and
quoted identifiers. A null or unknown value in any condition's column denies the row, and
every excluded row gets exactly one reason (the first rule it fails), for counting.

Counting has two forms with the same answer: ``reason_code_expression`` (a CASE per row, grouped
on the reason) and ``grouping`` + ``classify`` (group on the conditions' raw columns, derive the
reason per group in Python), and between them ``grouping(coded=True)``: one CASE over the list
conditions, the null tests as booleans, the reason derived per group (the form handoff runs on
PostgreSQL and SQLite; ``extract.counts_statement`` has the measurements). A column is grouped
raw only where the database compares text exactly (``raw``); elsewhere the database evaluates
the condition (its truth value is grouped) so padding and collation rules stay the database's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from handoff.policy.order import Condition, Order
from handoff.policy.source_model import COLUMN_BY_NAME, STATES

INCLUDED = "included"
OUT_OF_SCOPE = "out_of_scope"
UNKNOWN_JURISDICTION = "unknown_jurisdiction"


def _condition(table: sa.TableClause, cond: Condition) -> ColumnElement[bool]:
    col = table.c[cond.column]
    if cond.is_null is not None:
        return col.is_(None) if cond.is_null else col.is_not(None)
    assert cond.in_ is not None
    # Explicit IS NOT NULL: deny on null even where a dialect's IN would be lenient.
    return sa.and_(col.is_not(None), col.in_(cond.in_))


def null_reason(cond: Condition) -> str:
    return f"null_{cond.column}"


def population_clause(table: sa.TableClause, order: Order) -> ColumnElement[bool]:
    return sa.and_(*(_condition(table, c) for c in order.population.all_of))


def scope_clause(table: sa.TableClause, order: Order, fips: list[str]) -> ColumnElement[bool]:
    return table.c[order.source.jurisdiction_column].in_(fips)


def where_clause(table: sa.TableClause, order: Order, requested_fips: list[str] | None) -> ColumnElement[bool]:
    """Rows that may leave: in scope and meeting every population condition."""
    return sa.and_(
        scope_clause(table, order, order.in_scope_fips(requested_fips)),
        population_clause(table, order),
    )


def _reason_whens(table: sa.TableClause, order: Order) -> list[tuple[ColumnElement[bool], str]]:
    """(test, reason) in the order the CASE checks them: a row gets the first test it meets."""
    jur = table.c[order.source.jurisdiction_column]
    whens: list[tuple[ColumnElement[bool], str]] = [
        (sa.or_(jur.is_(None), jur.not_in(list(STATES))), UNKNOWN_JURISDICTION),
        (jur.not_in(order.in_scope_fips()), OUT_OF_SCOPE),
    ]
    for cond in order.population.all_of:
        if cond.in_ is not None:
            whens.append((table.c[cond.column].is_(None), null_reason(cond)))
        whens.append((sa.not_(_condition(table, cond)), cond.reason))
    return whens


def reason_code_expression(
    table: sa.TableClause, order: Order, scope_filtered: bool = False
) -> tuple[ColumnElement[int], list[str]]:
    """CASE giving 0 (included) or the code of the first reason a row is excluded, and the codes' reasons.

    Grouping a full-table aggregate on an integer instead of text is measurably cheaper
    (PostgreSQL, 4M rows: about a fifth less time), and the count is a full scan.
    ``scope_filtered``: the query already keeps only in-scope jurisdictions, so the two
    jurisdiction tests can never match and are left out (another sixth of the time).
    """
    whens = _reason_whens(table, order)
    names = [INCLUDED] + [reason for _, reason in whens]
    skip = {UNKNOWN_JURISDICTION, OUT_OF_SCOPE} if scope_filtered else set()
    codes: list[tuple[ColumnElement[bool], ColumnElement[int]]] = [
        (test, sa.literal_column(str(i + 1))) for i, (test, reason) in enumerate(whens) if reason not in skip
    ]
    return sa.case(*codes, else_=sa.literal_column("0")), names


def reason_labels(order: Order) -> dict[str, str]:
    """Human explanations for every reason code the CASE can produce."""
    labels = {
        INCLUDED: "meets every condition of the order",
        UNKNOWN_JURISDICTION: "submitting state is null or not a state/DC FIPS code",
        OUT_OF_SCOPE: "jurisdiction excluded by the order's scope",
    }
    for cond in order.population.all_of:
        if cond.in_ is not None:
            labels[null_reason(cond)] = f"{cond.column} is null or unknown"
        labels[cond.reason] = cond.explain
    return labels


@dataclass(frozen=True)
class Grouping:
    """What the raw-grouped or coded aggregate groups on, and how each group's reason is derived."""

    order: Order
    raw: frozenset[str]  # columns grouped on their own values (the database compares them exactly)
    expressions: list[tuple[str, ColumnElement[Any]]]
    in_scope: frozenset[str] = frozenset()  # the order's in-scope FIPS codes, worked out once, not per group

    def classify(self, row: Sequence[object]) -> str:
        """The reason for one group (``row``: one value per expression, in order); today's precedence."""
        values = dict(zip((name for name, _ in self.expressions), row, strict=True))
        jur = values["jurisdiction"]
        if "j_known" in values:  # the database judged the jurisdiction
            known, scoped = bool(values["j_known"]), bool(values["j_scope"])
        else:
            known = jur is not None and str(jur) in STATES
            scoped = known and str(jur) in self.in_scope
        if not known:
            return UNKNOWN_JURISDICTION
        if not scoped:
            return OUT_OF_SCOPE
        # "coded": one CASE gave 2k+1 (null) or 2k+2 (not in the list) for the k-th list condition
        # that fails first, 0 when none fails; the null-test conditions keep their own flags.
        code = int(str(values["code"])) if "code" in values else None
        k = -1
        for i, cond in enumerate(self.order.population.all_of):
            if code is not None and cond.in_ is not None:
                k += 1
                if code and (code - 1) // 2 == k:
                    return null_reason(cond) if code % 2 else cond.reason
                continue
            v = values[f"c{i}"]
            if cond.is_null is not None:
                if bool(v) != cond.is_null:
                    return cond.reason
            elif v is None:
                return null_reason(cond)
            elif not (str(v) in (cond.in_ or []) if cond.column in self.raw else int(str(v)) == 1):
                return cond.reason
        return INCLUDED


def grouping(table: sa.TableClause, order: Order, raw: frozenset[str], coded: bool = False) -> Grouping:
    """The grouping expressions: raw columns where ``raw`` allows, the conditions' truth values elsewhere.

    ``coded``: the list conditions (``in``) become one CASE giving the first that fails and how
    (``classify``), which stops at the first failed test, where raw grouping hashes every column;
    the null-test conditions stay plain booleans. The CASE reads only code columns, so the planner
    estimates its groups from their few distinct values (a CASE that also read the five-year-bar
    date was estimated at 1.6 million groups for about 400, and sorted at 1M rows).
    """
    jur_name = order.source.jurisdiction_column
    jur = table.c[jur_name]
    exprs: list[tuple[str, ColumnElement[Any]]] = [("jurisdiction", jur)]
    if jur_name not in raw:
        exprs.append(("j_known", sa.case((sa.and_(jur.is_not(None), jur.in_(list(STATES))), 1), else_=0)))
        exprs.append(("j_scope", sa.case((jur.in_(order.in_scope_fips()), 1), else_=0)))
    if coded:
        whens: list[tuple[ColumnElement[bool], ColumnElement[int]]] = []
        for k, cond in enumerate(c for c in order.population.all_of if c.in_ is not None):
            whens.append((table.c[cond.column].is_(None), sa.literal_column(str(2 * k + 1))))
            whens.append((sa.not_(_condition(table, cond)), sa.literal_column(str(2 * k + 2))))
        if whens:  # (without list conditions there is nothing to code)
            exprs.append(("code", sa.case(*whens, else_=sa.literal_column("0"))))
    for i, cond in enumerate(order.population.all_of):
        col = table.c[cond.column]
        if coded and cond.in_ is not None:
            continue
        if cond.is_null is not None:
            # A plain boolean: the planner knows it has two values (a CASE would be estimated at
            # 200, and PostgreSQL 15 then picks a sort-based aggregate that spills to disk).
            expr: ColumnElement[Any] = col.is_(None)
        elif cond.column in raw and COLUMN_BY_NAME[cond.column].kind == "code":
            expr = col
        else:
            expr = sa.case((col.is_(None), sa.null()), (col.in_(cond.in_ or []), 1), else_=0)
        exprs.append((f"c{i}", expr))
    grouped_raw = frozenset(c for c in raw if c == jur_name or COLUMN_BY_NAME[c].kind == "code")
    return Grouping(order, grouped_raw, exprs, frozenset(order.in_scope_fips()))
