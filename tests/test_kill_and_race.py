"""A release SIGKILLed at any step, and two releases started at once, still deliver each batch exactly once.

The killed release is a real process (``release_step.py`` below) that kills itself with SIGKILL
at one step: after the staging check, in the middle of a multipart object, between objects,
before and after the manifest. The rerun happens at once, while the dead process's lease is still
live (its owner is a process on this host that no longer exists). Then:
one manifest, one version of every object, one ``delivered`` entry, and `audit verify` clean.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support import NOW, POLICY_DIR, approve, build_settings, ledger_kinds, record_upheld, transfer

from handoff.transfer import Lifecycle

LEASE = 60
STEPS = ["after-staging-check", "mid-part", "between-objects", "before-manifest", "after-manifest"]

SCRIPT = textwrap.dedent("""
    import datetime as dt, os, signal, sys
    import dataclasses

    from handoff.storage import deliver
    from handoff.release import upload
    from handoff.config import load_settings
    from handoff.context import Context
    from handoff.transfer import Lifecycle

    step, now = sys.argv[1], dt.datetime.fromisoformat(sys.argv[2])
    def die(*_a, **_k):
        os.kill(os.getpid(), signal.SIGKILL)

    def after(owner, name, n=1):
        real, calls = getattr(owner, name), []
        def wrapped(*a, **k):
            out = real(*a, **k)
            calls.append(1)
            if len(calls) == n:
                die()
            return out
        setattr(owner, name, wrapped)

    def before(owner, name, n=1):
        real, calls = getattr(owner, name), []
        def wrapped(*a, **k):
            calls.append(1)
            if len(calls) == n:
                die()
            return real(*a, **k)
        setattr(owner, name, wrapped)

    if step == "after-staging-check":
        after(upload, "check_staged")
    elif step == "between-objects":
        before(deliver, "start_upload", 2)
    elif step == "before-manifest":
        before(deliver, "write_manifest")
    elif step == "after-manifest":
        after(deliver, "write_manifest")
    elif step == "mid-part":  # every object goes multipart in 1 KiB parts; die after the first part
        deliver.PART_SIZE = 1024
        real_target = Context.target
        def small(self, batch):
            t = real_target(self, batch)
            return dataclasses.replace(t, multipart_threshold=1)
        Context.target = small
        real_client = deliver.s3_client
        def client(region):
            c = real_client(region)
            real_part = c.upload_part
            def part(**kw):
                out = real_part(**kw)
                die()
                return out
            c.upload_part = part
            return c
        deliver.s3_client = client
    Lifecycle(load_settings()).release(now)
    sys.exit(3)  # reaching here means the step never came
