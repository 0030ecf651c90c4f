"""Uploading one started batch: every staged file, then the manifest, each behind the guard.

Before the first byte: the staged files are re-hashed and their Parquet schemas checked against
the order's columns. Before every object, every multipart part and the manifest the guard
re-reads the emergency stop (ledger and audit bucket) and renews the delivery lease; either
failing raises ``DeliveryStopped`` and nothing more is written. Up to ``HANDOFF_UPLOADS`` objects
are in flight at once, each guarded, in order, before its bytes go (``deliver.upload_files``).
"""

from __future__ import annotations

import datetime as dt
import posixpath
from pathlib import Path

from handoff.authority import approval
from handoff.authority import request as requests
from handoff.context import Context
from handoff.errors import DeliveryFailed
from handoff.extract.stage import check_schema, verify_staged
from handoff.policy.order import Order
from handoff.release import manifest, proof
from handoff.state import batch as batches
from handoff.state import ledger
from handoff.state.schema import iso
from handoff.storage import deliver
from handoff.storage.deliver import DeliveredObject, Destination, Guard, Target


def check_staged(batch: batches.Batch, order: Order) -> Path:
    """The staged folder, once every file is present, unchanged and shaped as the order permits."""
    folder = Path(batch.staging_path or "")
    changed = verify_staged(folder, batch.files)
    if changed:
        raise DeliveryFailed(f"batch {batch.id}: staged files changed since validation or are missing "
                             f"({', '.join(changed)}); nothing was uploaded")  # fmt: skip
    from handoff.extract.reader import arrow_schema  # pyarrow and the source model: only when files are checked

    bad = check_schema(folder, batch.files, arrow_schema(order))
    if bad:
        raise DeliveryFailed(f"batch {batch.id}: staged files do not match {order.ref}'s columns "
                             f"({', '.join(bad)}); nothing was uploaded")  # fmt: skip
    return folder


def upload_batch(ctx: Context, batch: batches.Batch, order: Order, target: Target, dest: Destination,
                 guard: Guard, now: dt.datetime) -> tuple[list[DeliveredObject], list[str]]:  # fmt: skip
    """Upload the files, then the manifest (written last, once); return the objects and the approvers."""
    folder = check_staged(batch, order)
    s3 = deliver.s3_client(target.region)
    deliver.abort_stale_uploads(s3, target, dest.prefix)  # parts a killed delivery left behind
    manifest_key = dest.prefix + manifest.NAME
    existing = deliver.read_manifest(s3, target, manifest_key)
    if existing is not None and existing.get("content_hash") != batch.content_hash:
        raise DeliveryFailed(f"s3://{target.bucket}/{manifest_key} holds another batch's manifest")
    files = [(dest.prefix + f.name, folder / f.name, f.sha256) for f in batch.files]
    objects = deliver.upload_files(s3, target, files, guard, ctx.settings.uploads)
    trust = ctx.trust()
    with ctx.engine.connect() as conn:  # the approvals the gate accepted, as the gate judges them
        signed = approval.signed_decisions(conn, batch.id)
        head = ledger.head(conn)
        evidence = proof.gather(conn, batch, order, ctx.policies.file_for(order))
    found = approval.binding(signed, trust, batch, order, dest, requests.initiator(trust, batch, now), now)
    if existing is None:
        guard()
        doc = manifest.build(batch, order, dest, objects, found.approvals, trust.sha256, head, iso(now), evidence)
        objects.append(deliver.write_manifest(s3, target, manifest_key, doc))
    else:
        objects.append(deliver.existing_object(s3, target, manifest_key))
    return objects, [d.approver for d in found.approvals]


def already_delivered(
    batch: batches.Batch, target: Target, dest: Destination
) -> tuple[list[DeliveredObject], list[str]] | None:
    """The objects and approvers of a delivery whose manifest is already in the bucket (a run killed
    after writing it), as that manifest lists them; None when there is no manifest.

    What the recipient can read is a disclosure whatever the gates say now: the caller records it."""
    s3 = deliver.s3_client(target.region)
    key = dest.prefix + manifest.NAME
    doc = deliver.read_manifest(s3, target, key)
    if doc is None:
        return None
    if doc.get("content_hash") != batch.content_hash:
        raise DeliveryFailed(f"s3://{target.bucket}/{key} holds another batch's manifest")
    by_name = {posixpath.basename(str(f.get("key", ""))): f for f in doc.get("files") or [] if isinstance(f, dict)}
    objects = [DeliveredObject(dest.prefix + f.name, f.bytes, f.sha256, deliver.checksum(f.sha256), False)
               for f in batch.files if f.name in by_name]  # fmt: skip
    objects.append(deliver.existing_object(s3, target, key))
    approvers = [str(a.get("principal")) for a in doc.get("approvals") or [] if isinstance(a, dict)]
    return objects, approvers
