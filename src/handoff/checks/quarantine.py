"""Row quarantine: rows that break a content or format rule never reach staging.

Rules come from ``rules.rules_for`` and are evaluated vectorised on Arrow. A diverted row is
recorded by Medicaid ID and rule id only; the offending value is never copied anywhere, and an ID
that itself looks like an SSN is masked (``rules.mask_id``) before it is recorded.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from handoff.policy.rules import Rule, mask_id

NULL_ID = "(null id)"


@dataclass
class RowQuarantine:
    """Diverted rows of one chunk: (medicaid_id, rule_id) pairs and counts per rule."""

    entries: list[tuple[str, str]] = field(default_factory=list)
    by_rule: Counter[str] = field(default_factory=Counter)
    rows: int = 0


def _violations(col: pa.ChunkedArray, rule: Rule, snapshot: dt.date) -> pa.ChunkedArray:
    if rule.kind == "not_null":
        return pc.is_null(col)
    valid = pc.is_valid(col)
    if rule.kind == "in_set":
        bad = pc.invert(pc.is_in(col, value_set=pa.array(rule.values, type=pa.string())))
    elif rule.kind == "match":
        bad = pc.invert(pc.match_substring_regex(col, rule.pattern))
    elif rule.kind == "not_match":
        bad = pc.match_substring_regex(col, rule.pattern)
        if rule.normalize:  # a full-width or otherwise disguised SSN, named as what it is
            bad = pc.or_(bad, pc.match_substring_regex(pc.utf8_normalize(col, "NFKC"), rule.pattern))
    elif rule.kind == "max_length":
        bad = pc.greater(pc.utf8_length(col), rule.max_length or 0)
    else:
        low = pa.scalar(dt.date.fromisoformat((rule.min_date or "1900-01-01")[:10]), type=pa.date32())
        high = pa.scalar(snapshot, type=pa.date32())
        bad = pc.or_(pc.less(col, low), pc.greater(col, high))
    return pc.and_(valid, pc.fill_null(bad, False))


# The rules that read a text value alone: whether one flags a value depends on nothing but the value.
_BY_VALUE = frozenset({"match", "not_match", "max_length"})


def _column_checks(col: pa.ChunkedArray, rules: list[Rule], snapshot: dt.date) -> list[tuple[str, pa.Array]]:
    """(rule id, violation mask) for one column's rules.

    A column held to a code set (``in_set``) is checked against it first. Where no code in the set
    breaks the column's other rules (each read only the value: ``_BY_VALUE``; ``_codes_pass``), only
    a value outside the set can break one, so those rules read only the rows holding such a value
    (none, in a clean column) and flag exactly the rows they would flag reading every row.
    """
    member = next((r for r in rules if r.kind == "in_set"), None)
    others = [r for r in rules if r.kind not in ("in_set", "not_null")]
    if member is None or not others or not _codes_pass(member, tuple(others), snapshot):
        return _each_rule(col, rules, snapshot)
    out = [(r.id, _violations(col, r, snapshot)) for r in rules if r.kind in ("in_set", "not_null")]
    outside = dict(out)[member.id]  # a value not in the set; a null is flagged by none of ``others``
    return out + _on_flagged(col, outside, others, lambda few: _each_rule(few, others, snapshot))


def _on_flagged(col: pa.ChunkedArray, flags: pa.Array | pa.ChunkedArray, rules: list[Rule],
                check: Callable[[pa.ChunkedArray], list[tuple[str, pa.Array]]]) -> list[tuple[str, pa.Array]]:  # fmt: skip
    """``rules``' masks over all of ``col`` where only the rows ``flags`` marks can break one: ``check``
    reads just those rows (none, in a clean column) and its masks are put back in place."""
    none = pa.array(np.zeros(len(col), dtype=bool))
    if not pc.any(flags).as_py():
        return [(r.id, none) for r in rules]
    flat = flags.combine_chunks() if isinstance(flags, pa.ChunkedArray) else flags
    few = pa.chunked_array([pc.filter(col, flat)])
    return [(rule_id, pc.replace_with_mask(none, flat, bad.combine_chunks() if isinstance(bad, pa.ChunkedArray) else bad))
            for rule_id, bad in check(few)]  # fmt: skip


@functools.lru_cache(maxsize=64)
def _codes_pass(member: Rule, others: tuple[Rule, ...], snapshot: dt.date) -> bool:
    """Whether every code in ``member``'s set passes every one of ``others``, each of which reads only
    the value (checked by the same code that checks a column)."""
    if any(r.kind not in _BY_VALUE for r in others):
        return False
    codes = pa.chunked_array([pa.array(member.values, type=pa.string())])
    return not any(pc.any(bad).as_py() for _, bad in _each_rule(codes, list(others), snapshot))


def _each_rule(col: pa.ChunkedArray, rules: list[Rule], snapshot: dt.date) -> list[tuple[str, pa.Array]]:
    """(rule id, violation mask) for each of one column's rules, read on every row.

    A text column's must-not-match rules (other characters, SSN shape) are screened together: one
    regex alternation, which fails on exactly the values one of them would, plus every non-ASCII
    value (the NFKC check can only differ there). Only the rows it flags are checked rule by rule,
    so the report still names each precise rule while the common all-clean column costs one regex
    pass instead of three (each pass costs the same per value, whatever the pattern).
    """
    screened = [r for r in rules if r.kind == "not_match" and r.pattern]
    if len(screened) < 2:
        return [(r.id, _violations(col, r, snapshot)) for r in rules]
    out = [(r.id, _violations(col, r, snapshot)) for r in rules if r not in screened]
    alternation = "|".join(f"(?:{r.pattern})" for r in screened)
    suspect = pc.fill_null(pc.or_(pc.match_substring_regex(col, alternation), pc.invert(pc.string_is_ascii(col))),
                           False)  # fmt: skip
    return out + _on_flagged(
        col, suspect, screened, lambda few: [(r.id, _violations(few, r, snapshot)) for r in screened]
    )


def divert(table: pa.Table, rules: list[Rule], id_column: str, snapshot: dt.date,
           unreadable: dict[str, pa.ChunkedArray] | None = None) -> tuple[pa.Array | pa.ChunkedArray | None,
                                                                          RowQuarantine]:  # fmt: skip
    """Return (mask of the rows to divert, None when there are none; what was diverted).

    ``unreadable``: per column, rows whose source value could not be read as its type
    (``readable.as_typed``); they are diverted as ``unreadable:COLUMN``. Diversions are listed
    rule by rule in ``rules``' order.
    """
    out = RowQuarantine()
    if table.num_rows == 0:
        return None, out
    any_bad: pa.ChunkedArray | pa.Array = pa.array(np.zeros(table.num_rows, dtype=bool))
    ids = table.column(id_column)
    by_column: dict[str, list[Rule]] = {}
    for rule in rules:
        by_column.setdefault(rule.column, []).append(rule)
    masks = dict(
        mask for column, own in by_column.items() for mask in _column_checks(table.column(column), own, snapshot)
    )
    checks = [(f"unreadable:{c}", mask) for c, mask in (unreadable or {}).items()]
    checks += [(rule.id, masks[rule.id]) for rule in rules]
    for rule_id, bad in checks:
        n = pc.sum(bad).as_py() or 0
        if not n:
            continue
        out.by_rule[rule_id] += n
        hit = pc.filter(ids, bad).to_pylist()
        out.entries.extend((mask_id(i) if i is not None else NULL_ID, rule_id) for i in hit)
        any_bad = pc.or_(any_bad, bad)
    out.rows = pc.sum(any_bad).as_py() or 0
    return (any_bad if out.rows else None), out
