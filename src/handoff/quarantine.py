"""Row quarantine: rows that break a content or format rule never reach staging.

Rules come from ``rules.rules_for`` and are evaluated vectorised on Arrow. A diverted row is
recorded by Medicaid ID and rule id only; the offending value is never copied anywhere, and an ID
that itself looks like an SSN is masked (``rules.mask_id``) before it is recorded.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from handoff.rules import Rule, mask_id

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


def split(table: pa.Table, rules: list[Rule], id_column: str, snapshot: dt.date,
          unreadable: dict[str, pa.ChunkedArray] | None = None) -> tuple[pa.Table, RowQuarantine]:  # fmt: skip
    """Return (rows that pass every rule, what was diverted).

    ``unreadable``: per column, rows whose source value could not be read as its type
    (``readable.as_typed``); they are diverted as ``unreadable:COLUMN``.
    """
    out = RowQuarantine()
    if table.num_rows == 0:
        return table, out
    any_bad: pa.ChunkedArray | pa.Array = pa.array([False] * table.num_rows)
    ids = table.column(id_column)
    checks = [(f"unreadable:{c}", mask) for c, mask in (unreadable or {}).items()]
    checks += [(rule.id, _violations(table.column(rule.column), rule, snapshot)) for rule in rules]
    for rule_id, bad in checks:
        n = pc.sum(bad).as_py() or 0
        if not n:
            continue
        out.by_rule[rule_id] += n
        hit = pc.filter(ids, bad).to_pylist()
        out.entries.extend((mask_id(i) if i is not None else NULL_ID, rule_id) for i in hit)
        any_bad = pc.or_(any_bad, bad)
    out.rows = pc.sum(any_bad).as_py() or 0
    if out.rows == 0:
        return table, out
    return table.filter(pc.invert(any_bad)), out
