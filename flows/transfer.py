"""The transfer flow: extract → validate → stage → gates → approval → delivery.

Reads like the business process; every rule lives in the ``handoff`` package. The approval
step is a Prefect pause with a typed form (approver, decision, note): a person approves from
the Prefect UI, or from the CLI (`handoff approve`), which resumes the same pending step.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, Literal, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import deployment, flow_run
from prefect.states import Completed, State
from pydantic import Field

from handoff.config import load_settings
from handoff.errors import GateError
from handoff.partition import PartitionResult, PartitionSpec, run_partition
from handoff.pipeline import StageRequest
from handoff.report import approval_description, batch_markdown
from handoff.transfer import Lifecycle, Outcome


class ApprovalInput(RunInput):
    """The approval form shown in the Prefect UI."""

    approver: str = Field(min_length=2, max_length=120, description="Your name exactly as on the approver list.")
    decision: Literal["approve", "reject"] = Field(description="Approve or reject this exact batch content.")
    note: str = Field(default="", max_length=2000, description="Why (required to reject).")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _run_name() -> str:
    params = flow_run.parameters or {}
    states = params.get("states") or []
    label = "-".join(states) if states else "all-in-scope"
    order = params.get("order") or "current-order"
    return f"transfer {order} {label} {_now():%Y-%m-%d}"


@task(name="stage batch", retries=2, retry_delay_seconds=15)
def stage_task(db_url: str, states: list[str], initiator: str, order: str | None, incremental: bool,
               bucket: str | None) -> str:  # fmt: skip
    life = Lifecycle(load_settings())
    run_id = str(flow_run.id) if flow_run.id else None
    existing = life.batch_for_flow_run(run_id) if run_id else None
    if existing:  # a suspended run resumes from the top: never stage twice
        return existing
    since = life.since(order, states) if incremental else None
    progress_id = cast(UUID, create_progress_artifact(0.0, description="rows extracted, validated and staged"))

    def progress(done: int, expected: int) -> None:
        if expected:
            update_progress_artifact(progress_id, min(100.0, 100.0 * done / expected))

    request = StageRequest(db_url, states, initiator, order, since, run_id)
    outcome = life.transfer(request, bucket, _now(), progress)
    update_progress_artifact(progress_id, 100.0)
    return outcome.batch.id


@task(name="stage partition", retries=2, retry_delay_seconds=15,
      task_run_name="partition {spec.index}: {spec.fips}")  # fmt: skip
def partition_task(spec: PartitionSpec) -> PartitionResult:
    return run_partition(spec)


def _prefect_runner(specs: list[PartitionSpec]) -> list[PartitionResult]:
    """Map partitions over the flow's task runner (threads by default, Dask when configured)."""
    futures = partition_task.map(specs)
    return [f.result() for f in futures]


def stage_partitioned_in_flow(db_url: str, states: list[str], initiator: str, order: str | None,
                              bucket: str | None, partition_rows: int, incremental: bool = False) -> str:  # fmt: skip
    """Coordinate in the flow itself, so the partitions are tasks of this flow's task runner."""
    life = Lifecycle(load_settings())
    run_id = str(flow_run.id) if flow_run.id else None
    existing = life.batch_for_flow_run(run_id) if run_id else None
    if existing:
        return existing
    request = StageRequest(db_url, states, initiator, order, life.since(order, states) if incremental else None, run_id)
    return life.transfer(request, bucket, _now(), partition_rows=partition_rows, runner=_prefect_runner).batch.id


@task(name="evaluate gates")
def gates_task(batch_id: str) -> Outcome:
    return Lifecycle(load_settings()).refresh(batch_id, _now())


@task(name="record decision")
def decide_task(batch_id: str, decision: str, approver: str, note: str, attempt: str) -> Outcome | str:
    """The outcome, or why the decision was refused (a user's mistake: the form asks again)."""
    try:
        return Lifecycle(load_settings()).decide(batch_id, decision, approver, note or None, _now(), attempt)
    except GateError as exc:
        return str(exc)


@task(name="deliver batch", retries=3, retry_delay_seconds=30)
def deliver_task(batch_id: str) -> Outcome:
    return Lifecycle(load_settings()).deliver(batch_id, _now(), str(flow_run.id) if flow_run.id else None)


def _publish(outcome: Outcome) -> None:
    create_markdown_artifact(
        batch_markdown(outcome.batch, outcome.gates, [o.key for o in outcome.objects]),
        key=f"batch-{outcome.batch.id.lower().replace('t', '-', 1)[:40]}".replace("_", "-"),
        description=f"batch {outcome.batch.id}: {outcome.batch.status}",
    )


