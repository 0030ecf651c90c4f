"""Reads what the gates look at, in the acting transaction, and records the status they imply.

The decisions themselves are ``gates`` (pure); this module only gathers the view (trust file,
calendar, stops from the ledger and the audit bucket, signed decisions, destination, who started
the batch, counsel's signature on the order) and writes a changed status with its ledger entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from handoff.authority import approval, court, hold, in_force, signoff
from handoff.authority import request as requests
from handoff.context import Context
from handoff.errors import HandoffError
from handoff.gates import decide as gates
from handoff.signing.trust import Signer, Trust
from handoff.state import batch as batches
from handoff.state import ledger, validated
from handoff.state.status import FINAL, Status


@dataclass
class Outcome:
    batch: batches.Batch
    gates: list[gates.GateDecision] = field(default_factory=list)
    manifest_key: str | None = None
    objects: list[Any] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        b = self.batch
        return {
            "batch_id": b.id, "status": b.status, "reason": b.status_reason, "order_ref": b.order_ref,
            "rows_extracted": b.rows_extracted, "rows_quarantined": b.rows_quarantined, "rows_staged": b.rows_staged,
            "excluded": b.excluded.get("totals", {}), "content_hash": b.content_hash,
            "gates": [g.as_dict() for g in self.gates], "manifest_key": self.manifest_key,
            "objects": [o.key for o in self.objects], "error": self.error,
            "read_path": b.validation.get("read_path"), "checked_in": b.validation.get("checked_in"),
        }  # fmt: skip


class Gatekeeper:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def stops(self, conn: sa.Connection, trust: Trust, now: dt.datetime) -> hold.StopState:
        """Stops from this state database and, when configured, from the audit bucket (any database's)."""
        stops, clears = hold.history(conn)
        if self.ctx.store is not None:
            marked, cleared = self.ctx.store.stop_markers()
            known = {s.id for s in stops}
            stops += [hold.Stop(str(m["stop"]), str(m.get("reason", "")), str(m.get("set_by", "")),
                                str(m.get("set_at", ""))) for m in marked if m.get("stop") not in known]  # fmt: skip
            clears += cleared
        return hold.state(stops, clears, trust, now)

    def view(self, conn: sa.Connection, batch: batches.Batch, now: dt.datetime) -> gates.RuntimeView:
        trust = self.ctx.trust()
        signed = approval.signed_decisions(conn, batch.id)
        order = self.ctx.order_for(batch)
        order_file = self.ctx.policies.file_for(order)
        return gates.RuntimeView(
            trust=trust,
            hearings=court.calendar(conn, self.ctx.policies, trust, now),
            stops=self.stops(conn, trust, now),
            decisions=signed,
            unbacked=approval.unbacked_rows(conn, batch.id, signed),
            destination=self.ctx.destination(batch),
            initiator=_or_reason(lambda: requests.initiator(trust, batch, now)),
            order_signoff=_or_reason(lambda: signoff.verify_file(trust, order_file, now)),
            validated=validated.record_for(conn, batch.id),
            accepted=in_force.accepted(conn, order.order_id),
            order_file_sha256=court.file_sha256(order_file),
        )

    def evaluate(self, conn: sa.Connection, batch: batches.Batch, now: dt.datetime) -> list[gates.GateDecision]:
        return gates.evaluate(batch, self.ctx.order_for(batch), self.view(conn, batch, now), now)

    def apply(self, conn: sa.Connection, batch: batches.Batch, decisions: list[gates.GateDecision],
              now: dt.datetime, actor: str) -> batches.Batch:  # fmt: skip
        """Record the status the gates imply for a batch waiting on them; a settled batch is left alone."""
        if batch.status in FINAL or batch.status in (Status.DELIVERING, Status.DELIVERED):
            return batch
        status, reason = gates.status_for(decisions)
        if (status, reason) != (batch.status, batch.status_reason):
            batches.set_status(conn, batch.id, Status(status), reason, now)
            if status in (Status.HELD, Status.SUPERSEDED, Status.AWAITING):
                ledger.append(conn, status, actor, batch_id=batch.id, order_ref=batch.order_ref, at=now,
                              payload={"gates": [d.as_dict() for d in decisions]})  # fmt: skip
        return batches.get(conn, batch.id)

    def refresh(self, batch_id: str, now: dt.datetime, actor: str = "handoff") -> Outcome:
        """Re-evaluate a batch's gates and record the status they imply."""
        with self.ctx.write() as conn:
            batch = batches.find(conn, batch_id)
            decisions = self.evaluate(conn, batch, now)
            batch = self.apply(conn, batch, decisions, now, actor)
        return Outcome(batch, decisions)


def _or_reason(read: Callable[[], Signer]) -> Signer | str:
    """A verified signer, or the one-line reason it could not be verified (for a gate to show)."""
    try:
        return read()
    except HandoffError as exc:
        return str(exc)
