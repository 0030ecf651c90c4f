"""No batch without a way forward.

A mistyped bucket, an audit bucket without Object Lock or an unknown KMS key is refused by `transfer`
before anything is extracted. A release that keeps failing records why on the batch, lets its lease go
at once, and after HANDOFF_DELIVERY_ATTEMPTS ends `failed`, accounted; a batch stuck delivering can be
withdrawn by hand, and `reject` points there.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import KEYS, NOW, approve, buckets, cli_env, ledger_kinds, record_upheld, run_cli, transfer

from handoff.state import batch as batches
from handoff_tools import emulator


@pytest.fixture
def env(s3_server: Any, tmp_path: Path) -> dict[str, str]:
    bucket, key, audit = buckets(s3_server, "stuck")
    return cli_env(tmp_path / "home", HANDOFF_KMS_KEY_ID=key, HANDOFF_AUDIT_BUCKET=audit, HANDOFF_BUCKET=bucket)


def _refused(res: Any, *needles: str) -> None:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_transfer_checks_where_it_goes_before_extracting_anything(env: dict[str, str], s3_server: Any,
                                                                  sqlite_source_url: str, tmp_path: Path) -> None:  # fmt: skip
    args = ("transfer", "--db", sqlite_source_url, "--key", str(KEYS.key("operator")))
    _refused(run_cli(*args, "--bucket", "handoff-no-such-bucket", env=env, cwd=tmp_path),
             "'handoff-no-such-bucket' does not exist", "--bucket", "Nothing was extracted")  # fmt: skip
    plain = f"handoff-plain-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(s3_server, plain)
    _refused(run_cli(*args, env={**env, "HANDOFF_AUDIT_BUCKET": plain}, cwd=tmp_path),
             f"audit bucket {plain!r} has no Object Lock")  # fmt: skip
    _refused(run_cli(*args, env={**env, "HANDOFF_KMS_KEY_ID": str(uuid.uuid4())}, cwd=tmp_path),
             "KMS key", "does not exist")  # fmt: skip
    listing = run_cli("status", "--json", env=env, cwd=tmp_path)
    assert listing.returncode == 0 and json.loads(listing.stdout) == [], listing.stdout
    staging = Path(env["HANDOFF_HOME"]) / "staging"
    assert not staging.exists() or not list(staging.iterdir())


def test_a_release_that_keeps_failing_says_why_then_ends_failed_and_accounted(life: Any, s3: Any,
                                                                              sqlite_source_url: str) -> None:  # fmt: skip
    """The bucket vanished after approval: each release records why and lets the lease go; the third ends it."""
    import datetime as dt

    batch = transfer(life, sqlite_source_url, s3.name).batch
    record_upheld(life)
    approve(life, batch.id)
    s3.client.delete_bucket(Bucket=s3.name)
    at = NOW + dt.timedelta(hours=1)
    for attempt in (1, 2):
        [r] = life.release(at + dt.timedelta(seconds=attempt))
        assert r.error and r.batch.status == "delivering"
        assert r.batch.status_reason.startswith(f"release {attempt} of 3 failed:"), r.batch.status_reason
        assert not batches.lease(life.get(batch.id)).live(at + dt.timedelta(seconds=attempt))  # the lease went
    [r] = life.release(at + dt.timedelta(seconds=3))
    assert r.batch.status == "failed", (r.batch.status, r.batch.status_reason)
    assert "3 releases failed" in r.batch.status_reason
    kinds = ledger_kinds(life, batch.id)
    assert kinds.count("delivery-interrupted") == 2 and kinds[-1] == "delivery-failed"
    assert life.release(at + dt.timedelta(seconds=4)) == []  # nothing left to retry


def test_a_batch_stuck_delivering_can_be_withdrawn_and_not_rejected(life: Any, s3: Any, sqlite_source_url: str) -> None:
    import datetime as dt

    from handoff.errors import GateError

    batch = transfer(life, sqlite_source_url, s3.name).batch
    record_upheld(life)
    approve(life, batch.id)
    s3.client.delete_bucket(Bucket=s3.name)
    at = NOW + dt.timedelta(hours=1)
    [r] = life.release(at)
    assert r.batch.status == "delivering"
    with pytest.raises(GateError, match="handoff withdraw"):
        from support import decide

        decide(life, batch.id, "bo", "reject", note="stuck", now=at)
    out = life.withdraw(batch.id, "bucket name was mistyped", "Ops On-call", at + dt.timedelta(seconds=1))
    assert out.batch.status == "failed" and "withdrawn by Ops On-call" in out.batch.status_reason
    assert ledger_kinds(life, batch.id)[-1] == "delivery-failed"


def test_planted_stop_markers_that_cannot_be_read_hold_and_crash_nothing(env: dict[str, str], sqlite_source_url: str,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    """Bytes planted in the audit bucket with the host's credentials: an unreadable clearing clears
    nothing, an unreadable stop marker still stops (named), and every command still works."""
    import boto3

    res = run_cli("transfer", "--db", sqlite_source_url, "--key", str(KEYS.key("operator")), env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    s3 = boto3.client("s3", region_name="us-east-1")
    for key, body in (("stops/clear-planted.json", b"\xff not json"), ("stops/stop-planted.json", b"[1, 2]")):
        s3.put_object(Bucket=env["HANDOFF_AUDIT_BUCKET"], Key=key, Body=body, ChecksumAlgorithm="SHA256")
    for args in (("status",), ("release",), ("hold", "list")):
        res = run_cli(*args, env=env, cwd=tmp_path)
        assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr
    listed = run_cli("hold", "list", env=env, cwd=tmp_path).stdout
    assert "stop-planted.json" in listed and "cannot be read" in " ".join(listed.split())
    res = run_cli("hold", "clear", "--reason", "planted marker reviewed", "--key", str(KEYS.key("ops")), env=env,
                  cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0 and "cleared" in res.stdout, res.stderr
    assert "active" not in run_cli("hold", "list", env=env, cwd=tmp_path).stdout


def test_reading_status_with_an_edited_order_file_holds_and_never_supersedes(s3: Any, audit_bucket: str,
                                                                              sqlite_source_url: str,
                                                                              tmp_path: Path) -> None:  # fmt: skip
    """Someone edits the order version in force in place: `status` holds every batch, naming the file;
    restoring the file lets them go on. Superseded (final) is only ever a newer version the ledger accepted."""
    import shutil

    from support import POLICY_DIR, build_settings

    from handoff.transfer import Lifecycle

    policy = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, policy)
    life = Lifecycle(build_settings(tmp_path / "home", policy_dir=policy, bucket=s3.name, kms_key_id=s3.kms_key_id,
                                    audit_bucket=audit_bucket))  # fmt: skip
    batch = transfer(life, sqlite_source_url, s3.name).batch
    record_upheld(life)
    assert life.refresh(batch.id, NOW).batch.status == "awaiting-approval"
    order_file = policy / "orders" / "2025-12-29.yaml"
    original = order_file.read_bytes()
    order_file.write_bytes(original.replace(b"name_flag: false", b"name_flag: true"))
    from handoff.policy.order import PolicySet

    life.ctx.policies = PolicySet(policy)
    for _ in range(2):
        held = life.refresh(batch.id, NOW)
        assert held.batch.status == "held" and "2025-12-29.yaml" in (held.batch.status_reason or "")
    order_file.write_bytes(original)
    life.ctx.policies = PolicySet(policy)
    assert life.refresh(batch.id, NOW).batch.status == "awaiting-approval"


def test_through_the_cli_a_vanished_bucket_ends_failed_after_three_releases(env: dict[str, str],
                                                                            sqlite_source_url: str,
                                                                            tmp_path: Path) -> None:  # fmt: skip
    import boto3
    from support import HEARING_ID

    res = run_cli("transfer", "--db", sqlite_source_url, "--key", str(KEYS.key("operator")), "--json", env=env,
                  cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    batch = json.loads(res.stdout)["batch_id"]
    for args in (("court", "outcome", HEARING_ID, "--result", "upheld", "--key", str(KEYS.key("counsel"))),
                 ("approve", batch, "--key", str(KEYS.key("ada")))):  # fmt: skip
        assert run_cli(*args, env=env, cwd=tmp_path).returncode == 0
    boto3.client("s3", region_name="us-east-1").delete_bucket(Bucket=env["HANDOFF_BUCKET"])
    for attempt in (1, 2, 3):
        res = run_cli("release", env=env, cwd=tmp_path)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert lines[0].startswith(f"delivery of {batch} failed ("), lines[0]
        shown = json.loads(run_cli("status", batch, "--json", env=env, cwd=tmp_path).stdout)
        if attempt < 3:
            assert shown["status"] == "delivering" and shown["reason"].startswith(f"release {attempt} of 3 failed")
    assert shown["status"] == "failed" and "3 releases failed" in shown["reason"]
    assert run_cli("release", "--json", env=env, cwd=tmp_path).stdout.strip() == "[]"
