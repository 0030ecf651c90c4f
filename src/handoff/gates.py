"""Gates: pure decisions over (batch, policy, runtime view, now), each open or held with a reason.

Effective instant (in the court's time zone), pending hearing, emergency stop, policy
version and approval. No gate reads the clock or a database: the caller passes ``now`` and a
``RuntimeView`` read inside the transaction that acts on the decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from handoff.approval import Decision
from handoff.batch import Batch
from handoff.court import HearingRecord
from handoff.hold import StopState
from handoff.order import Order


@dataclass(frozen=True)
class GateDecision:
    gate: str
    open: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RuntimeView:
    """What the gates may look at besides the batch and the order."""

    hearings: list[HearingRecord] = field(default_factory=list)
    stop: StopState | None = None
    decisions: list[Decision] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)


def effective_date(order: Order, now: dt.datetime) -> GateDecision:
    # The reason names only the effective instant (no "now"), so re-evaluating an unchanged hold
    # gives the same reason and writes no new ledger entry.
    start = order.effective_instant
    if now.astimezone(order.zone) < start:
        return GateDecision(
            "effective_date", False, f"{order.ref} takes effect {start.isoformat()} ({order.court_time_zone})"
        )
    return GateDecision("effective_date", True, f"in effect since {start.isoformat()} ({order.court_time_zone})")


def pending_hearing(order: Order, hearings: list[HearingRecord]) -> GateDecision:
    mine = [h for h in hearings if h.order_id == order.order_id]
    pending = [h for h in mine if not h.outcome]
    if pending:
        h = pending[0]
        return GateDecision("pending_hearing", False,
                            f"hearing {h.id} ({h.title}, {h.at}) has no recorded outcome; "
                            f"counsel records it with `handoff court outcome {h.id} --result ...`")  # fmt: skip
    decided = [h for h in mine if h.outcome]
    if decided:
        last = max(decided, key=lambda h: (h.outcome_at or "", h.at))
        if last.outcome == "enjoined":
            return GateDecision("pending_hearing", False, f"hearing {last.id} enjoined {order.order_id}")
        if last.outcome == "vacated":
            return GateDecision("pending_hearing", False,
                                f"hearing {last.id} vacated {order.order_id}; install a new order version")  # fmt: skip
        return GateDecision("pending_hearing", True, f"last hearing {last.id}: {last.outcome}")
    return GateDecision("pending_hearing", True, "no hearing on this order")


def emergency_stop(stop: StopState | None) -> GateDecision:
    if stop and stop.active:
        return GateDecision(
            "emergency_stop", False, f"emergency stop set by {stop.set_by} at {stop.set_at}: {stop.reason}"
        )
    return GateDecision("emergency_stop", True, "no emergency stop")


def policy_version(batch: Batch, order: Order) -> GateDecision:
    if batch.order_ref != order.ref or batch.policy_hash != order.policy_hash:
        return GateDecision("policy_version", False,
                            f"validated under {batch.order_ref} but {order.ref} is in force; "
                            "re-run the transfer under the current order, or `handoff revalidate BATCH` "
                            "if only checks changed")  # fmt: skip
    return GateDecision("policy_version", True, f"validated under {order.ref} (unchanged)")


def binding(batch: Batch, order: Order, decisions: list[Decision], approvers: list[str]) -> list[Decision]:
    """Decisions that still bind the batch: its content and policy, by an approver still on the list."""
    return [
        d for d in decisions
        if d.content_hash == batch.content_hash and d.policy_hash == order.policy_hash
        and d.approver in approvers and d.approver != batch.initiator
    ]  # fmt: skip


def approval(batch: Batch, order: Order, view: RuntimeView) -> GateDecision:
    valid = binding(batch, order, view.decisions, view.approvers)
    if any(d.decision == "reject" for d in valid):
        d = next(d for d in valid if d.decision == "reject")
        return GateDecision("approval", False, f"rejected by {d.approver} at {d.at}: {d.note}")
    approved = [d for d in valid if d.decision == "approve"]
    if approved:
        d = approved[-1]
        return GateDecision("approval", True, f"approved by {d.approver} at {d.at}")
    if view.decisions:
        return GateDecision("approval", False, "earlier approval is void (content, policy or approver list changed)")
    return GateDecision("approval", False, "awaiting approval by an authorised approver")


def evaluate(batch: Batch, order: Order, view: RuntimeView, now: dt.datetime) -> list[GateDecision]:
    """Every gate, in a fixed order; delivery needs all of them open."""
    return [
        effective_date(order, now),
        pending_hearing(order, view.hearings),
        emergency_stop(view.stop),
        policy_version(batch, order),
        approval(batch, order, view),
    ]


def all_open(decisions: list[GateDecision]) -> bool:
    return all(d.open for d in decisions)


def status_for(decisions: list[GateDecision]) -> tuple[str, str | None]:
    """The lifecycle status the gates imply: delivered-ready, awaiting approval, held, or superseded
    (validated under an order version no longer in force: only a new transfer or revalidation helps)."""
    closed = [d for d in decisions if not d.open]
    policy = next((d for d in closed if d.gate == "policy_version"), None)
    if policy is not None:
        return "superseded", policy.reason
    if not closed:
        return "approved", None
    if all(d.gate == "approval" for d in closed):
        reason = closed[0].reason
        return ("rejected", reason) if reason.startswith("rejected") else ("awaiting-approval", reason)
    return "held", "; ".join(f"{d.gate}: {d.reason}" for d in closed if d.gate != "approval")
