"""The release flow (hourly): deliver every approved batch whose gates are all open now."""

from __future__ import annotations

import datetime as dt

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, State

from flows.transfer import _publish
from handoff.config import load_settings
from handoff.evidence.accounting import disclosures
from handoff.extract import heap
from handoff.release.report import disclosure_rows
from handoff.transfer import Lifecycle, Outcome


@task(name="release approved batches", retries=2, retry_delay_seconds=30)
def release_task() -> tuple[list[Outcome], list[dict]]:
    """Each batch's outcome, and the disclosure accounting afterwards."""
    life = Lifecycle(load_settings())
    results = life.release(dt.datetime.now(dt.UTC))
    with life.engine.connect() as conn:
        return results, disclosure_rows(disclosures(conn))


def _run_name() -> str:
    return f"release {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z"


@flow(name="handoff-release", flow_run_name=_run_name, log_prints=True)
def release_flow() -> State:
    """Deliver approved batches whose gates are open; publish the disclosure accounting.

    A batch whose delivery failed for good ends the run in a Completed state named
    DeliveryFailed, which ``infra/automations.yaml`` alerts on; it is not retried.
    """
    heap.skip_final_collection()  # a flow-run process then ends without its last collection
    results, rows = release_task()
    for r in results:
        _publish(r)
    if rows:
        create_table_artifact(
            rows, key="disclosure-accounting", description="Every disclosure (Privacy Act accounting)"
        )
    failed = [r for r in results if r.batch.status == "failed"]
    data = [r.as_dict() for r in results]
    if failed:
        return Completed(name="DeliveryFailed", data=data,
                         message="; ".join(f"batch {r.batch.id} failed: {r.batch.status_reason}" for r in failed))  # fmt: skip
    return Completed(message=f"{len(results)} batch(es) looked at", data=data)
