"""Where an incremental transfer starts: the newest change delivered, per order and jurisdiction group.

Advanced only when a batch is delivered (in the same transaction), never backwards.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from handoff.policy.order import Order
from handoff.policy.source_model import STATES
from handoff.state.batch import Batch
from handoff.state.schema import watermarks


def jurisdiction_key(order: Order, fips: list[str] | None) -> list[str]:
    return [STATES[f] for f in order.in_scope_fips(fips)]


def read(conn: sa.Connection, order_id: str, jurisdictions: list[str]) -> dt.datetime | None:
    row = conn.execute(sa.select(watermarks.c.watermark).where(
        watermarks.c.order_id == order_id, watermarks.c.jurisdiction == ",".join(jurisdictions))).first()  # fmt: skip
    return dt.datetime.fromisoformat(row[0]) if row else None


def advance(conn: sa.Connection, batch: Batch) -> None:
    """Move the batch's group watermark forward to the batch's (a no-op for a full or older cut)."""
    if not batch.watermark:
        return
    key = ",".join(batch.jurisdictions)
    where = (watermarks.c.order_id == batch.order_id, watermarks.c.jurisdiction == key)
    row = conn.execute(sa.select(watermarks).where(*where)).first()
    if row is None:
        conn.execute(watermarks.insert().values(order_id=batch.order_id, jurisdiction=key,
                                                watermark=batch.watermark, batch_id=batch.id))  # fmt: skip
    elif row.watermark < batch.watermark:
        conn.execute(watermarks.update().where(*where).values(watermark=batch.watermark, batch_id=batch.id))
