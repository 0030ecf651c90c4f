"""The transfer flow: extract → validate → stage → gates → approval → delivery.

Reads like the business process; every rule lives in the ``handoff`` package. The approval
step is a Prefect pause whose form shows the statement to sign and the one command that signs
it, and takes the pasted SSH signature: a person approves from the Prefect UI, or from the CLI
(`handoff approve --key`), which records the decision and resumes the same pending step.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import deployment, flow_run
from prefect.states import Completed, State
from pydantic import Field

from handoff.authority import approval as approvals
from handoff.config import load_settings
from handoff.errors import GateError
from handoff.extract import heap
from handoff.release.report import approval_description, batch_markdown
from handoff.signing.statement import DECISION, NAMESPACE, Signed, canonical
from handoff.staging.partition import PartitionResult, PartitionSpec, run_partition
from handoff.staging.pipeline import StageRequest
from handoff.state.source_ref import SECRET, resolve
from handoff.transfer import Lifecycle, Outcome


class ApprovalInput(RunInput):
    """The approval form shown in the Prefect UI: a statement and the approver's SSH signature of it.

    Nobody is identified by what they type: the decision counts only if the signature verifies
    against a key the trust file lists for handoff-approve.
    """

    statement: str = Field(min_length=2, max_length=60_000,
                           description="The exact statement you sign (shown above; to reject, sign what "
                                       "`handoff reject BATCH --note WHY --statement` prints and paste it here).")  # fmt: skip
    signature: str = Field(min_length=40, max_length=20_000, pattern=r"BEGIN SSH SIGNATURE",
                           description="Paste the whole -----BEGIN SSH SIGNATURE----- block ssh-keygen printed.")  # fmt: skip


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _run_name() -> str:
    params = flow_run.parameters or {}
    states = params.get("states") or []
    label = "-".join(states) if states else "all-in-scope"
    order = params.get("order") or "current-order"
    return f"transfer {order} {label} {_now():%Y-%m-%d}"


def source_url(ref: str) -> str:
    """The source URL behind a deployment's reference (``env:VAR``, ``secret:BLOCK`` or a URL without password)."""
    if ref.startswith(SECRET):
        from prefect.blocks.system import Secret

        block: Any = Secret.load(ref[len(SECRET) :])  # sync: tasks run in worker threads
        return str(block.get())
    return resolve(ref)


@task(name="stage batch", retries=2, retry_delay_seconds=15)
def stage_task(db_url: str, states: list[str], order: str | None, incremental: bool, bucket: str | None) -> str:
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

    request = life.service_request(StageRequest(source_url(db_url), states, order_ref=order, since=since, flow_run_id=run_id,
                                                incremental=incremental), bucket, _now())  # fmt: skip
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


def stage_partitioned_in_flow(db_url: str, states: list[str], order: str | None, bucket: str | None,
                              partition_rows: int, incremental: bool = False) -> str:  # fmt: skip
    """Coordinate in the flow itself, so the partitions are tasks of this flow's task runner."""
    life = Lifecycle(load_settings())
    run_id = str(flow_run.id) if flow_run.id else None
    existing = life.batch_for_flow_run(run_id) if run_id else None
    if existing:
        return existing
    since = life.since(order, states) if incremental else None
    request = life.service_request(StageRequest(source_url(db_url), states, order_ref=order, since=since, flow_run_id=run_id,
                                                incremental=incremental), bucket, _now())  # fmt: skip
    return life.transfer(request, bucket, _now(), partition_rows=partition_rows, runner=_prefect_runner).batch.id


@task(name="evaluate gates")
def gates_task(batch_id: str) -> Outcome:
    return Lifecycle(load_settings()).refresh(batch_id, _now())


@task(name="record decision")
def decide_task(batch_id: str, statement: str, signature: str, attempt: str) -> Outcome | str:
    """The outcome, or why the decision was refused (a user's mistake: the form asks again)."""
    life = Lifecycle(load_settings())
    try:
        return life.decide(batch_id, pasted(statement, signature, life), _now(), attempt)
    except GateError as exc:
        return approvals.refusal(exc)


def pasted(statement: str, signature: str, life: Lifecycle) -> Signed:
    """The statement as signed: pasted text may have lost (or gained) the trailing newline."""
    text = statement.strip("\r\n").replace("\r\n", "\n")
    candidates = [Signed((text + "\n").encode("utf-8"), signature), Signed(text.encode("utf-8"), signature)]
    trust = life.trust()
    for c in candidates:
        try:
            trust.verify(c.statement, c.signature, NAMESPACE[DECISION], _now())
            return c
        except GateError:
            continue
    return candidates[0]  # refused by decide, with the reason


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
        shown = canonical(life.decision_statement(batch_id, "approve", None, _now())).decode("utf-8")
        form = ApprovalInput.with_initial_data(
            description=approval_description(outcome.batch, outcome.gates, shown, refused), statement=shown.strip()
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
        decided = decide_task(batch_id, answer.statement, answer.signature, f"{flow_run.id}/approval-{attempt}")
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
    order: str | None = None,
    incremental: bool = False,
    approval_timeout_s: int = 3600,
    partition_rows: int | None = None,
) -> State:
    """Transfer one batch under the order in force, pausing for a signed approval.

    The request is signed with this deployment's service key (HANDOFF_SIGNING_KEY), whose
    principal the trust file lists for handoff-service (scheduled requests only); it can never approve the batch.

    Ends Completed with a state name that says where the batch stands: Quarantined, Held,
    AwaitingApproval, Rejected or Delivered. Nothing is delivered unless every gate is open.
    """
    heap.skip_final_collection()  # a flow-run process then ends without its last collection
    if partition_rows:
        batch_id = stage_partitioned_in_flow(db_url, states or [], order, bucket, partition_rows, incremental)
    else:
        batch_id = stage_task(db_url, states or [], order, incremental, bucket)
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
