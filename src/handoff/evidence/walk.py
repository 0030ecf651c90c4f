"""The lineage walk: from a delivered S3 object back to the source query and the policy."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from handoff.policy.suite import suite_path
from handoff.state import batch, ledger
from handoff.state.schema import deliveries


def walk(life: Any, batch_id: str) -> dict[str, Any]:
    """Everything that explains one batch, joined from the state database and policy folder."""
    with life.engine.connect() as conn:
        b = batch.find(conn, batch_id)
        d = conn.execute(sa.select(deliveries).where(deliveries.c.batch_id == b.id)).first()
        events = ledger.entries(conn, batch_id=b.id)
    order = life.policies.orders.get(b.order_ref)
    started = [e for e in events if e.kind == "delivery-started"]
    approved = [e for e in events if e.kind == "approved"]
    rows = {f.name: f.rows for f in b.files}
    objects = [{**o, "rows": rows.get(o["key"].rsplit("/", 1)[-1])} for o in ((d.objects or []) if d else [])]
    return {
        "batch_id": b.id,
        "status": b.status,
        "bucket": d.bucket if d else b.bucket,
        "objects": objects,
        "manifest_key": d.manifest_key if d else None,
        "approval": _approval(approved[-1]) if approved else None,
        "approvals": [_approval(e) for e in approved],
        "gates": started[-1].payload.get("gates", []) if started else [],
        "validation": {k: b.validation.get(k) for k in ("result", "expectations_evaluated", "chunks")}
        | {"row_quarantine": b.quarantined_by_rule},
        "suite": {"hash": b.suite_hash, "path": str(suite_path(life.policies, order)) if order else None},
        "policy": {
            "order_ref": b.order_ref,
            "policy_hash": b.policy_hash,
            "file": str(life.policies.files.get(b.order_ref, "")),
            "still_in_force": bool(order) and life.policies.current(b.order_id).ref == b.order_ref,
        },
        "source": {
            "url": b.source_url,
            "tables": b.source_tables,
            "query": b.query_sql,
            "query_hash": b.query_hash,
            "snapshot_at": b.snapshot_at,
            "since": b.since,
            "watermark": b.watermark,
        },  # fmt: skip
        "content_hash": b.content_hash,
        "flow_run_id": b.flow_run_id,
        "initiator": b.initiator,
        "ledger": [{"seq": e.seq, "at": e.at, "kind": e.kind, "actor": e.actor, "hash": e.hash} for e in events],
    }


def _approval(e: ledger.Entry) -> dict[str, Any]:
    """A signed approval as the ledger recorded it (principal from the trust file, key, what it bound)."""
    p = e.payload
    return {"approver": e.actor, "at": e.at, "note": p.get("note"), "content_hash": p.get("content_hash"),
            "key": p.get("key"), "destination": p.get("destination")}  # fmt: skip
