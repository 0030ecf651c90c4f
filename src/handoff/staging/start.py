"""Starting a transfer: verify the operator's signed request and the order's signature, then stage.

``transfer`` ends in one status: quarantined, empty, held, awaiting-approval (or delivered, if
every gate is already open). The request names the batch id, so the signature says who started
exactly this batch; whoever signed it can never approve it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa

from handoff.authority import court, in_force, signoff
from handoff.authority import request as requests
from handoff.checks.server import start_server, use_processes
from handoff.context import Context
from handoff.errors import GateError, HandoffError, PolicyError
from handoff.gates.keeper import Gatekeeper, Outcome
from handoff.signing import statement as st
from handoff.signing.trust import SERVICE
from handoff.staging.pipeline import Progress, StageRequest, new_batch_id, parse_states, stage_batch
from handoff.state import batch as batches
from handoff.state import ledger, schema
from handoff.state.status import Status
from handoff.storage import deliver


class Requests:
    """The operator's signed request: what it says, and whether it may start this transfer."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def request_statement(self, request: StageRequest, bucket: str, now: dt.datetime,
                          batch_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        """The transfer request an operator signs for ``request`` (a new batch id unless given)."""
        policies = self.ctx.policies
        fips = parse_states(request.states) if request.states else policies.current(request.order_ref).in_scope_fips()
        return requests.statement_for(batch_id or new_batch_id(now), request.order_ref, fips, request.source_url,
                                      bucket, request.incremental, now)  # fmt: skip

    def service_request(self, request: StageRequest, bucket: str | None, now: dt.datetime) -> StageRequest:
        """``request`` signed with this deployment's service key (``HANDOFF_SIGNING_KEY``)."""
        key, target = self.ctx.settings.signing_key, bucket or self.ctx.settings.bucket
        if key is None:
            raise GateError("a scheduled transfer signs its request with the deployment's service key: set "
                            f"HANDOFF_SIGNING_KEY to a key the trust file lists for {SERVICE}")  # fmt: skip
        if not target:
            raise HandoffError("give the bucket (or set HANDOFF_BUCKET)")
        doc = {**self.request_statement(request, target, now), "scheduled": True}
        data = st.canonical(doc)
        return dataclasses.replace(request, bucket=target, signed=st.Signed(data, st.sign_with_key(data, key, SERVICE)))

    def authorise(self, request: StageRequest, now: dt.datetime) -> StageRequest:
        """Verify the signed request and the order's signature; the request then names who started it."""
        if request.signed is None:
            raise GateError("a transfer starts with a request signed by an operator key: pass --key KEY "
                            "(or set HANDOFF_SIGNING_KEY for a scheduled deployment)")  # fmt: skip
        trust = self.ctx.trust()
        verified = requests.accept(
            trust, request.signed, self.request_statement(request, str(request.bucket), now), now
        )
        order = self.ctx.policies.current(request.order_ref)
        order_file = self.ctx.policies.file_for(order)
        counsel = signoff.verify_file(trust, order_file, now)
        batch_id = str(verified.doc["batch_id"])
        if (self.ctx.settings.staging_dir / f"{batch_id}.partial").exists() or \
                (self.ctx.settings.staging_dir / batch_id).exists():  # fmt: skip
            raise GateError(f"this signed request was already used: batch {batch_id} exists; each request starts "
                            "one batch, so sign a new one (`handoff transfer --statement`)")  # fmt: skip
        with self.ctx.write() as conn:
            if conn.execute(sa.select(schema.batches.c.id).where(schema.batches.c.id == batch_id)).first():
                raise GateError(f"this signed request was already used: batch {batch_id} exists; each request "
                                "starts one batch, so sign a new one (`handoff transfer --statement`)")  # fmt: skip
            behind = in_force.problem(order, court.file_sha256(order_file), in_force.accepted(conn, order.order_id))
            if behind:
                raise PolicyError(behind)
            signoff.check_fixed(conn, order)
            signoff.record_first_use(conn, order, counsel, court.file_sha256(order_file), now)
        return dataclasses.replace(request, batch_id=verified.doc["batch_id"], initiator=verified.principal,
                                   initiator_key=verified.signer.fingerprint)  # fmt: skip


class Staging:
    def __init__(self, ctx: Context, gatekeeper: Gatekeeper) -> None:
        self.ctx, self.gatekeeper, self.requests = ctx, gatekeeper, Requests(ctx)

    def transfer(self, request: StageRequest, bucket: str | None, now: dt.datetime, progress: Progress | None = None,
                 partition_rows: int | None = None, runner: Any = None) -> Outcome:  # fmt: skip
        """Extract, validate, stage, then evaluate the gates.

        With ``partition_rows`` the batch is staged as partitions run by ``runner`` (sequential
        by default; the Prefect flow passes a runner that maps them over its task runner).
        """
        settings = self.ctx.settings
        if use_processes(settings.check_processes, settings.workers):
            start_server()  # the fork server imports GX on its own core while the request and destination are checked
        target = bucket or self.ctx.settings.bucket
        if not target:
            raise HandoffError("give --bucket NAME (or set HANDOFF_BUCKET)")
        # Where it goes and where its evidence goes, checked before anything is read or recorded: a
        # mistyped bucket never leaves a batch stuck. (The request's signature is checked in between,
        # so a request for another bucket is refused as that, first.)
        if self.ctx.store is not None:
            self.ctx.store.check()
        request = self.requests.authorise(dataclasses.replace(request, bucket=target), now)
        deliver.check_destination(self.ctx.settings.region, target, self.ctx.settings.kms_key_id)
        if partition_rows:
            from handoff.staging.partition import sequential, stage_partitioned

            staged = stage_partitioned(self.ctx.settings, request, now, partition_rows, runner or sequential)
        else:
            staged = stage_batch(self.ctx.settings, request, now, progress)
        self.ctx.anchor()  # the staged (or quarantined) entry was written by the pipeline's own transaction
        if staged.status == Status.QUARANTINED:
            return Outcome(self.ctx.get(staged.id))
        if staged.rows_staged == 0:
            return self._empty(staged, now, request.initiator)
        return self.gatekeeper.refresh(staged.id, now, request.initiator)

    def _empty(self, staged: batches.Batch, now: dt.datetime, actor: str) -> Outcome:
        """A batch with no rows to deliver needs no approval and leaves nothing; say so and stop."""
        reason = ("no rows to deliver: nothing changed since the watermark" if staged.since
                  else "no rows to deliver: no enrollee meets the order, or every row was quarantined")  # fmt: skip
        with self.ctx.write() as conn:
            batches.set_status(conn, staged.id, Status.EMPTY, reason, now)
            ledger.append(conn, "empty", actor, batch_id=staged.id, order_ref=staged.order_ref, at=now,
                          payload={"rows_extracted": staged.rows_extracted, "rows_quarantined": staged.rows_quarantined,
                                   "since": staged.since})  # fmt: skip
        return Outcome(self.ctx.get(staged.id))
