"""Taking objects back out of the recipient's bucket, and accounting for every one removed.

Two cases. A delivery stopped or failed before its manifest: its uncommitted objects (every
version under the batch's prefix) are removed, each removal is listed in the ledger with the rows
the recipient could have read meanwhile, and the batch is held (a stop) or failed. A delivered
batch withdrawn on purpose (``handoff withdraw``, e.g. a court narrowed scope before the
recipient collected): its objects and manifest are removed, a tombstone says why, the batch is
``withdrawn``. A withdrawal never undoes a disclosure in the accounting; it is added to it.
"""

from __future__ import annotations

import datetime as dt

from handoff.context import Context
from handoff.errors import GateError
from handoff.gates.keeper import Gatekeeper, Outcome
from handoff.release import manifest
from handoff.state import batch as batches
from handoff.state import ledger
from handoff.state.schema import iso
from handoff.state.status import Status, owner_gone
from handoff.storage import deliver


def _exposed_rows(batch: batches.Batch, removed: list[dict[str, str | None]]) -> int:
    names = {str(r["key"]).rsplit("/", 1)[-1] for r in removed}
    return sum(f.rows for f in batch.files if f.name in names)


class Withdrawal:
    def __init__(self, ctx: Context, gatekeeper: Gatekeeper) -> None:
        self.ctx, self.gatekeeper = ctx, gatekeeper

    def uncommitted(self, batch: batches.Batch, status: Status, why: str, now: dt.datetime) -> bool:
        """Remove a stopped or failed delivery's objects and move it to ``status``.

        Returns False (and removes nothing) when the manifest is already there: that delivery
        is complete, and the caller records it as delivered.
        """
        target = self.ctx.target(batch)
        dest = target.destination(batch.order_id, batch.order_version, batch.id)
        s3 = deliver.s3_client(target.region)
        if deliver.bucket_missing(s3, target.bucket):  # a mistyped bucket: nothing was ever uploaded
            removed: list[dict[str, str | None]] = []
        else:
            if deliver.read_manifest(s3, target, dest.prefix + manifest.NAME) is not None:
                return False
            removed = deliver.remove_prefix(s3, target, dest.prefix)
        kind = "delivery-stopped" if status == Status.HELD else "delivery-failed"
        with self.ctx.write() as conn:
            batches.set_status(conn, batch.id, status, f"{why}; {len(removed)} uncommitted object(s) removed", now)
            ledger.append(conn, kind, "handoff", batch_id=batch.id, order_ref=batch.order_ref, at=now,
                          payload={"reason": why, "recipient": dest.url, "objects_removed": removed,
                                   "records_exposed": _exposed_rows(batch, removed)})  # fmt: skip
        return True

    def _stuck(self, batch: batches.Batch, reason: str, actor: str, now: dt.datetime) -> Outcome:
        """End a delivery no live process is working on (it keeps failing): its uploaded objects are
        removed and accounted, and the batch is failed. A delivery a live process holds is left alone."""
        lease = batches.lease(batch)
        if lease.live(now) and not owner_gone(lease.owner):
            raise GateError(f"batch {batch.id} is being delivered by {lease.owner} until {lease.until}; "
                            "set `handoff hold set` to stop it, or wait for the lease to lapse")  # fmt: skip
        if not self.uncommitted(batch, Status.FAILED, f"withdrawn by {actor}: {reason}", now):
            raise GateError(f"batch {batch.id}'s manifest is already in the bucket, so it was delivered: run "
                            "`handoff release` to record it, then withdraw it")  # fmt: skip
        return Outcome(self.ctx.get(batch.id), objects=[])

    def delivered(self, batch_id: str, reason: str, actor: str, now: dt.datetime) -> Outcome:
        """Withdraw a delivered batch: remove every object and the manifest, leave a tombstone, account it."""
        if not reason.strip():
            raise GateError("give a --reason: the ledger and the tombstone say why the batch was withdrawn")
        batch = self.ctx.get(batch_id)
        if batch.status == Status.DELIVERING:
            return self._stuck(batch, reason.strip(), actor, now)
        if batch.status != Status.DELIVERED:
            raise GateError(f"batch {batch.id} is {batch.status}; only a delivered batch, or one stuck delivering, "
                            "is withdrawn (a stop withdraws a delivery in flight by itself)")  # fmt: skip
        target = self.ctx.target(batch)
        dest = target.destination(batch.order_id, batch.order_version, batch.id)
        s3 = deliver.s3_client(target.region)
        removed = deliver.remove_prefix(s3, target, dest.prefix)
        deliver.write_tombstone(s3, target, dest.prefix + "WITHDRAWN.json",
                                {"batch_id": batch.id, "order_ref": batch.order_ref, "withdrawn_at": iso(now),
                                 "reason": reason.strip(), "objects_removed": [r["key"] for r in removed]})  # fmt: skip
        with self.ctx.write() as conn:
            batches.set_status(conn, batch.id, Status.WITHDRAWN, f"withdrawn by {actor}: {reason.strip()}", now)
            ledger.append(conn, "withdrawn", actor, batch_id=batch.id, order_ref=batch.order_ref, at=now,
                          payload={"reason": reason.strip(), "recipient": dest.url, "objects_removed": removed,
                                   "records": batch.rows_staged})  # fmt: skip
        return Outcome(self.ctx.get(batch.id), objects=[])
