"""Taking a delivery over: every gate re-evaluated and the lease taken, in one transaction.

``start`` re-evaluates every gate (every signature re-verified) in the transaction that marks
the batch ``delivering`` under this process's lease, and anchors that entry before any byte
moves. A live delivery held by another process is never touched; an expired one, or one whose
owner was a process on this host that no longer exists, is taken over once. ``guard`` is what the upload calls before every object, part and manifest: it re-reads the
stop (ledger and audit bucket) and renews the lease, raising ``DeliveryStopped`` if either fails.
"""

from __future__ import annotations

import datetime as dt
import time

import sqlalchemy as sa

from handoff.context import Context
from handoff.errors import DeliveryStopped, LeaseLost
from handoff.gates import decide as gates
from handoff.gates.keeper import Gatekeeper, Outcome
from handoff.state import batch as batches
from handoff.state import ledger
from handoff.state.schema import deliveries, iso, lock_for_decision
from handoff.state.status import FINAL, Lease, Status, owner_gone
from handoff.storage import write_once
from handoff.storage.deliver import Guard


class Handover:
    def __init__(self, ctx: Context, gatekeeper: Gatekeeper) -> None:
        self.ctx, self.gatekeeper = ctx, gatekeeper

    def start(self, batch_id: str, now: dt.datetime) -> tuple[str, Outcome]:
        """``started``, ``stale`` (a crashed delivery whose gates closed) or ``waiting``, with the outcome."""
        write_once.require(self.ctx.store)
        with self.ctx.write(anchor_required=True) as conn:
            lock_for_decision(conn)
            batch = batches.find(conn, batch_id)
            decisions = self.gatekeeper.evaluate(conn, batch, now)
            lease = batches.lease(batch)
            if batch.status in FINAL or batch.status == Status.DELIVERED:
                return "waiting", Outcome(batch, decisions)
            if (batch.status == Status.DELIVERING and lease.live(now) and lease.owner != self.ctx.owner
                    and not owner_gone(lease.owner)):  # a killed process on this host holds nothing  # fmt: skip
                return "waiting", Outcome(
                    batch, decisions, error=f"being delivered by {lease.owner} until {lease.until}"
                )
            if not gates.all_open(decisions):
                stale = batch.status == Status.DELIVERING
                return ("stale" if stale else "waiting"), Outcome(self.gatekeeper.apply(conn, batch, decisions, now,
                                                                                        "handoff"), decisions)  # fmt: skip
            self._take(conn, batch, decisions, lease, now)
            return "started", Outcome(batches.get(conn, batch.id), decisions)

    def _take(self, conn: sa.Connection, batch: batches.Batch, decisions: list[gates.GateDecision], lease: Lease,
              now: dt.datetime) -> None:  # fmt: skip
        if batch.status != Status.DELIVERING:
            batch = self.gatekeeper.apply(conn, batch, decisions, now, "handoff")
        dest = self.ctx.target(batch).destination(batch.order_id, batch.order_version, batch.id)
        mine = Lease(self.ctx.owner, now + dt.timedelta(seconds=self.ctx.settings.lease_seconds))
        batches.set_status(conn, batch.id, Status.DELIVERING, None, now, mine)
        if conn.execute(sa.select(deliveries.c.batch_id).where(deliveries.c.batch_id == batch.id)).first() is None:
            conn.execute(deliveries.insert().values(batch_id=batch.id, status="delivering", bucket=dest.bucket,
                                                    prefix=dest.prefix, started_at=iso(now)))  # fmt: skip
        ledger.append(conn, "delivery-started", "handoff", batch_id=batch.id, order_ref=batch.order_ref, at=now,
                      payload={"gates": [d.as_dict() for d in decisions], "bucket": dest.bucket, "prefix": dest.prefix,
                               "owner": self.ctx.owner, "took_over_from": lease.owner})  # fmt: skip

    def guard(self, batch: batches.Batch, now: dt.datetime) -> Guard:
        """Re-read the stop (ledger and audit bucket) and renew this process's lease; raise if either fails."""
        trust, t0 = self.ctx.trust(), time.monotonic()

        def check() -> None:
            at = now + dt.timedelta(seconds=time.monotonic() - t0)
            with self.ctx.engine.connect() as conn:
                active = self.gatekeeper.stops(conn, trust, at).active
            if active:
                raise DeliveryStopped(f"emergency stop {active[-1].id} set by {active[-1].set_by}: {active[-1].reason}")
            mine = Lease(self.ctx.owner, at + dt.timedelta(seconds=self.ctx.settings.lease_seconds))
            with self.ctx.engine.begin() as conn:
                if not batches.renew(conn, batch.id, mine):
                    raise LeaseLost("another process took over this delivery's lease")

        return check
