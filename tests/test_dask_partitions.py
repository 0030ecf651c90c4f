"""The transfer flow with partitions on a 2-worker Dask LocalCluster equals a sequential partitioned run.

The flow runs under ``prefect_test_harness`` with ``dask_task_runner(workers=2)`` (worker
processes). Worker processes read their settings from ``HANDOFF_*`` in the environment, so the
test sets those before the flow starts the cluster. The flow's local approval pause times out,
the run ends ``AwaitingApproval``, and the batch is approved and released with ``Lifecycle``.
A sequential ``Lifecycle.transfer(..., partition_rows=...)`` into another home and bucket must
stage byte-identical files, in the same order, and deliver an equal manifest (volatile fields
aside).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import uuid
from typing import Any

import pytest
from support import KEYS, POLICY_DIR, approve, build_settings, record_upheld, request, sha256_file, staged_paths

from handoff.transfer import Lifecycle
from handoff_tools import emulator

pytestmark = pytest.mark.slow

STATES_SUBSET = ["CA", "NY", "OH", "TX"]  # CA 15, NY 10, OH 8, TX 1 included rows in the shared sources
PARTITION_ROWS = 6  # CA is cut into 3 id ranges; 6 partitions in all


@pytest.fixture
def dask_submissions(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Record what the flow hands to the Dask client, and the Dask workers' process ids."""
    from prefect.tasks import Task
    from prefect_dask.client import PrefectDaskClient

    seen: dict[str, Any] = {"tasks": [], "worker_pids": None, "cluster": None}
    real = PrefectDaskClient.submit

    def submit(self, func, *args, **kwargs):  # type: ignore[no-untyped-def]
        if seen["worker_pids"] is None:
            seen["worker_pids"] = sorted(self.run(os.getpid).values())
            seen["cluster"] = type(getattr(self, "cluster", None)).__name__
        if isinstance(func, Task):
            seen["tasks"].append(func.name)
        return real(self, func, *args, **kwargs)

    monkeypatch.setattr(PrefectDaskClient, "submit", submit)
    return seen


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _manifest(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3.client.get_object(Bucket=bucket, Key=key)["Body"].read())


def _normalise(doc: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what differs between two deliveries of the same content."""
    doc = copy.deepcopy(doc)
    batch_id = doc.pop("batch_id")
    for volatile in ("destination", "approvals", "ledger_head", "delivered_at"):
        doc.pop(volatile)
    proof = doc.pop("proof")  # the signed request and the validation entry name the batch; the order does not
    doc["order_file"] = proof["order_file"]
    for f in doc["files"]:
        assert f"/{batch_id}/" in f["key"]
        f["key"] = f["key"].replace(f"/{batch_id}/", "/BATCH/")
    return doc


def _partition_task_runs(flow_run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r for r in runs if r.name.startswith("partition ")]


def test_dask_partitioned_flow_equals_sequential_run(
    prefect_harness, source_url: str, s3, s3_server, tmp_path, monkeypatch, dask_submissions, audit_bucket
) -> None:
    import flows.transfer as ft

    # The flow (and every Dask worker process it starts) takes its settings from the environment.
    home_a = tmp_path / "flow-home"
    env = {
        "HANDOFF_HOME": str(home_a),
        "HANDOFF_POLICY_DIR": str(POLICY_DIR),
        "HANDOFF_SIGNING_KEY": str(KEYS.key("scheduler")),
        "HANDOFF_CHUNK_ROWS": "1000",
        "HANDOFF_KMS_KEY_ID": s3.kms_key_id,
        "HANDOFF_AUDIT_BUCKET": audit_bucket,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert os.environ.get("AWS_ENDPOINT_URL_S3") == s3.endpoint
    life_a = Lifecycle(build_settings(home_a, bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket))
    record_upheld(life_a, _now())

    flow = ft.transfer_flow.with_options(task_runner=ft.dask_task_runner(workers=2))
    state = flow(db_url=source_url, bucket=s3.name, states=STATES_SUBSET, partition_rows=PARTITION_ROWS, approval_timeout_s=1, return_state=True)  # fmt: skip
    assert state.name == "AwaitingApproval", f"{state.name}: {state.message}"
    flow_run_id = state.state_details.flow_run_id
    batch_id = life_a.batch_for_flow_run(str(flow_run_id))
    assert batch_id, "the flow recorded no batch for its run"
    assert life_a.get(batch_id).status == "awaiting-approval"
    assert s3.object_keys() == [], "an unapproved batch was uploaded"

    # The partitions ran as Prefect tasks on the 2-process Dask cluster.
    assert dask_submissions["cluster"] == "LocalCluster"
    pids = dask_submissions["worker_pids"]
    assert len(pids) == 2 and os.getpid() not in pids, pids
    assert dask_submissions["tasks"].count("stage partition") == 6, dask_submissions["tasks"]
    runs = _partition_task_runs(flow_run_id)
    assert sorted(int(r.name.split(":")[0].split()[1]) for r in runs) == list(range(6))
    assert all(r.state and r.state.is_completed() for r in runs), [(r.name, r.state) for r in runs]
    assert sum(r.name.startswith("partition 0: ['06']") for r in runs) == 1

    decided = approve(life_a, batch_id, "ada", _now(), "counts checked")
    assert decided.batch.status == "approved"
    [delivered_a] = life_a.release(_now())
    assert delivered_a.batch.status == "delivered", delivered_a.batch.status_reason

    # The same transfer, sequential partitions, its own home and bucket.
    bucket_b = f"handoff-test-{uuid.uuid4().hex[:12]}"
    key_b = emulator.create_bucket(s3_server, bucket_b)
    audit_b = f"handoff-audit-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(s3_server, audit_b, object_lock=True)
    life_b = Lifecycle(build_settings(tmp_path / "seq-home", bucket=bucket_b, kms_key_id=key_b, audit_bucket=audit_b))
    record_upheld(life_b, _now())
    now = _now()
    seq = life_b.transfer(request(life_b, source_url, bucket_b, now, states=STATES_SUBSET), bucket_b, now,
                          partition_rows=PARTITION_ROWS)  # fmt: skip
    assert seq.batch.status == "awaiting-approval"
    approve(life_b, seq.batch.id, "ada", _now(), "counts checked")
    [delivered_b] = life_b.release(_now())
    assert delivered_b.batch.status == "delivered"

    a, b = delivered_a.batch, delivered_b.batch
    assert len(a.files) == 6  # one file per partition: every partition has rows
    assert [(f.name, f.rows, f.sha256) for f in a.files] == [(f.name, f.rows, f.sha256) for f in b.files]
    assert [sha256_file(p) for p in staged_paths(a)] == [sha256_file(p) for p in staged_paths(b)]
    assert [sha256_file(p) for p in staged_paths(a)] == [f.sha256 for f in a.files]
    assert a.content_hash == b.content_hash
    assert (a.rows_staged, a.rows_quarantined, a.watermark) == (b.rows_staged, b.rows_quarantined, b.watermark)

    manifest_a = _manifest(s3, s3.name, delivered_a.manifest_key)
    manifest_b = _manifest(s3, bucket_b, delivered_b.manifest_key)
    assert a.flow_run_id == str(flow_run_id) and b.flow_run_id is None
    assert manifest_a["destination"]["bucket"] == s3.name and manifest_b["destination"]["bucket"] == bucket_b
    assert [x["principal"] for x in manifest_a["approvals"]] == [x["principal"] for x in manifest_b["approvals"]]
    assert [f["sha256"] for f in manifest_a["files"]] == [f.sha256 for f in a.files]
    assert _normalise(manifest_a) == _normalise(manifest_b)
