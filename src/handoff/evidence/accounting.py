"""The Privacy Act accounting of disclosures, read from the ledger.

One row per disclosure: when, to whom, what (batch, order version, content hash), how many
records, who approved and who started it. A delivery stopped or failed mid-way whose objects were
withdrawn is listed too (``partial, withdrawn``, with the rows the recipient could have read), and
so is the withdrawal of a delivered batch: withdrawing never erases a disclosure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from handoff.context import Context
from handoff.policy.order import Order
from handoff.state import batch as batches
from handoff.state import ledger, watermark
from handoff.state.schema import deliveries, iso
from handoff.state.status import Status
from handoff.storage.deliver import DeliveredObject, Destination


@dataclass(frozen=True)
class Disclosure:
    kind: str  # delivered | partial, withdrawn | withdrawn after delivery
    at: str
    batch_id: str
    order_ref: str
    recipient: str
    records: int
    approver: str | None
    initiator: str | None
    jurisdictions: str
    content_hash: str
    ledger_seq: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def disclosures(conn: sa.Connection, since: dt.datetime | None = None) -> list[Disclosure]:
    kinds = {"delivered": "delivered", "delivery-stopped": "partial, withdrawn", "delivery-failed": "partial, withdrawn",
             "withdrawn": "withdrawn after delivery"}  # fmt: skip
    out = []
    for e in ledger.entries(conn, kinds=list(kinds)):
        if since and dt.datetime.fromisoformat(e.at) < since:
            continue
        p = e.payload
        if e.kind in ("delivery-stopped", "delivery-failed") and not p.get("objects_removed"):
            continue  # nothing reached the recipient
        records = p.get("records", p.get("records_exposed", 0))
        out.append(Disclosure(
            kinds[e.kind], e.at, e.batch_id or "", e.order_ref or "", p.get("recipient", ""), int(records or 0),
            p.get("approver"), p.get("initiator"), ",".join(p.get("jurisdictions", [])), p.get("content_hash", ""),
            e.seq,
        ))  # fmt: skip
    return out


def record_delivery(ctx: Context, batch: batches.Batch, order: Order, dest: Destination, objects: list[DeliveredObject],
                approvers: list[str], done: dt.datetime) -> batches.Batch:  # fmt: skip
    """Record the completed delivery: status, objects, the disclosure in the ledger, the watermark."""
    with ctx.write() as conn:
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
