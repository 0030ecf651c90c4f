"""Releasing a batch: the handover (gates and lease), the upload, then the accounting.

Nothing is uploaded until ``handover.start`` committed the batch as ``delivering`` and anchored
that entry. A stop mid-delivery withdraws the uncommitted objects and holds the batch; a delivery
that cannot complete ends ``failed`` (never retried) with its objects withdrawn; a transient S3
error lets the lease go so the next release resumes.
"""

from __future__ import annotations

import datetime as dt
import logging

from handoff.context import Context
from handoff.errors import ConfigError, DeliveryFailed, DeliveryStopped, GateError, HandoffError, LeaseLost
from handoff.evidence import accounting, lineage
from handoff.gates.keeper import Gatekeeper, Outcome
from handoff.policy.order import Order
from handoff.release.handover import Handover
from handoff.release.upload import already_delivered, upload_batch
from handoff.release.withdraw import Withdrawal
from handoff.state import batch as batches
from handoff.state import ledger
from handoff.state.status import OPEN, Lease, Status
from handoff.storage.deliver import Destination

log = logging.getLogger(__name__)


class Release:
    def __init__(self, ctx: Context, gatekeeper: Gatekeeper, withdrawal: Withdrawal) -> None:
        self.ctx, self.gatekeeper, self.withdrawal = ctx, gatekeeper, withdrawal
        self.handover = Handover(ctx, gatekeeper)

    def deliver(self, batch_id: str, now: dt.datetime, flow_run_id: str | None = None) -> Outcome:
        """Deliver one batch if its gates are open now; resume a crashed delivery once its lease expired."""
        state, outcome = self.handover.start(batch_id, now)
        if state == "stale":
            reason = "a crashed delivery stopped: a gate closed before it was resumed"
            if not self.withdrawal.uncommitted(outcome.batch, Status.HELD, reason, now):
                return self._finish(outcome, now)  # its manifest is there: the recipient can read it
            return self.gatekeeper.refresh(batch_id, now)
        if state != "started":
            return outcome
        batch, order = outcome.batch, self.ctx.order_for(outcome.batch)
        target = self.ctx.target(batch)
        dest = target.destination(order.order_id, order.version, batch.id)
        lineage.emit(self.ctx.settings, "START", batch, order, target.bucket, dest.prefix, now)
        try:
            objects, approvers = upload_batch(
                self.ctx, batch, order, target, dest, self.handover.guard(batch, now), now
            )
        except LeaseLost as exc:  # the batch is someone else's now: leave its status and objects alone
            return Outcome(self.ctx.get(batch.id), outcome.gates, error=str(exc))
        except HandoffError as exc:
            self._interrupted(batch, order, dest, exc, now)
            if isinstance(exc, DeliveryStopped):
                return self.gatekeeper.refresh(batch.id, now)
            raise
        final = accounting.record_delivery(self.ctx, batch, order, dest, objects, approvers, now)
        lineage.emit(self.ctx.settings, "COMPLETE", final, order, target.bucket, dest.prefix, now)
        return Outcome(final, outcome.gates, objects[-1].key, objects)

    def _finish(self, outcome: Outcome, now: dt.datetime) -> Outcome:
        """Record a delivery whose manifest a killed run already wrote: it is a disclosure, whatever the
        gates say now (a stop set since may then withdraw it, and that is accounted too)."""
        batch = outcome.batch
        order = self.ctx.order_for(batch)
        target = self.ctx.target(batch)
        dest = target.destination(batch.order_id, batch.order_version, batch.id)
        found = already_delivered(batch, target, dest)
        if found is None:  # removed meanwhile: nothing is readable, nothing to record
            return self.gatekeeper.refresh(batch.id, now)
        objects, approvers = found
        final = accounting.record_delivery(self.ctx, batch, order, dest, objects, approvers, now)
        lineage.emit(self.ctx.settings, "COMPLETE", final, order, target.bucket, dest.prefix, now)
        return Outcome(final, outcome.gates, objects[-1].key, objects)

    def _interrupted(self, batch: batches.Batch, order: Order, dest: Destination, exc: HandoffError,
                     now: dt.datetime) -> None:  # fmt: skip
        """Withdraw a stopped or failed delivery; for anything else let the lease go so a release resumes it."""
        try:
            lineage.emit(self.ctx.settings, "FAIL", batch, order, dest.bucket, dest.prefix, now, error=str(exc))
        except Exception:  # noqa: BLE001 - lineage must not hide the delivery error
            log.exception("could not emit lineage FAIL event")
        attempts = self.ctx.settings.delivery_attempts
        with self.ctx.engine.connect() as conn:
            failed_before = len(ledger.entries(conn, batch_id=batch.id, kinds=["delivery-interrupted"]))
        if not isinstance(exc, (DeliveryStopped, DeliveryFailed)) and failed_before + 1 >= attempts:
            exc = DeliveryFailed(f"{exc} ({attempts} releases failed; fix the cause, then transfer again)")
        if isinstance(exc, (DeliveryStopped, DeliveryFailed)):
            status = Status.HELD if isinstance(exc, DeliveryStopped) else Status.FAILED
            why = f"stopped mid-delivery: {exc}" if status == Status.HELD else f"delivery failed: {exc}"
            try:
                if self.withdrawal.uncommitted(batch, status, why, now):
                    return
            except HandoffError as again:  # the bucket cannot even be read: the lease goes, the reason stays
                exc = again
        with self.ctx.write() as conn:
            # The lease goes at once (the next release resumes); the batch says why it waits.
            batches.set_status(conn, batch.id, Status.DELIVERING,
                               f"release {failed_before + 1} of {attempts} failed: {exc}", now,
                               Lease(self.ctx.owner, now))  # fmt: skip
            ledger.append(conn, "delivery-interrupted", "handoff", batch_id=batch.id, order_ref=batch.order_ref, at=now,
                          payload={"error": str(exc)})  # fmt: skip

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
            except ConfigError:
                raise  # the same for every batch (no audit bucket, say): said once, by the caller
            except HandoffError as exc:
                # One batch that cannot be delivered now must not hold back the others; the caller
                # reports it (the CLI on stderr, the flow as its result), so the log does not repeat it.
                log.info("delivery of %s failed: %s", batch_id, exc)
                failed = self.gatekeeper.refresh(batch_id, now)
                failed.error = str(exc)
                results.append(failed)
        return results
