"""Recording a staged batch: its row, its files, its quarantined rows and its ledger entry, at once.

Passing files are published (or, after a failed expectation, moved to quarantine with the report),
then one transaction writes the batch row, its files, the row quarantine and the ``staged`` (or
``quarantined``) ledger entry holding every file's hash: what release later compares against.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from handoff.config import Settings
from handoff.extract import reader as extract
from handoff.extract.stage import Stager, content_hash
from handoff.policy.population import INCLUDED
from handoff.state import batch as batches
from handoff.state import ledger, validated
from handoff.state.schema import iso, open_state, row_quarantine
from handoff.urls import safe_url

if TYPE_CHECKING:
    from handoff.staging.pipeline import ChunkOutcome, Prepared

log = logging.getLogger(__name__)


def _report(batch_id: str, prep: Prepared, out: ChunkOutcome) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "order_ref": prep.order.ref,
        "suite_hash": prep.suite_hash,
        "result": "failed" if out.failures else "passed",
        "chunks": out.chunks,
        "expectations_evaluated": out.evaluated,
        "failed_expectations": [f.as_dict() for f in out.failures],
        "row_quarantine": dict(out.by_rule),
        "read_path": prep.read.kind,
        "checked_in": out.checked_in,
        "note": "Offending values are never recorded; rows are named by Medicaid ID only.",
    }


def record(
    settings: Settings, prep: Prepared, batch_id: str, out: ChunkOutcome, stager: Stager, now: dt.datetime
) -> batches.Batch:
    """Publish or quarantine the staged files and write the batch record and ledger event."""
    failed = bool(out.failures)
    report = _report(batch_id, prep, out)
    if failed:
        folder = stager.quarantine(settings.quarantine_dir)
        (folder / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
        status, reason = "quarantined", f"{len(out.failures)} failed expectation(s); see {folder / 'report.json'}"
    else:
        folder = stager.commit()
        status, reason = "staged", None
    excluded = {j: {k: v for k, v in r.items() if k != INCLUDED} for j, r in prep.counts.items()}
    included = {j: r.get(INCLUDED, 0) for j, r in prep.counts.items() if r.get(INCLUDED)}
    record_row = {
        "id": batch_id,
        "order_ref": prep.order.ref,
        "order_id": prep.order.order_id,
        "order_version": prep.order.version,
        "policy_hash": prep.order.policy_hash,
        "suite_hash": prep.suite_hash,
        "status": status,
        "status_reason": reason,
        "initiator": prep.request.initiator,
        "created_at": iso(now),
        "updated_at": iso(now),
        "jurisdictions": prep.plan.jurisdictions,
        "source_url": safe_url(prep.request.source_url),
        "source_tables": [prep.order.source.table],
        "query_sql": prep.plan.sql,
        "query_hash": prep.plan.query_hash,
        "snapshot_at": iso(prep.snapshot),
        "since": prep.plan.since.isoformat() if prep.plan.since else None,
        "watermark": prep.plan.watermark.isoformat() if prep.plan.watermark else None,
        "rows_extracted": out.rows_extracted,
        "rows_quarantined": out.rows_quarantined,
        "rows_staged": sum(f.rows for f in stager.files) if not failed else 0,
        "excluded": {"by_jurisdiction": excluded, "included_by_jurisdiction": included,
                     "totals": extract.totals(excluded)},
        "quarantined_by_rule": dict(out.by_rule),
        "validation": report,
        "content_hash": content_hash(stager.files) if not failed else None,
        "staging_path": str(folder.resolve()),
        "flow_run_id": prep.request.flow_run_id,
        "bucket": prep.request.bucket,
        "initiator_key": prep.request.initiator_key,
        "request_statement": prep.request.signed.statement.decode("utf-8") if prep.request.signed else None,
        "request_signature": prep.request.signed.signature if prep.request.signed else None,
    }  # fmt: skip
    engine = open_state(settings.resolved_state_url)
    with engine.begin() as conn:
        batches.insert(conn, record_row, stager.files)
        if out.quarantined:
            rows = [{"batch_id": batch_id, "medicaid_id": i, "rule": r} for i, r in out.quarantined]
            for k in range(0, len(rows), 10_000):
                conn.execute(row_quarantine.insert(), rows[k : k + 10_000])
        ledger.append(
            conn, status, prep.request.initiator, batch_id=batch_id, order_ref=prep.order.ref, at=now,
            payload={"rows_extracted": out.rows_extracted, "rows_staged": record_row["rows_staged"],
                     "rows_quarantined": out.rows_quarantined, "content_hash": record_row["content_hash"],
                     "files": validated.files_payload(stager.files) if not failed else [],
                     "suite_hash": prep.suite_hash, "failed_expectations": [f.rule for f in out.failures]},
        )  # fmt: skip
        result = batches.get(conn, batch_id)
    engine.dispose()
    log.info("batch %s %s: %d rows extracted, %d staged", batch_id, status, out.rows_extracted, result.rows_staged)
    return result
