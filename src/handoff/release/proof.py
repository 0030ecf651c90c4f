"""The proof a delivery carries: everything a recipient needs to check the chain of authority.

Beside the files and the approvals, the manifest carries the order version in force (its exact
text, its SHA-256 and counsel's signature over it), every signed hearing outcome of that order
and every hearing added at run time, the operator's signed transfer request, and the validation
summary the ledger recorded for this content. ``chain`` checks all of it with the published trust
file alone; nothing here is trusted because the sender says so, only because someone signed it.
This module only reads the ledger and the policy folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from handoff.authority import signoff
from handoff.errors import DeliveryFailed
from handoff.policy.order import Order
from handoff.state import ledger, validated
from handoff.state.batch import Batch


def order_file(path: Path) -> dict[str, Any]:
    """The order version's exact text, its SHA-256 and counsel's signature (as on disk now)."""
    try:
        body = path.read_bytes()
        signature = signoff.signature_path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeliveryFailed(f"{path}: cannot read the order file or its signature for the proof ({exc}); "
                             "nothing was uploaded") from None  # fmt: skip
    return {"name": path.name, "sha256": hashlib.sha256(body).hexdigest(), "text": body.decode("utf-8"),
            "signature": signature}  # fmt: skip


def court_record(conn: sa.Connection, order: Order) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every signed outcome recorded for ``order``'s hearings, and every hearing added at run time."""
    outcomes = [
        {"hearing": e.payload.get("hearing"), "statement": e.payload["statement"], "signature": e.payload["signature"]}
        for e in ledger.entries(conn, kinds=["hearing-outcome"])
        if "signature" in e.payload and _about(e.payload.get("statement"), order.order_id)
    ]
    added = [
        {"hearing": e.payload.get("hearing"), "order_id": e.payload.get("order_id"), "at": e.payload.get("at"),
         "title": e.payload.get("title"), "added_by": e.actor}
        for e in ledger.entries(conn, kinds=["hearing-added"])
        if e.payload.get("order_id") == order.order_id
    ]  # fmt: skip
    return outcomes, added


def _about(statement: object, order_id: str) -> bool:
    try:
        doc = json.loads(str(statement))
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("order_id") == order_id


def gather(conn: sa.Connection, batch: Batch, order: Order, path: Path) -> dict[str, Any]:
    """The ``proof`` section of the manifest for ``batch`` delivered under ``order`` (file at ``path``)."""
    outcomes, added = court_record(conn, order)
    record = validated.record_for(conn, batch.id)
    summary = batch.validation or {}
    return {
        "order_file": order_file(path),
        "hearing_outcomes": outcomes,
        "hearings_added": added,
        "request": {"statement": batch.request_statement or "", "signature": batch.request_signature or ""},
        "validation": {
            **(record.as_dict() if record else {}),
            "result": summary.get("result"),
            "suite_hash": batch.suite_hash,
            "expectations_evaluated": summary.get("expectations_evaluated"),
        },
    }
