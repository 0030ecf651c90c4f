"""Releasing a batch: gates and lease in one transaction, then the upload, then the accounting.

``start`` re-evaluates every gate (every signature re-verified) in the transaction that marks
the batch ``delivering`` under this process's lease; a live delivery held by another process is
never touched, an expired one is taken over once. Nothing is uploaded until that transaction is
committed and its ledger entry anchored. A stop mid-delivery withdraws the uncommitted objects
and holds the batch; a delivery that cannot complete ends ``failed`` (never retried) with its
objects withdrawn; a transient S3 error lets the lease go so the next release resumes.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import sqlalchemy as sa

from handoff import batch as batches
from handoff import evidence, gates, ledger, lineage, watermark
from handoff.context import Context
from handoff.deliver import DeliveredObject, Destination, Guard
from handoff.errors import DeliveryFailed, DeliveryStopped, GateError, HandoffError
from handoff.gatekeeper import Gatekeeper, Outcome
from handoff.order import Order
from handoff.state import deliveries, iso, lock_for_decision
from handoff.status import FINAL, OPEN, Lease, Status
from handoff.upload import upload_batch
from handoff.withdraw import Withdrawal

log = logging.getLogger("handoff.release")


class Release:
    def __init__(self, ctx: Context, gatekeeper: Gatekeeper, withdrawal: Withdrawal) -> None:
        self.ctx, self.gatekeeper, self.withdrawal = ctx, gatekeeper, withdrawal

    def start(self, batch_id: str, now: dt.datetime) -> tuple[str, Outcome]:
        """``started``, ``stale`` (a crashed delivery whose gates closed) or ``waiting``, with the outcome."""
        evidence.require(self.ctx.store)
        with self.ctx.write(anchor_required=True) as conn:
            lock_for_decision(conn)
            batch = batches.find(conn, batch_id)
            decisions = self.gatekeeper.evaluate(conn, batch, now)
            lease = batches.lease(batch)
            if batch.status in FINAL or batch.status == Status.DELIVERED:
                return "waiting", Outcome(batch, decisions)
            if batch.status == Status.DELIVERING and lease.live(now) and lease.owner != self.ctx.owner:
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
                    raise DeliveryStopped("another process took over this delivery's lease")

        return check

    def deliver(self, batch_id: str, now: dt.datetime, flow_run_id: str | None = None) -> Outcome:
        """Deliver one batch if its gates are open now; resume a crashed delivery once its lease expired."""
        state, outcome = self.start(batch_id, now)
        if state == "stale":
            reason = "a crashed delivery stopped: a gate closed before it was resumed"
            self.withdrawal.uncommitted(outcome.batch, Status.HELD, reason, now)
            return self.gatekeeper.refresh(batch_id, now)
        if state != "started":
            return outcome
        batch, order = outcome.batch, self.ctx.order_for(outcome.batch)
        target = self.ctx.target(batch)
        dest = target.destination(order.order_id, order.version, batch.id)
        lineage.emit(self.ctx.settings, "START", batch, order, target.bucket, dest.prefix, now)
        try:
            objects, approvers = upload_batch(self.ctx, batch, order, target, dest, self.guard(batch, now), now)
        except HandoffError as exc:
            self._interrupted(batch, order, dest, exc, now)
            if isinstance(exc, DeliveryStopped):
                return self.gatekeeper.refresh(batch.id, now)
            raise
        final = self._complete(batch, order, dest, objects, approvers, now)
        lineage.emit(self.ctx.settings, "COMPLETE", final, order, target.bucket, dest.prefix, now)
        return Outcome(final, outcome.gates, objects[-1].key, objects)

    def _interrupted(self, batch: batches.Batch, order: Order, dest: Destination, exc: HandoffError,
                     now: dt.datetime) -> None:  # fmt: skip
        """Withdraw a stopped or failed delivery; for anything else let the lease go so a release resumes it."""
        try:
            lineage.emit(self.ctx.settings, "FAIL", batch, order, dest.bucket, dest.prefix, now, error=str(exc))
        except Exception:  # noqa: BLE001 - lineage must not hide the delivery error
            log.exception("could not emit lineage FAIL event")
        if isinstance(exc, (DeliveryStopped, DeliveryFailed)):
            status = Status.HELD if isinstance(exc, DeliveryStopped) else Status.FAILED
            why = f"stopped mid-delivery: {exc}" if status == Status.HELD else f"delivery failed: {exc}"
            if self.withdrawal.uncommitted(batch, status, why, now):
                return
        with self.ctx.write() as conn:
            batches.renew(conn, batch.id, Lease(self.ctx.owner, now))  # expired: the next release resumes it
            ledger.append(conn, "delivery-interrupted", "handoff", batch_id=batch.id, order_ref=batch.order_ref, at=now,
                          payload={"error": str(exc)})  # fmt: skip

    def _complete(self, batch: batches.Batch, order: Order, dest: Destination, objects: list[DeliveredObject],
                  approvers: list[str], done: dt.datetime) -> batches.Batch:  # fmt: skip
        """Record the completed delivery: status, objects, the disclosure in the ledger, the watermark."""
        with self.ctx.write() as conn:
            conn.execute(deliveries.update().where(deliveries.c.batch_id == batch.id).values(
                status="delivered", completed_at=iso(done), manifest_key=objects[-1].key,
                objects=[o.as_dict() for o in objects]))  # fmt: skip
            batches.set_status(conn, batch.id, Status.DELIVERED, None, done)
            if not ledger.entries(conn, batch_id=batch.id, kinds=["delivered"]):
                ledger.append(conn, "delivered", ", ".join(approvers) or "handoff", batch_id=batch.id,
                              order_ref=order.ref, at=done,
                              payload={"recipient": dest.url, "records": batch.rows_staged, "files": len(batch.files),
                                       "content_hash": batch.content_hash, "manifest_sha256": objects[-1].sha256,
                                       "approver": ", ".join(approvers), "approvers": approvers,
                                       "initiator": batch.initiator, "jurisdictions": batch.jurisdictions})  # fmt: skip
            watermark.advance(conn, batch)
            return batches.get(conn, batch.id)

    def release(self, now: dt.datetime, flow_run_id: str | None = None) -> list[Outcome]:
        """Deliver every batch whose gates are all open now; report the rest with reasons."""
        with self.ctx.engine.connect() as conn:
            ids = batches.ids(conn, [str(s) for s in OPEN])
        results = []
        for batch_id in ids:
            try:
                results.append(self.deliver(batch_id, now, flow_run_id))
            except GateError:
                results.append(self.gatekeeper.refresh(batch_id, now))
            except HandoffError as exc:
                # One batch that cannot be delivered now must not hold back the others.
                log.error("delivery of %s failed: %s", batch_id, exc)
                failed = self.gatekeeper.refresh(batch_id, now)
                failed.error = str(exc)
                results.append(failed)
        return results
