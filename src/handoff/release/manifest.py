"""The delivery manifest: what the recipient needs to check a delivery, and nothing more.

Minimum necessary outward: the order version and the columns it permits, every file with its
size, rows and SHA-256, the batch content hash, the approvals exactly as signed (statement,
signature, and the principal the trust file names), the trust file's SHA-256 and the ledger
head at delivery, and the proof of the chain of authority (``proof``: the order version's text
and counsel's signature, the signed hearing outcomes, the signed transfer request, the validation
summary bound to the content hash). Internal lineage (source, SQL, initiator, exclusions by reason) stays in the
state database and the OpenLineage events. ``handoff verify`` checks a manifest with no state
database: every field is either recomputed from the objects or bound by a signature.
"""

from __future__ import annotations

import json
from typing import Any

from handoff.authority.approval import Decision
from handoff.policy.order import Order
from handoff.state.batch import Batch
from handoff.state.ledger import Head
from handoff.storage.deliver import DeliveredObject, Destination

MANIFEST_VERSION = 3
NAME = "manifest.json"


def build(
    batch: Batch,
    order: Order,
    destination: Destination,
    objects: list[DeliveredObject],
    approvals: list[Decision],
    trust_sha256: str,
    ledger_head: Head,
    delivered_at: str,
    proof: dict[str, Any],
) -> dict[str, Any]:
    rows = {f.name: f.rows for f in batch.files}
    return {
        "manifest_version": MANIFEST_VERSION,
        "batch_id": batch.id,
        "destination": destination.as_dict(),
        "order": {
            "ref": order.ref,
            "case": order.case.number,
            "effective_at": order.effective_instant.isoformat(),
            "policy_hash": order.policy_hash,
            "columns": order.columns,
        },
        "content_hash": batch.content_hash,
        "rows": sum(f.rows for f in batch.files),
        "files": [
            {"key": o.key, "bytes": o.bytes, "rows": rows.get(o.key.rsplit("/", 1)[-1]), "sha256": o.sha256}
            for o in objects
        ],
        "approvals": [
            {
                "principal": d.approver,
                "key": d.key,
                "statement": d.signed.statement.decode("utf-8"),
                "signature": d.signed.signature,
            }
            for d in approvals
        ],  # fmt: skip
        "proof": proof,
        "trust_sha256": trust_sha256,
        "ledger_head": ledger_head.as_dict(),
        "delivered_at": delivered_at,
    }


def dumps(doc: dict[str, Any]) -> bytes:
    """The one serialisation a manifest is written in (``verify`` refuses any other)."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