def _final(outcome: Outcome) -> State:
    b = outcome.batch
    message = f"batch {b.id}: {b.status}" + (f" — {b.status_reason}" if b.status_reason else "")
    names = {"held": "Held", "quarantined": "Quarantined", "awaiting-approval": "AwaitingApproval",
             "rejected": "Rejected", "delivered": "Delivered", "superseded": "Superseded", "empty": "Empty"}  # fmt: skip
    return Completed(message=message, name=names.get(b.status, "Completed"), data=outcome.as_dict())


def _resume_after_timeout() -> None:
    """Put a run whose local pause timed out back to Running.

    The server keeps it Paused with an expired deadline and then turns any state the flow
    proposes (our Completed "AwaitingApproval") into Failed "never resumed".
    """
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(), force=True)


def wait_for_approval(batch_id: str, outcome: Outcome, timeout_s: int) -> Outcome:
    """Wait until an authorised person decides; re-ask, with the reason, after a refusal.

    Under a deployment the run is suspended with no timeout: it frees its worker and stays
    Suspended (visibly waiting) until someone decides in the UI or with ``handoff approve``.
    A local run pauses for ``timeout_s`` and then ends AwaitingApproval; the batch is kept
    either way and the release flow delivers it once approved.
    """
    log = get_run_logger()
    refused: str | None = None
    life = Lifecycle(load_settings())
    for attempt in range(50):
        outcome = life.refresh(batch_id, _now())
        if outcome.batch.status != "awaiting-approval":
            return outcome  # decided elsewhere (CLI) or a gate closed meanwhile
        form = ApprovalInput.with_initial_data(
            description=approval_description(outcome.batch, outcome.gates, refused), decision="approve"
        )
        try:
            if deployment.id:
                answer = suspend_flow_run(wait_for_input=form, key=f"approval-{attempt}")
            else:
                answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, key=f"approval-{attempt}")
        except FlowPauseTimeout:
            log.warning("approval for %s timed out; the batch stays awaiting-approval", batch_id)
            _resume_after_timeout()
            return life.refresh(batch_id, _now())
        current = life.refresh(batch_id, _now())
        if current.batch.status != "awaiting-approval":
            return current
        decided = decide_task(batch_id, answer.decision, answer.approver, answer.note,
                              f"{flow_run.id}/approval-{attempt}")  # fmt: skip
        if isinstance(decided, str):
            refused = decided
            log.error("approval refused: %s; still waiting", refused)
            continue
        return decided
    return life.refresh(batch_id, _now())


def dask_task_runner(address: str | None = None, workers: int = 2) -> Any:
    """A DaskTaskRunner: the scheduler at ``address`` (HANDOFF_DASK_ADDRESS), else a local cluster."""
    from prefect_dask import DaskTaskRunner

    address = address or os.environ.get("HANDOFF_DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})


@flow(name="handoff-transfer", flow_run_name=_run_name, log_prints=True)
def transfer_flow(
    db_url: str,
    bucket: str | None = None,
    states: list[str] | None = None,
    initiator: str = "prefect-schedule",
    order: str | None = None,
    incremental: bool = False,
    approval_timeout_s: int = 3600,
    partition_rows: int | None = None,
) -> State:
    """Transfer one batch under the order in force, pausing for a named approver.

    Ends Completed with a state name that says where the batch stands: Quarantined, Held,
    AwaitingApproval, Rejected or Delivered. Nothing is delivered unless every gate is open.
    """
    if partition_rows:
        batch_id = stage_partitioned_in_flow(
            db_url, states or [], initiator, order, bucket, partition_rows, incremental
        )
    else:
        batch_id = stage_task(db_url, states or [], initiator, order, incremental, bucket)
    outcome = gates_task(batch_id)
    if (flow_run.run_count or 1) <= 1:  # a resumed (suspended) run replays from the top: publish once
        _publish(outcome)
    if outcome.batch.status == "awaiting-approval":
        outcome = wait_for_approval(batch_id, outcome, approval_timeout_s)
    if outcome.batch.status == "approved":
        outcome = deliver_task(batch_id)
        _publish(outcome)
    _tag(outcome)
    return _final(outcome)


def _tag(outcome: Outcome) -> None:
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run.id)
            tags = sorted({*(run.tags or []), f"order:{outcome.batch.order_ref}", f"status:{outcome.batch.status}"})
            client.update_flow_run(flow_run.id, tags=tags)
    except Exception:  # noqa: BLE001 - tags are cosmetic; never fail a transfer over them
        get_run_logger().warning("could not tag the flow run")