""")


def _env(settings: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env.update(HANDOFF_HOME=str(settings.home), HANDOFF_POLICY_DIR=str(POLICY_DIR), HANDOFF_CHUNK_ROWS="1000",
               HANDOFF_AUDIT_BUCKET=str(settings.audit_bucket), HANDOFF_KMS_KEY_ID=str(settings.kms_key_id),
               HANDOFF_LEASE_SECONDS=str(LEASE), HANDOFF_CONFIG=str(settings.home / "absent.toml"), **extra)  # fmt: skip
    if settings.state_url:
        env["HANDOFF_STATE_URL"] = settings.state_url
    return env


def _versions(s3: Any) -> dict[str, int]:
    res = s3.client.list_object_versions(Bucket=s3.name)
    out: dict[str, int] = {}
    for v in res.get("Versions", []) + res.get("DeleteMarkers", []):
        out[v["Key"]] = out.get(v["Key"], 0) + 1
    return out


@pytest.mark.parametrize("step", STEPS)
def test_a_release_killed_at_any_step_completes_once_on_the_rerun(step: str, tmp_path: Path, crowded_source_url: str,
                                                                  s3, audit_bucket: str) -> None:  # fmt: skip
    settings = build_settings(tmp_path / "home", bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket,
                              lease_seconds=LEASE)  # fmt: skip
    life = Lifecycle(settings)
    batch = transfer(life, crowded_source_url, s3.name, NOW).batch
    assert len(batch.files) >= 3
    record_upheld(life)
    approve(life, batch.id, "ada")
    script = tmp_path / "release_step.py"
    script.write_text(SCRIPT)
    when = NOW + dt.timedelta(hours=1)
    proc = subprocess.run([sys.executable, str(script), step, when.isoformat()], env=_env(settings),
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, f"{step}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert life.get(batch.id).status == "delivering"

    # At once: the lease is still live, but its owner was a process on this host that no longer exists.
    [done] = life.release(when + dt.timedelta(seconds=1))
    assert done.batch.status == "delivered", (done.batch.status_reason, done.error)
    versions = _versions(s3)
    prefix = done.manifest_key.rsplit("/", 1)[0] + "/"
    assert sorted(versions) == sorted([prefix + f.name for f in batch.files] + [done.manifest_key])
    assert set(versions.values()) == {1}, f"an object was written twice: {versions}"
    assert s3.client.list_multipart_uploads(Bucket=s3.name).get("Uploads", []) == []
    assert ledger_kinds(life, batch.id).count("delivered") == 1
    res = subprocess.run([sys.executable, "-m", "handoff.cli", "audit", "verify", "--json"], env=_env(settings),
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_manifest_already_in_the_bucket_is_recorded_even_after_a_stop(tmp_path: Path, crowded_source_url: str,
                                                                        s3, audit_bucket: str) -> None:  # fmt: skip
    """Killed after the manifest reached the bucket, then a stop: what the recipient can read is a
    disclosure, so the next release records it (delivered, accounted, anchored) instead of leaving it
    `delivering` for good; `audit disclosures` lists it."""
    from support import set_stop

    settings = build_settings(tmp_path / "home", bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket,
                              lease_seconds=LEASE)  # fmt: skip
    life = Lifecycle(settings)
    batch = transfer(life, crowded_source_url, s3.name, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada")
    script = tmp_path / "release_step.py"
    script.write_text(SCRIPT)
    when = NOW + dt.timedelta(hours=1)
    proc = subprocess.run([sys.executable, str(script), "after-manifest", when.isoformat()], env=_env(settings),
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    set_stop(life, "TRO motion filed", when + dt.timedelta(seconds=1))
    [done] = life.release(when + dt.timedelta(seconds=2))
    assert done.batch.status == "delivered", (done.batch.status_reason, done.error)
    assert ledger_kinds(life, batch.id).count("delivered") == 1
    res = subprocess.run([sys.executable, "-m", "handoff.cli", "audit", "disclosures", "--json"], env=_env(settings),
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert res.returncode == 0 and batch.id in res.stdout, res.stdout + res.stderr
    res = subprocess.run([sys.executable, "-m", "handoff.cli", "audit", "verify", "--json"], env=_env(settings),
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.postgres
def test_two_releases_started_at_once_on_postgres_deliver_each_batch_once(
    tmp_path: Path, sqlite_source_url: str, s3, audit_bucket: str, pg_database: str
) -> None:
    import sqlalchemy as sa

    schema = f"state_race_{os.getpid()}"
    engine = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    engine.dispose()
    state_url = f"{pg_database}?options=-csearch_path%3D{schema}"
    settings = build_settings(tmp_path / "home", state_url=state_url, bucket=s3.name, kms_key_id=s3.kms_key_id,
                              audit_bucket=audit_bucket)  # fmt: skip
    life = Lifecycle(settings)
    now = dt.datetime.now(dt.UTC)  # the CLI reads the clock itself
    record_upheld(life, now)
    ids = []
    for minute in range(3):
        batch = transfer(life, sqlite_source_url, s3.name, now + dt.timedelta(seconds=minute)).batch
        approve(life, batch.id, "ada", now)
        ids.append(batch.id)
    cli = [sys.executable, "-m", "handoff.cli", "release", "--json"]
    procs = [subprocess.Popen(cli, env=_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode in (0, 1) for p in procs), outs
    for batch_id in ids:
        assert life.get(batch_id).status == "delivered"
        kinds = ledger_kinds(life, batch_id)
        assert kinds.count("delivered") == 1, (batch_id, kinds)
    assert set(_versions(s3).values()) == {1}
