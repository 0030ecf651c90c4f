"""The delivery manifest: what was delivered, under which order, proven how, approved by whom.

It names the batch, order version and policy hash, suite hash, validation outcome and counts,
the source (URL without credentials, tables, query hash, snapshot time), every file with size,
rows and SHA-256, the gate evaluations with their time, the approval and the flow run.
"""

from __future__ import annotations

from typing import Any

from handoff.approval import Decision
from handoff.batch import Batch
from handoff.deliver import DeliveredObject
from handoff.gates import GateDecision
from handoff.order import Order

MANIFEST_VERSION = 1


def build(
    batch: Batch,
    order: Order,
    gates: list[GateDecision],
    gates_at: str,
    approval: Decision | None,
    objects: list[DeliveredObject],
    recipient: str,
    flow_run_id: str | None,
) -> dict[str, Any]:
    rows = {f.name: f.rows for f in batch.files}
    return {
        "manifest_version": MANIFEST_VERSION,
        "batch_id": batch.id,
        "recipient": recipient,
        "order": {
            "ref": order.ref,
            "order_id": order.order_id,
            "version": order.version,
            "case": order.case.number,
            "signed_date": order.signed_date.isoformat(),
            "effective_at": order.effective_instant.isoformat(),
            "policy_hash": order.policy_hash,
            "columns": order.columns,
        },
        "suite_hash": batch.suite_hash,
        "validation": {
            "result": batch.validation.get("result"),
            "expectations_evaluated": batch.validation.get("expectations_evaluated"),
            "chunks": batch.validation.get("chunks"),
            "row_quarantine": batch.quarantined_by_rule,
        },
        "counts": {
            "rows_extracted": batch.rows_extracted,
            "rows_quarantined": batch.rows_quarantined,
            "rows_delivered": sum(f.rows for f in batch.files),
            "excluded_by_reason": batch.excluded.get("totals", {}),
            "delivered_by_jurisdiction": batch.excluded.get("included_by_jurisdiction", {}),
        },
        "source": {
            "url": batch.source_url,
            "tables": batch.source_tables,
            "query_hash": batch.query_hash,
            "query": batch.query_sql,
            "snapshot_at": batch.snapshot_at,
            "since": batch.since,
            "watermark": batch.watermark,
        },
        "content_hash": batch.content_hash,
        "files": [
            {"key": o.key, "bytes": o.bytes, "rows": rows.get(o.key.rsplit("/", 1)[-1]), "sha256": o.sha256}
            for o in objects
        ],
        "gates": {"evaluated_at": gates_at, "decisions": [g.as_dict() for g in gates]},
        "approval": (
            {
                "approver": approval.approver,
                "at": approval.at,
                "note": approval.note,
                "content_hash": approval.content_hash,
                "order_ref": approval.order_ref,
            }
            if approval
            else None
        ),  # fmt: skip
        "initiator": batch.initiator,
        "flow_run_id": flow_run_id,
    }
