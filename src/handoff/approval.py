"""Manual approval: a named, authorised person approves exactly one batch's content.

An approval names the approver, the batch content hash and the order version. Approvers come
from the configured list; the person who started the transfer cannot approve it; a changed
batch (content hash) or policy (hash) voids it. The open-source Prefect server has no user
accounts, so a name is typed text: protect the server with basic auth (see README).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from handoff import ledger
from handoff.batch import Batch, set_status
from handoff.errors import GateError
from handoff.order import Order
from handoff.stage import content_hash, verify_staged
from handoff.state import approvals, batches, iso, lock_for_decision

DECIDABLE = ("staged", "held", "awaiting-approval", "approved")


@dataclass(frozen=True)
class Decision:
    batch_id: str
    decision: str  # "approve" | "reject"
    approver: str
    content_hash: str
    policy_hash: str
    order_ref: str
    note: str | None
    at: str


def decisions(conn: sa.Connection, batch_id: str) -> list[Decision]:
    rows = conn.execute(sa.select(approvals).where(approvals.c.batch_id == batch_id).order_by(approvals.c.id))
    return [
        Decision(r.batch_id, r.decision, r.approver, r.content_hash, r.policy_hash, r.order_ref, r.note, r.at)
        for r in rows
    ]


def authorise(approver: str, batch: Batch, approvers: list[str]) -> None:
    """Refuse an approver who is not configured or who started the transfer."""
    name = approver.strip()
    if not name:
        raise GateError("give the approver's name with --as NAME")
    if name not in approvers:
        listed = ", ".join(approvers) if approvers else "none configured (set HANDOFF_APPROVERS)"
        raise GateError(f"{name!r} is not an authorised approver; authorised: {listed}")
    if name == batch.initiator:
        raise GateError(f"{name!r} started batch {batch.id} and cannot approve it; ask another approver")


def _decidable(batch_id: str, status: str | None) -> None:
    if status not in DECIDABLE:
        raise GateError(f"batch {batch_id} is {status}; only a staged, held or awaiting batch can be decided")


def check(batch: Batch, order: Order, decision: str, approver: str, approvers: list[str], note: str | None) -> None:
    """Refuse a decision that may not be recorded: wrong person, no reason, other policy, changed files.

    Runs outside any transaction: re-hashing a large batch must not hold the writers' lock
    (and with it an emergency stop).
    """
    authorise(approver, batch, approvers)
    _decidable(batch.id, batch.status)
    if decision == "reject" and not (note or "").strip():
        raise GateError("a rejection needs a note saying why")
    if batch.policy_hash != order.policy_hash:
        raise GateError(f"batch {batch.id} was validated under {batch.order_ref}, not {order.ref}; re-run transfer")
    if not batch.staging_path or not batch.content_hash:
        raise GateError(f"batch {batch.id} has no staged content to approve")
    bad = verify_staged(Path(batch.staging_path), batch.files)
    if bad or content_hash(batch.files) != batch.content_hash:
        raise GateError(f"batch {batch.id} changed on disk since validation ({', '.join(bad)}); it cannot be approved")


def record(
    conn: sa.Connection, batch: Batch, order: Order, decision: str, approver: str, note: str | None,
    now: dt.datetime,
) -> Decision:  # fmt: skip
    """Record a ``check``ed approval or rejection, bound to the batch's content hash and order version."""
    lock_for_decision(conn)
    # Checked again under the lock: the batch may have moved on while its files were hashed.
    _decidable(batch.id, conn.execute(sa.select(batches.c.status).where(batches.c.id == batch.id)).scalar())
    if not batch.content_hash:
        raise GateError(f"batch {batch.id} has no staged content to approve")
    rec = Decision(
        batch.id, decision, approver.strip(), batch.content_hash, order.policy_hash, order.ref, note, iso(now)
    )
    conn.execute(approvals.insert().values(**rec.__dict__))
    ledger.append(conn, "approved" if decision == "approve" else "rejected", rec.approver, batch_id=batch.id,
                  order_ref=order.ref, at=now,
                  payload={"content_hash": rec.content_hash, "policy_hash": rec.policy_hash, "note": note})  # fmt: skip
    if decision == "reject":
        set_status(conn, batch.id, "rejected", f"rejected by {rec.approver}: {note}", now)
    return rec
