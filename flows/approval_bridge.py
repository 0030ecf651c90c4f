"""Resolve a waiting Prefect approval step from outside the flow (``handoff approve/reject``).

The decision is recorded by ``handoff`` first; this only wakes the paused or suspended run so
it sees the decision and carries on. Without a Prefect API (no PREFECT_API_URL) it does
nothing: the hourly release flow delivers an approved batch anyway.
"""

from __future__ import annotations

import os
from uuid import UUID

from handoff.signing.statement import Signed


def resume_waiting_run(flow_run_id: str | None, signed: Signed | None = None) -> str | None:
    """Resume the batch's flow run if it waits for approval; return what happened, or None.

    ``signed``: the decision as recorded, handed to the form too (recording it again is a no-op).
    """
    if not flow_run_id or not os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
        if not (run.state and run.state.is_paused()):
            return None
        run_input = {"statement": signed.statement.decode("utf-8"), "signature": signed.signature} if signed else None
        resume_flow_run(run.id, run_input=run_input)
    except Exception as exc:  # noqa: BLE001 - the decision is recorded; waking the run is best effort
        return f"could not resume flow run {flow_run_id}: {exc}"
    return f"resumed flow run {run.name} ({flow_run_id})"
