"""Gates: pure decisions over (batch, policy, runtime view, now), each open or held with a reason.

Effective instant (in the court's time zone), pending hearing, emergency stop, counsel's
signature on the order version, policy version and approval. No gate reads the clock, a file or
a database: the caller passes ``now`` and a ``RuntimeView`` read inside the transaction that acts
on the decision. Signatures are verified here, against the trust file in the view.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from handoff.authority import approval as approvals
from handoff.authority import in_force
from handoff.authority.court import HearingRecord
from handoff.authority.hold import StopState
from handoff.policy.order import Order
from handoff.signing.statement import Signed
from handoff.signing.trust import Signer, Trust
from handoff.state import validated as validation
from handoff.state.batch import Batch
from handoff.storage.deliver import Destination

GATES = ("effective_date", "pending_hearing", "emergency_stop", "order_signature", "order_in_force",
         "policy_version", "validated_content", "approval")  # fmt: skip


@dataclass(frozen=True)
class GateDecision:
    gate: str
    open: bool
    reason: str

    def __post_init__(self) -> None:
        # A decision is a known gate, a real yes or no, and a reason a person can read: anything else
        # is a bug that must fail loudly, never a falsy value that happens to hold.
        if self.gate not in GATES or not isinstance(self.open, bool) or not isinstance(self.reason, str) \
                or not self.reason.strip():  # fmt: skip
            raise TypeError(f"malformed gate decision {self.gate!r} {self.open!r} {self.reason!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RuntimeView:
    """What the gates may look at besides the batch and the order, read in the acting transaction.

    ``initiator`` and ``order_signoff`` are the verified signer, or why it could not be verified;
    ``validated`` is the ledger entry that recorded the batch's validated content; ``accepted`` the
    newest order version the ledger accepted, and ``order_file_sha256`` the order file's hash on disk.
    """

    trust: Trust
    hearings: list[HearingRecord] = field(default_factory=list)
    stops: StopState = field(default_factory=lambda: StopState([], []))
    decisions: list[Signed] = field(default_factory=list)
    unbacked: list[int] = field(default_factory=list)
    destination: Destination | None = None
    initiator: Signer | str = "not read"
    order_signoff: Signer | str = "not read"
    validated: validation.Validated | None = None
    accepted: in_force.Accepted | None = None
    order_file_sha256: str = ""


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


def emergency_stop(stops: StopState) -> GateDecision:
    if stops.active:
        s = stops.active[-1]
        more = f" (and {len(stops.active) - 1} more)" if len(stops.active) > 1 else ""
        return GateDecision("emergency_stop", False,
                            f"emergency stop {s.id} set by {s.set_by} at {s.set_at}: {s.reason}{more}")  # fmt: skip
    return GateDecision("emergency_stop", True, "no emergency stop")


def order_signature(order: Order, signoff: Signer | str) -> GateDecision:
    if isinstance(signoff, str):
        return GateDecision("order_signature", False, signoff)
    return GateDecision("order_signature", True, f"{order.ref} signed by counsel {signoff.principal}")


def order_in_force(order: Order, view: RuntimeView) -> GateDecision:
    """Open when the policy folder's order version is the one the ledger accepted (never an older one)."""
    why = in_force.problem(order, view.order_file_sha256, view.accepted)
    if why:
        return GateDecision("order_in_force", False, why)
    return GateDecision("order_in_force", True, f"{order.ref} is the newest version the ledger accepted")


def policy_version(batch: Batch, order: Order) -> GateDecision:
    if batch.order_ref != order.ref or batch.policy_hash != order.policy_hash:
        return GateDecision("policy_version", False,
                            f"validated under {batch.order_ref} but {order.ref} is in force; "
                            "re-run the transfer under the current order, or `handoff revalidate BATCH` "
                            "if only checks changed")  # fmt: skip
    return GateDecision("policy_version", True, f"validated under {order.ref} (unchanged)")


def validated_content(batch: Batch, record: validation.Validated | None) -> GateDecision:
    """Open only when the batch's files are exactly those its anchored validation entry recorded."""
    why = validation.differs(batch.files, batch.content_hash, batch.rows_staged, record)
    if why:
        return GateDecision("validated_content", False, f"{why}; re-run the transfer (never edit staged files)")
    assert record is not None
    return GateDecision("validated_content", True, f"content as validated (ledger entry {record.seq})")


def approval(batch: Batch, order: Order, view: RuntimeView, now: dt.datetime) -> GateDecision:
    """Open when enough different people's signed approvals bind this content, order and destination now."""
    if isinstance(view.initiator, str):
        return GateDecision("approval", False, f"cannot tell who started this batch: {view.initiator}")
    if view.destination is None:
        return GateDecision("approval", False, "no destination bucket; set HANDOFF_BUCKET or pass --bucket")
    found = approvals.binding(view.decisions, view.trust, batch, order, view.destination, view.initiator, now)
    ignored = [*found.ignored, *(f"approvals row {i} is not backed by a signed ledger entry" for i in view.unbacked)]
    note = f" (ignored {len(ignored)}: {ignored[0]})" if ignored else ""
    if found.rejections:
        d = found.rejections[0]
        return GateDecision("approval", False, f"rejected by {d.approver} at {d.at}: {d.note}")
    need = order.approvals_required
    names = ", ".join(f"{d.approver} at {d.at}" for d in found.approvals)
    if len(found.approvals) >= need:
        return GateDecision("approval", True, f"approved by {names}{note}")
    if found.approvals:
        return GateDecision("approval", False,
                            f"approved by {names}; {order.ref} needs {need} approvals by different people{note}")  # fmt: skip
    return GateDecision("approval", False, f"awaiting approval by an authorised approver{note}")


def evaluate(batch: Batch, order: Order, view: RuntimeView, now: dt.datetime) -> list[GateDecision]:
    """Every gate, in a fixed order; delivery needs all of them open."""
    return [
        effective_date(order, now),
        pending_hearing(order, view.hearings),
        emergency_stop(view.stops),
        order_signature(order, view.order_signoff),
        order_in_force(order, view),
        policy_version(batch, order),
        validated_content(batch, view.validated),
        approval(batch, order, view, now),
    ]


def all_open(decisions: list[GateDecision]) -> bool:
    return all(d.open for d in decisions)


def status_for(decisions: list[GateDecision]) -> tuple[str, str | None]:
    """The lifecycle status the gates imply: delivered-ready, awaiting approval, held, or superseded
    (validated under an order version no longer in force: only a new transfer or revalidation helps)."""
    closed = [d for d in decisions if not d.open]
    policy = next((d for d in closed if d.gate == "policy_version"), None)
    # A policy folder behind the ledger holds: the batch is not superseded by a rolled-back order.
    if policy is not None and not any(d.gate == "order_in_force" for d in closed):
        return "superseded", policy.reason
    if not closed:
        return "approved", None
    if all(d.gate == "approval" for d in closed):
        reason = closed[0].reason
        return ("rejected", reason) if reason.startswith("rejected") else ("awaiting-approval", reason)
    return "held", "; ".join(f"{d.gate}: {d.reason}" for d in closed if d.gate not in ("approval", "policy_version"))
