"""Recording an approver's signed decision, and every refused attempt, against one batch.

What a decision must say and when it binds is ``approval``; this module fetches what that
check needs (trust file, order in force, destination, who started the batch), records the
decision, and records a refusal in the ledger so an attempt is never silent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from handoff.authority import approval
from handoff.authority import request as requests
from handoff.context import Context
from handoff.errors import GateError, HandoffError
from handoff.gates.keeper import Gatekeeper, Outcome
from handoff.signing import statement as st
from handoff.state import ledger, validated


class Decisions:
    def __init__(self, ctx: Context, gatekeeper: Gatekeeper) -> None:
        self.ctx, self.gatekeeper = ctx, gatekeeper

    def statement(self, batch_id: str, decision: str, note: str | None, now: dt.datetime,
                  ttl: dt.timedelta = approval.DEFAULT_TTL) -> dict[str, Any]:  # fmt: skip
        """What an approver signs to decide ``batch_id`` (printed by ``--statement``, shown in the UI)."""
        batch = self.ctx.get(batch_id)
        approval.decidable(batch.id, batch.status)
        if not batch.content_hash:
            raise GateError(f"batch {batch.id} has no staged content to decide")
        destination = self.ctx.destination(batch)
        if destination is None:
            raise HandoffError(f"batch {batch.id} has no bucket; set HANDOFF_BUCKET")
        return approval.statement_for(batch, self.ctx.order_for(batch), destination, decision, note, now, ttl)

    def decide(self, batch_id: str, signed: st.Signed, now: dt.datetime, attempt: str | None = None) -> Outcome:
        """Record a signed approval or rejection; a refused attempt is itself recorded in the ledger.

        ``attempt`` names one answer of a flow's approval form: a resumed flow replays earlier
        answers, and each refusal is recorded once. The same signature recorded twice is a no-op.
        """
        batch = self.ctx.get(batch_id)
        with self.ctx.engine.connect() as conn:
            known = {s.signature.strip() for s in approval.signed_decisions(conn, batch.id)}
            record = validated.record_for(conn, batch.id)
        if signed.signature.strip() in known:
            return self.gatekeeper.refresh(batch.id, now)  # already recorded (a woken flow hands it back)
        actor = "(signature not verified)"
        try:
            trust = self.ctx.trust()
            order, destination = self.ctx.order_for(batch), self.ctx.destination(batch)
            if destination is None:
                raise GateError(f"batch {batch.id} has no bucket; set HANDOFF_BUCKET")
            initiator = requests.initiator(trust, batch, now)
            actor = st.verify(trust, signed, st.DECISION, now).principal
            decided = approval.judge(signed, trust, batch, order, destination, initiator, now)
            approval.check(batch, order, decided, record)
            with self.ctx.write() as conn:
                approval.record(conn, batch, order, decided, now)
        except GateError as exc:
            self._refused(batch.id, actor, approval.refusal(exc), now, attempt)
            raise
        return self.gatekeeper.refresh(batch.id, now, decided.approver)

    def _refused(self, batch_id: str, actor: str, reason: str, now: dt.datetime, attempt: str | None) -> None:
        with self.ctx.write() as conn:
            if attempt and any(
                e.payload.get("attempt") == attempt
                for e in ledger.entries(conn, batch_id=batch_id, kinds=["approval-refused"])
            ):
                return  # a resumed flow replays earlier answers; record each refusal once
            ledger.append(conn, "approval-refused", actor, batch_id=batch_id, at=now,
                          payload={"reason": reason, "attempt": attempt})  # fmt: skip
