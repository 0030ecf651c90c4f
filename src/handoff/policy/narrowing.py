"""Orders that only narrow: a ``narrowed`` outcome may install a version that permits less, never more.

Mechanically narrower than the version it replaces means: permitted columns a subset, the name
flag not turned on, every population condition kept (a code list may only shrink), no
jurisdiction brought into scope, no earlier effective instant, the same source table and keys,
no fewer required fields or approvals. Anything wider needs a new order id signed by counsel,
never the ``narrowed`` path.
"""

from __future__ import annotations

from handoff.policy.order import Order
from handoff.policy.source_model import STATES


def successor_problems(old: Order, new: Order) -> list[str]:
    """Why ``new`` is not the next version of ``old`` (same order id, a higher version, superseding it)."""
    out: list[str] = []
    if new.order_id != old.order_id:
        out.append(f"order_id {new.order_id!r} is not {old.order_id!r}; a different order is a new order file "
                   "signed by counsel, not a narrowing")  # fmt: skip
    if new.version <= old.version:
        out.append(f"version {new.version} must be greater than {old.version}")
    if new.supersedes != old.ref:
        out.append(f"supersedes must be {old.ref!r} (found {new.supersedes!r})")
    return out


def widened(old: Order, new: Order) -> list[str]:
    """Every way ``new`` permits more than ``old``; empty when it only narrows."""
    out: list[str] = []
    extra = [c for c in new.columns if c not in old.columns]
    if extra:
        out.append(f"permits columns {', '.join(extra)} that {old.ref} does not")
    if new.name_flag and not old.name_flag:
        out.append("turns the name flag on")
    out += _population(old, new)
    opened = sorted(a for a in STATES.values() if old.scope_for(a) == "excluded" and new.scope_for(a) != "excluded")
    if opened:
        out.append(f"brings {', '.join(opened)} into scope")
    if new.effective_instant < old.effective_instant:
        out.append(f"takes effect earlier ({new.effective_instant.isoformat()})")
    if new.source != old.source:
        out.append("reads another source table or key")
    dropped = [c for c in old.required_fields if c in new.columns and c not in new.required_fields]
    if dropped:
        out.append(f"no longer requires {', '.join(dropped)}")
    if new.approvals_required < old.approvals_required:
        out.append(f"needs fewer approvals ({new.approvals_required} < {old.approvals_required})")
    return out


def _population(old: Order, new: Order) -> list[str]:
    out: list[str] = []
    for cond in old.population.all_of:
        same = [c for c in new.population.all_of if c.column == cond.column]
        if cond.is_null is not None:
            if not any(c.is_null == cond.is_null for c in same):
                out.append(f"drops the condition on {cond.column}")
            continue
        allowed = set(cond.in_ or [])
        if not any(c.in_ is not None and set(c.in_) <= allowed for c in same):
            out.append(f"drops or widens the condition on {cond.column} (codes {', '.join(sorted(allowed))})")
    return out
