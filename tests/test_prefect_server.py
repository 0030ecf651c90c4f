"""The flows run the way operators run them: a real Prefect server, ``handoff serve``, the API.

A session-scoped ``prefect server start`` (see ``prefect_server.py``) and, per test, a
``handoff serve`` subprocess whose runner executes the triggered flow runs. Approval goes
through ``resume_flow_run`` with run input, exactly what the UI's Resume form submits.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("prefect_server")

from prefect_server import (  # noqa: E402
    GROUP,
    GROUP_STATES,
    RELEASE_DEPLOYMENT,
    TRANSFER_DEPLOYMENT,
    artifacts_for,
    is_paused,
    pause_description,
    pause_key,
    read_run,
    resume,
    shown_statement,
    signed_answer,
    trigger_transfer,
    wait_for_run,
)
from support import APPROVERS, KEYS  # noqa: E402

pytest_plugins = ["prefect_server"]
pytestmark = pytest.mark.slow

from handoff.signing.statement import canonical  # noqa: E402

COURT_TZ = "America/Los_Angeles"
HANDOFF_BIN = Path(sys.executable).with_name("handoff")
APPROVER = APPROVERS[0]
RUN_TIMEOUT = 90.0  # each leg (start → pause, resume → next pause or end) takes 10-30 s here


def _final(run: Any) -> bool:
    return run.state is not None and run.state.is_final()


def _cron(schedule: Any) -> tuple[str, str]:
    s = schedule.schedule
    return s.cron, s.timezone


# ----- a. handoff serve registers the deployments ----------------------------------------------------
def test_handoff_serve_registers_scheduled_deployments(prefect_server: Any, serve_factory: Any, tmp_path: Any) -> None:
    from prefect.client.orchestration import get_client

    from flows.serve import deployments

    db_url = f"sqlite:///{tmp_path / 'source.db'}"
    bucket = "agency-handoff"
    local = {d.name: d for d in deployments(db_url, bucket, {GROUP: GROUP_STATES})}
    assert set(local) == {f"transfer-{GROUP}", "release"}

    serve = serve_factory(db_url, bucket)
    with get_client(sync_client=True) as client:
        transfer = client.read_deployment_by_name(TRANSFER_DEPLOYMENT)
        release = client.read_deployment_by_name(RELEASE_DEPLOYMENT)

        # What the server holds is what flows.serve.deployments() built.
        for remote in (transfer, release):
            mine = local[remote.name]
            assert remote.description == mine.description
            assert set(remote.tags) == set(mine.tags)
            assert remote.parameters == mine.parameters
        assert transfer.description and "CA, OR" in transfer.description and "Held" in transfer.description
        assert transfer.parameters == {
            "db_url": db_url, "bucket": bucket, "states": GROUP_STATES, "incremental": True,
            "approval_timeout_s": 3600,
        }  # fmt: skip
        assert {"handoff", "transfer", f"group:{GROUP}"} <= set(transfer.tags)
        assert release.description and "approved" in release.description
        # The form an operator gets for a custom run lists the flow's parameters.
        props = (transfer.parameter_openapi_schema or {}).get("properties", {})
        assert {"db_url", "bucket", "states", "incremental", "approval_timeout_s"} <= set(props)

        # Cron schedules in the court's time zone, active while serve runs.
        assert [_cron(s) for s in transfer.schedules] == [("0 2 * * *", COURT_TZ)]
        assert [_cron(s) for s in release.schedules] == [("0 * * * *", COURT_TZ)]
        assert all(s.active for s in [*transfer.schedules, *release.schedules])
        assert not transfer.paused and not release.paused

    serve.stop()
    assert serve.process.returncode is not None


# ----- b. approval through the API --------------------------------------------------------------------
def test_refused_then_authorised_approval_delivers(handoff_env: Any, serve_factory: Any) -> None:
    serve = serve_factory(handoff_env.source_url, handoff_env.bucket, extra_env=handoff_env.env)
    started = time.monotonic()
    run = trigger_transfer()

    paused = wait_for_run(run.id, is_paused, RUN_TIMEOUT, "the approval pause", serve)
    first_key = pause_key(paused)
    assert first_key == "approval-0", paused.state
    assert "Refused" not in pause_description(paused)
    before = handoff_env.ledger()
    assert [e.kind for e in before if e.kind == "awaiting-approval"], [e.kind for e in before]
    assert not [e for e in before if e.kind in ("approved", "delivered")]
    assert handoff_env.bucket_keys() == []

    # A key that is not in the trust file: refused, and the run asks again with the reason shown.
    shown = shown_statement(pause_description(paused))
    assert json.loads(shown)["decision"] == "approve" and "ssh-keygen -Y sign -n handoff-approve" in pause_description(
        paused
    )
    resume(run.id, signed_answer(shown, "mallory"))
    again = wait_for_run(run.id, lambda r: is_paused(r) and pause_key(r) != first_key, RUN_TIMEOUT,
                         "the approval pause after a refusal", serve)  # fmt: skip
    assert pause_key(again) == "approval-1"
    description = pause_description(again)
    assert "Refused" in description and "not in the trust file" in description
    assert not [e for e in handoff_env.ledger() if e.kind in ("approved", "delivered")]
    assert handoff_env.bucket_keys() == []

    # An approver rejecting without saying why: refused too, and asked again.
    life = handoff_env.lifecycle()
    try:
        batch_id = life.batch_for_flow_run(str(run.id))
        reject = canonical(life.decision_statement(batch_id, "reject", "", dt.datetime.now(dt.UTC))).decode()
    finally:
        life.engine.dispose()
    resume(run.id, signed_answer(reject, "ada"))
    third = wait_for_run(run.id, lambda r: is_paused(r) and pause_key(r) == "approval-2", RUN_TIMEOUT,
                         "the approval pause after a rejection with no note", serve)  # fmt: skip
    assert "a rejection needs a note" in pause_description(third)
    assert not [e for e in handoff_env.ledger() if e.kind in ("approved", "rejected", "delivered")]

    # An authorised approver signs the statement the form shows: approved and delivered by the same run.
    approver = APPROVERS[0]
    resume(run.id, signed_answer(shown_statement(pause_description(third)), "ada"))
    final = wait_for_run(run.id, _final, RUN_TIMEOUT, "the run to end", serve)
    assert final.state.is_completed(), final.state
    assert final.state.name == "Delivered", (final.state.name, final.state.message)
    assert "delivered" in (final.state.message or "")

    entries = handoff_env.ledger()
    approved = [e for e in entries if e.kind == "approved"]
    delivered = [e for e in entries if e.kind == "delivered"]
    assert [e.actor for e in approved] == [approver]
    assert len(delivered) == 1 and delivered[0].payload["approvers"] == [approver]
    assert delivered[0].batch_id == approved[0].batch_id
    # The service key started it; each refused attempt is accounted once (resumes replay them).
    assert [e.actor for e in entries if e.kind == "staged"] == ["handoff-scheduler"]
    refused = [e for e in entries if e.kind == "approval-refused"]
    assert [e.actor for e in refused] == ["(signature not verified)", approver], [(e.kind, e.actor) for e in entries]
    assert "not in the trust file" in refused[0].payload["reason"]
    assert "a rejection needs a note" in refused[1].payload["reason"]

    keys = handoff_env.bucket_keys()
    assert any(k.endswith("manifest.json") for k in keys), keys
    assert any(k.endswith(".parquet") for k in keys), keys
    assert len(keys) == delivered[0].payload["files"] + 1

    tags = set(read_run(run.id).tags or [])
    assert "status:delivered" in tags, tags
    descriptions = [a.description or "" for a in artifacts_for(run.id)]
    assert any("delivered" in d for d in descriptions), descriptions
    assert time.monotonic() - started < 150


# ----- c. a long wait under a deployment ---------------------------------------------------------------
def test_waiting_deployment_run_frees_its_worker_and_the_cli_resolves_it(handoff_env: Any, serve_factory: Any) -> None:
    """Under a deployment the approval suspends without a timeout: no worker is held, the run
    stays visibly waiting (never Failed), and `handoff approve` resolves the same pending step."""
    serve = serve_factory(handoff_env.source_url, handoff_env.bucket, extra_env=handoff_env.env)
    run = trigger_transfer({"approval_timeout_s": 5})

    paused = wait_for_run(run.id, is_paused, RUN_TIMEOUT, "the approval step", serve)
    assert paused.state.name == "Suspended", paused.state.name
    time.sleep(12)  # well past approval_timeout_s: a deployment run must not fail on it
    still = read_run(run.id)
    assert still.state.is_paused(), (still.state.type, still.state.name, still.state.message)

    life = handoff_env.lifecycle()
    try:
        from handoff.state import batch as batches

        with life.engine.connect() as conn:
            [waiting_id] = batches.ids(conn)
            waiting = batches.get(conn, waiting_id)
    finally:
        life.engine.dispose()
    assert waiting.status == "awaiting-approval"
    assert handoff_env.bucket_keys() == []

    res = subprocess.run(
        [str(HANDOFF_BIN), "approve", waiting.id, "--key", str(KEYS.key("ada")), "--note", "approved from the CLI"],
        env={**os.environ, **handoff_env.env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "resumed flow run" in res.stderr

    final = wait_for_run(run.id, _final, RUN_TIMEOUT, "the resumed run to finish", serve)
    assert final.state.is_completed(), (final.state.type, final.state.name, final.state.message)
    assert final.state.name == "Delivered", (final.state.name, final.state.message)
    kinds = [e.kind for e in handoff_env.ledger()]
    assert kinds.count("approved") == 1 and kinds.count("delivered") == 1
    assert handoff_env.bucket_keys(), "nothing was delivered"
