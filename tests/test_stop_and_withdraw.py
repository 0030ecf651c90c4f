"""A stop that stops, a batch that never hangs, a withdrawal that is accounted.

Each test plays the careless operator or the bad moment: a stop set after the first object went
out, a stop set on another state database, a staged file changed mid-upload, a release racing a
live one. Real S3 over HTTP (a versioned bucket, so "removed" means every version is gone).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from support import (
    NOW,
    approve,
    build_settings,
    ledger_kinds,
    record_upheld,
    set_stop,
    staged_paths,
    transfer,
)

from handoff.errors import StateError
from handoff.evidence.accounting import disclosures
from handoff.state.status import Status
from handoff.storage import deliver
from handoff.transfer import Lifecycle

LATER = NOW + dt.timedelta(hours=1)


def _approved(life: Any, url: str, bucket: str) -> Any:
    batch = transfer(life, url, bucket, NOW).batch
    assert len(batch.files) >= 2
    record_upheld(life)
    approve(life, batch.id, "ada")
    return batch


def _versions(s3: Any, prefix: str = "") -> list[str]:
    res = s3.client.list_object_versions(Bucket=s3.name, Prefix=prefix)
    return [v["Key"] for v in res.get("Versions", []) + res.get("DeleteMarkers", [])]


def _after_first_object(monkeypatch: pytest.MonkeyPatch, action: Any) -> list[str]:
    real, calls = deliver.start_upload, []

    def upload(s3_client, target, key, path, sha256_hex, guard):  # type: ignore[no-untyped-def]
        if calls:
            action()
        calls.append(key)
        return real(s3_client, target, key, path, sha256_hex, guard)

    monkeypatch.setattr("handoff.storage.deliver.start_upload", upload)
    return calls


def test_a_stop_set_after_the_first_object_leaves_nothing_and_accounts_the_removal(
    life, crowded_source_url: str, s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _approved(life, crowded_source_url, s3.name)
    calls = _after_first_object(monkeypatch, lambda: set_stop(life, "TRO motion filed"))
    [out] = life.release(LATER)
    monkeypatch.undo()
    assert len(calls) == 2, "the second object was guarded and never sent"
    assert out.batch.status == "held" and "TRO motion filed" in out.batch.status_reason
    assert _versions(s3) == [], "every version of the uncommitted object was removed; no manifest"
    with life.engine.connect() as conn:
        from handoff.state import ledger

        [stopped] = ledger.entries(conn, batch_id=batch.id, kinds=["delivery-stopped"])
        accounted = disclosures(conn)
    assert [o["key"] for o in stopped.payload["objects_removed"]] == [calls[0]]
    assert stopped.payload["records_exposed"] == batch.files[0].rows
    assert [(d.kind, d.batch_id, d.records) for d in accounted] == [
        ("partial, withdrawn", batch.id, batch.files[0].rows)
    ]
    assert "delivered" not in ledger_kinds(life, batch.id)


def test_a_stop_in_the_audit_bucket_holds_a_release_against_another_state_database(
    tmp_path, sqlite_source_url: str, s3, audit_bucket: str
) -> None:
    ours = Lifecycle(
        build_settings(tmp_path / "a", bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket)
    )
    other = Lifecycle(
        build_settings(tmp_path / "b", bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket)
    )
    batch = transfer(ours, sqlite_source_url, s3.name, NOW).batch
    record_upheld(ours)
    approve(ours, batch.id, "ada")
    stop = set_stop(other, "TRO motion filed in another office")  # other's own state database
    other.ctx.store.mark_stop(stop.id, stop.reason, stop.set_by, NOW)  # what `handoff hold set` writes
    [out] = ours.release(LATER)
    assert out.batch.status == "held" and "another office" in out.batch.status_reason
    assert _versions(s3) == []


def test_a_file_changed_mid_upload_fails_once_withdraws_and_is_not_retried(
    life, crowded_source_url: str, s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _approved(life, crowded_source_url, s3.name)
    second = staged_paths(batch)[1]
    _after_first_object(monkeypatch, lambda: second.write_bytes(second.read_bytes() + b"x"))
    [out] = life.release(LATER)
    monkeypatch.undo()
    assert out.batch.status == "failed" and "changed since validation" in out.error
    assert _versions(s3) == []
    kinds = ledger_kinds(life, batch.id)
    assert kinds.count("delivery-failed") == 1
    assert life.release(LATER + dt.timedelta(hours=1)) == [], "a failed batch is not retried by the schedule"
    assert ledger_kinds(life, batch.id) == kinds


def test_a_missing_staged_file_fails_its_batch_without_a_traceback(life, sqlite_source_url: str, s3) -> None:
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada")
    staged_paths(batch)[0].unlink()
    [out] = life.release(LATER)
    assert out.batch.status == "failed" and "missing" in out.error


def test_a_live_delivery_is_never_resumed_and_an_expired_one_is_taken_over_once(
    tmp_path, sqlite_source_url: str, s3, audit_bucket: str
) -> None:
    def lifecycle() -> Any:
        return Lifecycle(build_settings(tmp_path / "home", bucket=s3.name, kms_key_id=s3.kms_key_id,
                                        audit_bucket=audit_bucket, lease_seconds=60))  # fmt: skip

    first, second = lifecycle(), lifecycle()
    batch = transfer(first, sqlite_source_url, s3.name, NOW).batch
    record_upheld(first)
    approve(first, batch.id, "ada")
    state, _ = first.releases.handover.start(batch.id, LATER)  # then the process dies before uploading
    assert state == "started" and first.get(batch.id).status == "delivering"

    [busy] = second.release(LATER + dt.timedelta(seconds=30))
    assert busy.batch.status == "delivering" and _versions(s3) == []
    assert ledger_kinds(second, batch.id).count("delivery-started") == 1

    [done] = second.release(LATER + dt.timedelta(seconds=61))
    assert done.batch.status == "delivered"
    with second.engine.connect() as conn:
        from handoff.state import ledger

        started = ledger.entries(conn, batch_id=batch.id, kinds=["delivery-started"])
    assert [e.payload["took_over_from"] for e in started] == [None, first.ctx.owner]
    assert second.release(LATER + dt.timedelta(seconds=62)) == []


def test_withdraw_takes_a_delivered_batch_back_and_accounts_it(life, sqlite_source_url: str, s3, tmp_path) -> None:
    from support import cli_env, run_cli

    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada")
    [done] = life.release(LATER)
    prefix = done.manifest_key.rsplit("/", 1)[0] + "/"
    env = cli_env(life.settings.home, HANDOFF_AUDIT_BUCKET=life.settings.audit_bucket)
    res = run_cli("withdraw", batch.id, "--reason", "order narrowed on 2026-01-20", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "withdrawn"
    assert _versions(s3, prefix) == [prefix + "WITHDRAWN.json"]
    tomb = json.loads(s3.client.get_object(Bucket=s3.name, Key=prefix + "WITHDRAWN.json")["Body"].read())
    assert tomb["reason"] == "order narrowed on 2026-01-20" and len(tomb["objects_removed"]) == len(batch.files) + 1
    with life.engine.connect() as conn:
        kinds = [d.kind for d in disclosures(conn)]
    assert kinds == ["delivered", "withdrawn after delivery"]
    again = run_cli("withdraw", batch.id, "--reason", "twice", env=env, cwd=tmp_path)
    assert again.returncode == 2 and "only a delivered batch, or one stuck delivering, is withdrawn" in again.stderr
    audit = run_cli("audit", "verify", "--json", env=env, cwd=tmp_path)
    assert audit.returncode == 0, audit.stdout


def test_the_state_machine_refuses_a_transition_it_does_not_list(life, sqlite_source_url: str, s3) -> None:
    from handoff.state import batch as batches

    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    with life.engine.begin() as conn, pytest.raises(StateError, match="cannot go from held to delivered"):
        batches.set_status(conn, batch.id, Status.DELIVERED, None, NOW)


def test_the_release_flow_ends_delivery_failed_for_the_alert(prefect_harness, life, sqlite_source_url: str, s3,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """infra/automations.yaml alerts on a release run in the state DeliveryFailed."""
    from support import POLICY_DIR

    from flows.release import release_flow

    now = dt.datetime.now(dt.UTC)  # the flow reads the clock itself
    batch = transfer(life, sqlite_source_url, s3.name, now).batch
    record_upheld(life, now)
    approve(life, batch.id, "ada", now)
    staged_paths(batch)[0].unlink()
    for k, v in {"HANDOFF_HOME": str(life.settings.home), "HANDOFF_POLICY_DIR": str(POLICY_DIR),
                 "HANDOFF_AUDIT_BUCKET": str(life.settings.audit_bucket), "HANDOFF_KMS_KEY_ID": s3.kms_key_id,
                 "HANDOFF_CHUNK_ROWS": "1000"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    state = release_flow(return_state=True)
    assert state.is_completed() and state.name == "DeliveryFailed", (state.name, state.message)
    assert batch.id in (state.message or "") and life.get(batch.id).status == "failed"


def test_a_delivery_whose_lease_was_taken_over_stops_and_leaves_the_new_owners_objects(
    tmp_path, crowded_source_url: str, s3, audit_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lifecycle() -> Any:
        return Lifecycle(build_settings(tmp_path / "home", bucket=s3.name, kms_key_id=s3.kms_key_id,
                                        audit_bucket=audit_bucket, lease_seconds=60))  # fmt: skip

    slow, other = lifecycle(), lifecycle()
    batch = _approved(slow, crowded_source_url, s3.name)
    # While the slow process sends its first object, its lease runs out and the other takes over.
    calls = _after_first_object(
        monkeypatch, lambda: other.releases.handover.start(batch.id, LATER + dt.timedelta(seconds=61))
    )
    [out] = slow.release(LATER)
    monkeypatch.undo()
    assert "took over" in (out.error or "") and len(calls) == 2
    assert slow.get(batch.id).status == "delivering" and _versions(s3), "the new owner's objects were left alone"
    assert "delivery-stopped" not in ledger_kinds(slow, batch.id)
    [done] = other.release(LATER + dt.timedelta(seconds=62))
    assert done.batch.status == "delivered"
    versions = _versions(s3)
    assert len(versions) == len(set(versions)) == len(batch.files) + 1, "an object was written twice"
