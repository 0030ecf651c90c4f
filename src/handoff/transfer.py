"""The transfer lifecycle: stage, evaluate gates, approve, release, deliver, account.

``transfer`` ends in one status: quarantined, held (with reasons), awaiting-approval or
delivered. ``release`` delivers every approved batch whose gates are all open *now*: the
gates are re-evaluated in the same state-database transaction that marks the upload as
started, so an emergency stop set a second earlier wins.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from handoff import approval as approvals_mod
from handoff import batch as batches
from handoff import court, deliver, gates, hold, ledger, lineage, manifest, signoff
from handoff import request as requests
from handoff import statement as st
from handoff.config import Settings
from handoff.deliver import DeliveredObject, Destination, Target
from handoff.errors import DeliveryError, GateError, HandoffError
from handoff.extract import arrow_schema as extract_schema
from handoff.order import Order, PolicySet
from handoff.pipeline import Progress, StageRequest, new_batch_id, parse_states, stage_batch
from handoff.stage import check_schema, verify_staged
from handoff.state import deliveries, iso, lock_for_decision, open_state, watermarks
from handoff.trust import Signer, Trust, load_trust, trust_path

log = logging.getLogger("handoff.transfer")
OPEN_STATUSES = ["staged", "held", "awaiting-approval", "approved", "delivering"]


@dataclass
class Outcome:
    batch: batches.Batch
    gates: list[gates.GateDecision] = field(default_factory=list)
    manifest_key: str | None = None
    objects: list[DeliveredObject] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        b = self.batch
        return {
            "batch_id": b.id,
            "status": b.status,
            "reason": b.status_reason,
            "order_ref": b.order_ref,
            "rows_extracted": b.rows_extracted,
            "rows_quarantined": b.rows_quarantined,
            "rows_staged": b.rows_staged,
            "excluded": b.excluded.get("totals", {}),
            "content_hash": b.content_hash,
            "gates": [g.as_dict() for g in self.gates],
            "manifest_key": self.manifest_key,
            "objects": [o.key for o in self.objects],
            "error": self.error,
        }


class Lifecycle:
    """Binds settings, policies and the state database for one command or flow run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policies = PolicySet(settings.policy_dir)
        self.engine = open_state(settings.resolved_state_url)

    # ----- reading -------------------------------------------------------------------------
    def trust(self) -> Trust:
        """The trust file as it is on disk now: a key removed a second ago no longer counts."""
        return load_trust(trust_path(self.settings.policy_dir))

    def view(self, conn: sa.Connection, batch: batches.Batch, now: dt.datetime) -> gates.RuntimeView:
        trust = self.trust()
        signed = approvals_mod.signed_decisions(conn, batch.id)
        return gates.RuntimeView(
            trust=trust,
            hearings=court.calendar(conn, self.policies, trust, now),
            stops=hold.current(conn, trust, now),
            decisions=signed,
            unbacked=approvals_mod.unbacked_rows(conn, batch.id, signed),
            destination=self.destination(batch),
            initiator=_or_reason(lambda: requests.initiator(trust, batch, now)),
            order_signoff=_or_reason(lambda: self.signoff(trust, self.order_for(batch), now)),
        )

    def signoff(self, trust: Trust, order: Order, now: dt.datetime) -> Signer:
        """Counsel's signature on the order version's file, verified now."""
        return signoff.verify_file(trust, self.policies.file_for(order), now)

    def order_for(self, batch: batches.Batch) -> Order:
        """The order version in force for the batch's order (the newest, not the batch's own)."""
        return self.policies.current(batch.order_id)

    def evaluate(self, conn: sa.Connection, batch: batches.Batch, now: dt.datetime) -> list[gates.GateDecision]:
        return gates.evaluate(batch, self.order_for(batch), self.view(conn, batch, now), now)

    def get(self, batch_id: str) -> batches.Batch:
        with self.engine.connect() as conn:
            return batches.find(conn, batch_id)

    # ----- status --------------------------------------------------------------------------
    def _apply(self, conn: sa.Connection, batch: batches.Batch, decisions: list[gates.GateDecision],
               now: dt.datetime, actor: str) -> batches.Batch:  # fmt: skip
        if batch.status in ("quarantined", "rejected", "delivered", "superseded", "delivering", "empty"):
            return batch
        status, reason = gates.status_for(decisions)
        if (status, reason) != (batch.status, batch.status_reason):
            batches.set_status(conn, batch.id, status, reason, now)
            if status in ("held", "superseded", "awaiting-approval"):
                ledger.append(conn, status, actor, batch_id=batch.id, order_ref=batch.order_ref, at=now,
                              payload={"gates": [d.as_dict() for d in decisions]})  # fmt: skip
        return batches.get(conn, batch.id)

    def refresh(self, batch_id: str, now: dt.datetime, actor: str = "handoff") -> Outcome:
        """Re-evaluate a batch's gates and record the status they imply."""
        with self.engine.begin() as conn:
            batch = batches.find(conn, batch_id)
            decisions = self.evaluate(conn, batch, now)
            batch = self._apply(conn, batch, decisions, now, actor)
        return Outcome(batch, decisions)

    def statuses(self, now: dt.datetime) -> list[Outcome]:
        with self.engine.connect() as conn:
            ids = batches.ids(conn)
        return [self.refresh(i, now) for i in ids]

    # ----- stage ---------------------------------------------------------------------------
    def transfer(self, request: StageRequest, bucket: str | None, now: dt.datetime,
                 progress: Progress | None = None, partition_rows: int | None = None,
                 runner: Any = None) -> Outcome:  # fmt: skip
        """Extract, validate, stage, then evaluate gates; deliver if every gate is open.

        With ``partition_rows`` the batch is staged as partitions run by ``runner`` (sequential
        by default; the Prefect flow passes a runner that maps them over its task runner).
        """
        target_bucket = bucket or self.settings.bucket
        if not target_bucket:
            raise HandoffError("give --bucket NAME (or set HANDOFF_BUCKET)")
        request = self.authorise(dataclasses.replace(request, bucket=target_bucket), now)
        if partition_rows:
            from handoff.partition import sequential, stage_partitioned

            staged = stage_partitioned(self.settings, request, now, partition_rows, runner or sequential)
        else:
            staged = stage_batch(self.settings, request, now, progress)
        if staged.status == "quarantined":
            return Outcome(self.get(staged.id))
        if staged.rows_staged == 0:
            return self._empty(staged, now, request.initiator)
        outcome = self.refresh(staged.id, now, request.initiator)
        if outcome.batch.status == "approved":
            return self.deliver(staged.id, now)
        return outcome

    def request_statement(self, request: StageRequest, bucket: str, now: dt.datetime,
                          batch_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        """The transfer request an operator signs for ``request`` (a new batch id unless given)."""
        fips = (
            parse_states(request.states) if request.states else self.policies.current(request.order_ref).in_scope_fips()
        )
        return requests.statement_for(batch_id or new_batch_id(now), request.order_ref, fips, request.source_url,
                                      bucket, request.incremental, now)  # fmt: skip

    def service_request(self, request: StageRequest, bucket: str | None, now: dt.datetime) -> StageRequest:
        """``request`` signed with this deployment's service key (``HANDOFF_SIGNING_KEY``)."""
        key = self.settings.signing_key
        target = bucket or self.settings.bucket
        if key is None:
            raise GateError("a scheduled transfer signs its request with the deployment's service key: set "
                            "HANDOFF_SIGNING_KEY to a key the trust file lists for handoff-operator")  # fmt: skip
        if not target:
            raise HandoffError("give the bucket (or set HANDOFF_BUCKET)")
        doc = self.request_statement(request, target, now)
        return dataclasses.replace(request, bucket=target, signed=st.obtain(doc, key, None, None))

    def authorise(self, request: StageRequest, now: dt.datetime) -> StageRequest:
        """Verify the signed request and the order's signature; the request then names who started it."""
        if request.signed is None:
            raise GateError("a transfer starts with a request signed by an operator key: pass --key KEY "
                            "(or set HANDOFF_SIGNING_KEY for a scheduled deployment)")  # fmt: skip
        trust = self.trust()
        expected = self.request_statement(request, str(request.bucket), now)
        verified = requests.accept(trust, request.signed, expected, now)
        order = self.policies.current(request.order_ref)
        counsel = self.signoff(trust, order, now)
        with self.engine.begin() as conn:
            signoff.check_fixed(conn, order)
            signoff.record_first_use(conn, order, counsel, court.file_sha256(self.policies.file_for(order)), now)
        return dataclasses.replace(request, batch_id=verified.doc["batch_id"], initiator=verified.principal,
                                   initiator_key=verified.signer.fingerprint)  # fmt: skip

    def _empty(self, staged: batches.Batch, now: dt.datetime, actor: str) -> Outcome:
        """A batch with no rows to deliver needs no approval and leaves nothing; say so and stop."""
        reason = ("no rows to deliver: nothing changed since the watermark"
                  if staged.since else "no rows to deliver: no enrollee meets the order, or every row was quarantined")  # fmt: skip
        with self.engine.begin() as conn:
            batches.set_status(conn, staged.id, "empty", reason, now)
            ledger.append(conn, "empty", actor, batch_id=staged.id, order_ref=staged.order_ref, at=now,
                          payload={"rows_extracted": staged.rows_extracted, "rows_quarantined": staged.rows_quarantined,
                                   "since": staged.since})  # fmt: skip
        return Outcome(self.get(staged.id))

    def revalidation_statement(self, batch_id: str, now: dt.datetime, new_id: str | None = None) -> dict[str, Any]:
        """The request an operator signs to re-check a superseded batch under the order in force."""
        old = self.get(batch_id)
        return requests.revalidation_statement(new_id or new_batch_id(now), old.id, self.order_for(old).ref, now)

    def revalidate(self, batch_id: str, signed: st.Signed, now: dt.datetime) -> Outcome:
        """Re-check a superseded batch's staged files under the order now in force (see ``revalidate``)."""
        from handoff.revalidate import revalidate
        from handoff.suite import load_suite

        trust = self.trust()
        verified = requests.accept(trust, signed, self.revalidation_statement(batch_id, now), now)
        with self.engine.begin() as conn:
            old = batches.find(conn, batch_id)
            new_order = self.order_for(old)
            fresh = revalidate(conn, self.settings, old, self.policies.get(old.order_ref), new_order,
                               load_suite(self.policies, new_order), verified, now)  # fmt: skip
        if fresh.status == "quarantined":
            return Outcome(self.get(fresh.id))
        return self.refresh(fresh.id, now, verified.principal)

    # ----- decide --------------------------------------------------------------------------
    def decision_statement(self, batch_id: str, decision: str, note: str | None, now: dt.datetime,
                           ttl: dt.timedelta = approvals_mod.DEFAULT_TTL) -> dict[str, Any]:  # fmt: skip
        """What an approver signs to decide ``batch_id`` (printed by ``--statement``, shown in the UI)."""
        batch = self.get(batch_id)
        approvals_mod.decidable(batch.id, batch.status)
        if not batch.content_hash:
            raise GateError(f"batch {batch.id} has no staged content to decide")
        destination = self.destination(batch)
        if destination is None:
            raise HandoffError(f"batch {batch.id} has no bucket; set HANDOFF_BUCKET")
        return approvals_mod.statement_for(batch, self.order_for(batch), destination, decision, note, now, ttl)

    def decide(self, batch_id: str, signed: st.Signed, now: dt.datetime, attempt: str | None = None) -> Outcome:
        """Record a signed approval or rejection; a refused attempt is itself recorded in the ledger.

        ``attempt`` names one answer of a flow's approval form: a resumed flow replays earlier
        answers, and each refusal is recorded once.
        """
        batch = self.get(batch_id)
        with self.engine.connect() as conn:
            if any(
                d.signature.strip() == signed.signature.strip() for d in approvals_mod.signed_decisions(conn, batch.id)
            ):
                return self.refresh(batch.id, now)  # already recorded (a woken flow hands it back)
        actor = "(signature not verified)"
        try:
            trust = self.trust()
            order = self.order_for(batch)
            destination = self.destination(batch)
            if destination is None:
                raise GateError(f"batch {batch.id} has no bucket; set HANDOFF_BUCKET")
            initiator = requests.initiator(trust, batch, now)
            actor = st.verify(trust, signed, st.DECISION, now).principal
            decided = approvals_mod.judge(signed, trust, batch, order, destination, initiator, now)
            approvals_mod.check(batch, order, decided)
            with self.engine.begin() as conn:
                approvals_mod.record(conn, batch, order, decided, now)
        except GateError as exc:
            self._refused(batch.id, actor, approvals_mod.refusal(exc), now, attempt)
            raise
        return self.refresh(batch.id, now, decided.approver)

    def _refused(self, batch_id: str, actor: str, reason: str, now: dt.datetime, attempt: str | None) -> None:
        with self.engine.begin() as conn:
            if attempt and any(
                e.payload.get("attempt") == attempt
                for e in ledger.entries(conn, batch_id=batch_id, kinds=["approval-refused"])
            ):
                return  # a resumed flow replays earlier answers; record each refusal once
            ledger.append(conn, "approval-refused", actor, batch_id=batch_id, at=now,
                          payload={"reason": reason, "attempt": attempt})  # fmt: skip

    # ----- release -------------------------------------------------------------------------
    def start_delivery(self, batch_id: str, now: dt.datetime) -> tuple[bool, Outcome]:
        """Atomically re-check every gate and, only if all are open, mark the upload as started."""
        with self.engine.begin() as conn:
            lock_for_decision(conn)
            batch = batches.find(conn, batch_id)
            decisions = self.evaluate(conn, batch, now)
            if batch.status == "delivered":
                return False, Outcome(batch, decisions)
            if not gates.all_open(decisions):
                if batch.status == "delivering":
                    batches.set_status(conn, batch.id, "held", "delivery paused: a gate closed", now)
                    batch = batches.get(conn, batch.id)
                return False, Outcome(self._apply(conn, batch, decisions, now, "handoff"), decisions)
            target = self.target(batch)
            order = self.order_for(batch)
            folder = target.folder(order.order_id, order.version, batch.id)
            existing = conn.execute(sa.select(deliveries).where(deliveries.c.batch_id == batch.id)).first()
            if existing is None:
                conn.execute(deliveries.insert().values(batch_id=batch.id, status="delivering", bucket=target.bucket,
                                                        prefix=folder, started_at=iso(now)))  # fmt: skip
            batches.set_status(conn, batch.id, "delivering", None, now)
            ledger.append(conn, "delivery-started", "handoff", batch_id=batch.id, order_ref=order.ref, at=now,
                          payload={"gates": [d.as_dict() for d in decisions], "bucket": target.bucket,
                                   "prefix": folder, "resumed": existing is not None})  # fmt: skip
            return True, Outcome(batches.get(conn, batch.id), decisions)

    def target(self, batch: batches.Batch) -> Target:
        bucket = batch.bucket or self.settings.bucket
        if not bucket:
            raise HandoffError(f"batch {batch.id} has no bucket; set HANDOFF_BUCKET")
        return Target(bucket, self.settings.prefix, self.settings.kms_key_id, self.settings.region,
                              self.settings.multipart_threshold_mb * 1024 * 1024)  # fmt: skip

    def destination(self, batch: batches.Batch) -> Destination | None:
        """Where this batch would be written now (bucket recorded with it, prefix and key configured)."""
        if not (batch.bucket or self.settings.bucket):
            return None
        return self.target(batch).destination(batch.order_id, batch.order_version, batch.id)

    def deliver(self, batch_id: str, now: dt.datetime, flow_run_id: str | None = None,
                on_file: Callable[[str], None] | None = None) -> Outcome:  # fmt: skip
        """Deliver one batch if its gates are open now; resume a half-finished delivery."""
        started, outcome = self.start_delivery(batch_id, now)
        if not started:
            return outcome
        batch = outcome.batch
        order = self.order_for(batch)
        target = self.target(batch)
        dest = target.destination(order.order_id, order.version, batch.id)
        lineage.emit(self.settings, "START", batch, order, target.bucket, dest.prefix, now)
        try:
            objects, approved = self._upload(batch, order, target, dest, now, on_file)
        except HandoffError as exc:
            self._fail(batch, order, target, dest.prefix, now, str(exc))
            raise
        final = self._delivered(batch, order, dest, objects, approved, now)
        lineage.emit(self.settings, "COMPLETE", final, order, target.bucket, dest.prefix, now)
        return Outcome(final, outcome.gates, objects[-1].key, objects)

    def _upload(self, batch: batches.Batch, order: Order, target: Target, dest: Destination, now: dt.datetime,
                on_file: Callable[[str], None] | None) -> tuple[list[DeliveredObject], list[str]]:  # fmt: skip
        """Every staged file, then the manifest (written last, once); the approvers it names."""
        folder = Path(batch.staging_path or "")
        changed = verify_staged(folder, batch.files)
        if changed:
            raise DeliveryError(f"batch {batch.id}: staged files changed since validation or are missing "
                                f"({', '.join(changed)}); nothing was uploaded")  # fmt: skip
        bad = check_schema(folder, batch.files, extract_schema(order))
        if bad:
            raise DeliveryError(f"batch {batch.id}: staged files do not match {order.ref}'s columns or are "
                                f"missing ({', '.join(bad)}); nothing was uploaded")  # fmt: skip
        s3 = deliver.s3_client(target.region)
        manifest_key = dest.prefix + "manifest.json"
        existing = deliver.read_manifest(s3, target, manifest_key)
        if existing is not None and existing.get("content_hash") != batch.content_hash:
            raise DeliveryError(f"s3://{target.bucket}/{manifest_key} holds another batch's manifest")
        objects = []
        for f in batch.files:
            objects.append(deliver.upload_file(s3, target, dest.prefix + f.name, folder / f.name, f.sha256))
            if on_file:
                on_file(f.name)
        trust = self.trust()
        with self.engine.connect() as conn:  # the approvals the gate accepted, as the gate judges them
            signed = approvals_mod.signed_decisions(conn, batch.id)
            initiator = requests.initiator(trust, batch, now)
            head = ledger.head(conn)
        found = approvals_mod.binding(signed, trust, batch, order, dest, initiator, now)
        doc = manifest.build(batch, order, dest, objects, found.approvals, trust.sha256, head, iso(now))
        if existing is None:
            objects.append(deliver.write_manifest(s3, target, manifest_key, doc))
        else:
            objects.append(deliver.existing_object(s3, target, manifest_key))
        return objects, [d.approver for d in found.approvals]

    def _delivered(self, batch: batches.Batch, order: Order, dest: Destination,
                   objects: list[DeliveredObject], approvers: list[str], done: dt.datetime) -> batches.Batch:  # fmt: skip
        """Record the completed delivery: status, objects, the disclosure in the ledger, the watermark."""
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.batch_id == batch.id).values(
                status="delivered", completed_at=iso(done), manifest_key=objects[-1].key,
                objects=[o.as_dict() for o in objects]))  # fmt: skip
            batches.set_status(conn, batch.id, "delivered", None, done)
            if not ledger.entries(conn, batch_id=batch.id, kinds=["delivered"]):
                ledger.append(conn, "delivered", ", ".join(approvers) or "handoff", batch_id=batch.id,
                              order_ref=order.ref, at=done,
                              payload={"recipient": dest.url, "records": batch.rows_staged,
                                       "files": len(batch.files), "content_hash": batch.content_hash,
                                       "manifest_sha256": objects[-1].sha256, "approver": ", ".join(approvers),
                                       "approvers": approvers, "initiator": batch.initiator,
                                       "jurisdictions": batch.jurisdictions})  # fmt: skip
            self._advance_watermark(conn, batch)
            return batches.get(conn, batch.id)

    def _fail(self, batch: batches.Batch, order: Order, target: Target, folder: str,
              now: dt.datetime, message: str) -> None:  # fmt: skip
        with self.engine.begin() as conn:
            ledger.append(conn, "delivery-failed", "handoff", batch_id=batch.id, order_ref=order.ref, at=now,
                          payload={"error": message})  # fmt: skip
        try:
            lineage.emit(self.settings, "FAIL", batch, order, target.bucket, folder, now, error=message)
        except Exception:  # noqa: BLE001 - lineage must not hide the delivery error
            log.exception("could not emit lineage FAIL event")

    def _advance_watermark(self, conn: sa.Connection, batch: batches.Batch) -> None:
        if not batch.watermark:
            return
        key = ",".join(batch.jurisdictions)
        row = conn.execute(sa.select(watermarks).where(watermarks.c.order_id == batch.order_id,
                                                       watermarks.c.jurisdiction == key)).first()  # fmt: skip
        if row is None:
            conn.execute(watermarks.insert().values(order_id=batch.order_id, jurisdiction=key,
                                                    watermark=batch.watermark, batch_id=batch.id))  # fmt: skip
        elif row.watermark < batch.watermark:
            conn.execute(watermarks.update().where(watermarks.c.order_id == batch.order_id,
                                                   watermarks.c.jurisdiction == key)
                         .values(watermark=batch.watermark, batch_id=batch.id))  # fmt: skip

    def batch_for_flow_run(self, flow_run_id: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(batches.batches.c.id).where(batches.batches.c.flow_run_id == flow_run_id)
            ).first()
        return row[0] if row else None

    @staticmethod
    def jurisdiction_key(order: Order, fips: list[str] | None) -> list[str]:
        from handoff.source_model import STATES

        return [STATES[f] for f in order.in_scope_fips(fips)]

    def since(self, order_ref: str | None, states: list[str]) -> dt.datetime | None:
        """Where an incremental run starts: the delivered watermark of the order and these states."""
        order = self.policies.current(order_ref)
        fips = parse_states(states) if states else None
        return self.watermark(order.order_id, self.jurisdiction_key(order, fips))

    def watermark(self, order_id: str, jurisdictions: list[str]) -> dt.datetime | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(watermarks.c.watermark).where(
                watermarks.c.order_id == order_id, watermarks.c.jurisdiction == ",".join(jurisdictions))).first()  # fmt: skip
        return dt.datetime.fromisoformat(row[0]) if row else None

    def release(self, now: dt.datetime, flow_run_id: str | None = None) -> list[Outcome]:
        """Deliver every batch whose gates are all open now; report the rest with reasons."""
        with self.engine.connect() as conn:
            ids = batches.ids(conn, OPEN_STATUSES)
        results = []
        for batch_id in ids:
            try:
                results.append(self.deliver(batch_id, now, flow_run_id))
            except GateError:
                results.append(self.refresh(batch_id, now))
            except HandoffError as exc:
                # One batch that cannot be delivered now must not hold back the others; it stays
                # "delivering" and the next release resumes it.
                log.error("delivery of %s failed: %s", batch_id, exc)
                failed = self.refresh(batch_id, now)
                failed.error = str(exc)
                results.append(failed)
        return results


def _or_reason(read: Callable[[], Signer]) -> Signer | str:
    """A verified signer, or the one-line reason it could not be verified (for a gate to show)."""
    try:
        return read()
    except HandoffError as exc:
        return str(exc)
