"""The Privacy Act accounting of disclosures, read from the ledger.

One row per delivery: when, to whom, what (batch, order version, content hash), how many
records, who approved and who started it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from handoff import ledger


@dataclass(frozen=True)
class Disclosure:
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
    out = []
    for e in ledger.entries(conn, kinds=["delivered"]):
        if since and dt.datetime.fromisoformat(e.at) < since:
            continue
        p = e.payload
        out.append(Disclosure(
            e.at, e.batch_id or "", e.order_ref or "", p.get("recipient", ""), int(p.get("records", 0)),
            p.get("approver"), p.get("initiator"), ",".join(p.get("jurisdictions", [])),
            p.get("content_hash", ""), e.seq,
        ))  # fmt: skip
    return out
