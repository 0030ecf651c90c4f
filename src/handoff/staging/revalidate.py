"""Re-validation: a staged batch under a superseded order version becomes a new batch, or is refused.

When the new version permits exactly the same columns for the same population and the batch's
jurisdictions are still in scope, the staged files are checked again against the new version's
rules and suite and, if they pass, become a new batch (new id, new policy hash, needing a new
approval). When the permitted fields or the population changed, the data must be extracted
again: this refuses and says so. The old batch is never released as is.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa

from handoff.authority import request as requests
from handoff.checks.chunkcheck import Checker
from handoff.checks.server import use_processes
from handoff.config import Settings
from handoff.context import Context
from handoff.errors import GateError
from handoff.extract.stage import Stager, content_hash, verify_staged
from handoff.gates.keeper import Gatekeeper, Outcome
from handoff.policy.order import Order
from handoff.policy.source_model import FIPS_BY_ABBR
from handoff.policy.suite import SuiteDoc, suite_hash
from handoff.signing.statement import Signed, Verified
from handoff.staging.pipeline import new_batch_id, process_chunks
from handoff.state import batch as batches
from handoff.state import ledger, validated
from handoff.state.schema import iso, row_quarantine
from handoff.state.status import Status


def same_content_rules(old: Order, new: Order, jurisdictions: list[str]) -> str | None:
    """Why the staged files cannot simply be re-checked under ``new``, or None when they can."""
    if old.columns != new.columns:
        return "the permitted fields changed"
    if old.population != new.population:
        return "the population rule changed"
    out = [j for j in jurisdictions if j in FIPS_BY_ABBR and new.scope_for(j) != "order"]
    if out:
        return f"{', '.join(out)} no longer in scope"
    return None


def revalidate(
    conn: sa.Connection, settings: Settings, old: batches.Batch, old_order: Order, new: Order, suite: SuiteDoc,
    request: Verified, now: dt.datetime,
) -> batches.Batch:  # fmt: skip
    """Check ``old``'s staged files against ``new``; record and return the new batch.

    ``request`` is the operator's verified request; it names the new batch's id and who started it.
    """
    if old.status != Status.SUPERSEDED:
        raise GateError(f"batch {old.id} is {old.status}; only a superseded batch is re-validated")
    why = same_content_rules(old_order, new, old.jurisdictions)
    if why:
        raise GateError(
            f"batch {old.id} cannot be re-validated under {new.ref}: {why}; re-extract with `handoff transfer`"
        )
    folder = Path(old.staging_path or "")
    bad = verify_staged(folder, old.files)
    if bad:
        raise GateError(f"batch {old.id} changed on disk since validation ({', '.join(bad)}); re-extract it")
    new_id = str(request.doc["batch_id"])
    check = Checker(new, suite, now.astimezone(new.zone).date())
    stager = Stager(settings.staging_dir, new_id)
    out = process_chunks((pq.read_table(folder / f.name) for f in old.files), check, stager, settings.workers, None,
                         settings.chunk_rows, use_processes(settings.check_processes, settings.workers),
                         settings.check_rows)  # fmt: skip
    failed = bool(out.failures)
    report = {
        "batch_id": new_id, "order_ref": new.ref, "suite_hash": suite_hash(suite),
        "result": "failed" if failed else "passed", "chunks": out.chunks,
        "expectations_evaluated": out.evaluated, "failed_expectations": [f.as_dict() for f in out.failures],
        "row_quarantine": dict(out.by_rule), "revalidated_from": old.id,
        "note": "Offending values are never recorded; rows are named by Medicaid ID only.",
    }  # fmt: skip
    if failed:
        target = stager.quarantine(settings.quarantine_dir)
        (target / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    else:
        target = stager.commit()
    row = old.as_dict()
    row.pop("files")
    by_rule = dict(old.quarantined_by_rule)
    for k, v in out.by_rule.items():
        by_rule[k] = by_rule.get(k, 0) + v
    row.update(
        id=new_id, order_ref=new.ref, order_id=new.order_id, order_version=new.version, policy_hash=new.policy_hash,
        suite_hash=suite_hash(suite), status="quarantined" if failed else "staged",
        status_reason=f"re-validated from {old.id}" + (" and failed" if failed else ""),
        created_at=iso(now), updated_at=iso(now), rows_quarantined=old.rows_quarantined + out.rows_quarantined,
        rows_staged=0 if failed else sum(f.rows for f in stager.files), quarantined_by_rule=by_rule,
        validation=report, content_hash=None if failed else content_hash(stager.files),
        staging_path=str(target.resolve()), flow_run_id=None, initiator=request.principal,
        initiator_key=request.signer.fingerprint, request_statement=request.signed.statement.decode("utf-8"),
        request_signature=request.signed.signature,
    )  # fmt: skip
    batches.insert(conn, row, [] if failed else stager.files)
    if out.quarantined:
        conn.execute(
            row_quarantine.insert(), [{"batch_id": new_id, "medicaid_id": i, "rule": r} for i, r in out.quarantined]
        )
    batches.set_status(conn, old.id, Status.SUPERSEDED, f"re-validated under {new.ref} as {new_id}", now)
    ledger.append(conn, "revalidated", request.principal, batch_id=new_id, order_ref=new.ref, at=now,
                  payload={"from_batch": old.id, "from_order": old.order_ref, "result": report["result"],
                           "content_hash": row["content_hash"], "rows_staged": row["rows_staged"],
                           "files": [] if failed else validated.files_payload(stager.files),
                           "suite_hash": row["suite_hash"]})  # fmt: skip
    return batches.get(conn, new_id)


class Revalidation:
    """``revalidate`` for the lifecycle: a signed operator request names the new batch."""

    def __init__(self, ctx: Context, gatekeeper: Gatekeeper) -> None:
        self.ctx, self.gatekeeper = ctx, gatekeeper

    def statement(self, batch_id: str, now: dt.datetime, new_id: str | None = None) -> dict[str, Any]:
        """The request an operator signs to re-check a superseded batch under the order in force."""
        old = self.ctx.get(batch_id)
        return requests.revalidation_statement(new_id or new_batch_id(now), old.id, self.ctx.order_for(old).ref, now)

    def revalidate(self, batch_id: str, signed: Signed, now: dt.datetime) -> Outcome:
        """Re-check a superseded batch's staged files under the order now in force."""
        from handoff.policy.suite import load_suite

        verified = requests.accept(self.ctx.trust(), signed, self.statement(batch_id, now), now)
        with self.ctx.write() as conn:
            old = batches.find(conn, batch_id)
            new_order = self.ctx.order_for(old)
            fresh = revalidate(conn, self.ctx.settings, old, self.ctx.policies.get(old.order_ref), new_order,
                               load_suite(self.ctx.policies, new_order), verified, now)  # fmt: skip
        if fresh.status == Status.QUARANTINED:
            return Outcome(self.ctx.get(fresh.id))
        return self.gatekeeper.refresh(fresh.id, now, verified.principal)
