"""What a new order version changes, field by field, and whether it may be recorded as ``narrowed``.

``handoff policy diff OLD NEW`` shows it to counsel and the operators before anything is signed:
columns, the name flag, population conditions, plaintiff states and scope, approvals, required
fields, the effective instant, the court's calendar and the source. Whether the new version may
be installed by a ``narrowed`` outcome is the same decision the court step makes (``narrowing``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handoff.policy import narrowing
from handoff.policy.order import Condition, Order
from handoff.policy.source_model import STATES


@dataclass(frozen=True)
class Change:
    what: str
    before: str
    after: str

    def as_dict(self) -> dict[str, str]:
        return {"what": self.what, "before": self.before, "after": self.after}


@dataclass
class Diff:
    old: Order
    new: Order
    changes: list[Change] = field(default_factory=list)
    not_narrowing: list[str] = field(default_factory=list)

    @property
    def may_narrow(self) -> bool:
        """Whether counsel may record a ``narrowed`` outcome that installs ``new`` in place of ``old``."""
        return not self.not_narrowing

    def as_dict(self) -> dict[str, Any]:
        return {"old": self.old.ref, "new": self.new.ref, "changes": [c.as_dict() for c in self.changes],
                "may_be_recorded_as_narrowed": self.may_narrow, "why_not": self.not_narrowing}  # fmt: skip


def _list(values: list[str]) -> str:
    return ", ".join(values) if values else "none"


def _condition(c: Condition) -> str:
    if c.in_ is not None:
        return f"in {_list(sorted(c.in_))}"
    return "null" if c.is_null else "not null"


def _population(old: Order, new: Order) -> list[Change]:
    before = {c.column: _condition(c) for c in old.population.all_of}
    after = {c.column: _condition(c) for c in new.population.all_of}
    return [Change(f"population: {col}", before.get(col, "no condition"), after.get(col, "no condition"))
            for col in sorted(set(before) | set(after)) if before.get(col) != after.get(col)]  # fmt: skip


def _scope(old: Order, new: Order) -> list[Change]:
    return [Change(f"scope: {abbr}", old.scope_for(abbr), new.scope_for(abbr))
            for abbr in sorted(STATES.values()) if old.scope_for(abbr) != new.scope_for(abbr)]  # fmt: skip


def _plaintiffs(o: Order) -> str:
    return _list([f"{s.state}{'' if s.verified else ' (unverified)'}" for s in o.plaintiff_states])


def _calendar(old: Order, new: Order) -> list[Change]:
    before = {h.id: f"{h.at.isoformat()} {h.title}" for h in old.hearings}
    after = {h.id: f"{h.at.isoformat()} {h.title}" for h in new.hearings}
    return [Change(f"hearing {hid}", before.get(hid, "none"), after.get(hid, "none"))
            for hid in sorted(set(before) | set(after)) if before.get(hid) != after.get(hid)]  # fmt: skip


def diff(old: Order, new: Order) -> Diff:
    """Every difference between two order versions, and why ``new`` may not narrow ``old`` (if it may not)."""
    out = Diff(old, new)
    pairs = [
        ("columns", _list(old.columns), _list(new.columns)),
        ("name flag", "on" if old.name_flag else "off", "on" if new.name_flag else "off"),
        ("required fields", _list(old.required_fields), _list(new.required_fields)),
        ("approvals required", str(old.approvals_required), str(new.approvals_required)),
        ("effective", old.effective_instant.isoformat(), new.effective_instant.isoformat()),
        ("court time zone", old.court_time_zone, new.court_time_zone),
        ("plaintiff states", _plaintiffs(old), _plaintiffs(new)),
        ("source", old.source.model_dump_json(), new.source.model_dump_json()),
    ]
    out.changes += [Change(what, a, b) for what, a, b in pairs if a != b]
    out.changes += _population(old, new) + _scope(old, new) + _calendar(old, new)
    out.not_narrowing = narrowing.successor_problems(old, new) + narrowing.widened(old, new)
    return out
