"""`handoff local up` gives a newcomer a working S3 + KMS endpoint with handoff's buckets, and stays up
until `handoff local down`: a transfer run with the environment it prints reaches `held`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from support import HANDOFF_BIN, KEYS, cli_env, run_cli


def test_local_up_serves_the_buckets_handoff_needs_until_local_down(tmp_path: Path, sqlite_source_url: str) -> None:
    import boto3

    home = tmp_path / "home"
    env = cli_env(home)
    up = subprocess.Popen([str(HANDOFF_BIN), "local", "up"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        env_file = home / "local.env"
        for _ in range(300):
            if env_file.exists() or up.poll() is not None:
                break
            time.sleep(0.1)
        assert env_file.exists(), up.stderr.read() if up.poll() is not None else "local up did not start in 30 s"
        exported = dict(line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines())
        s3 = boto3.client("s3", endpoint_url=exported["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                          aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        assert s3.get_bucket_versioning(Bucket=exported["HANDOFF_BUCKET"])["Status"] == "Enabled"
        lock = s3.get_object_lock_configuration(Bucket=exported["HANDOFF_AUDIT_BUCKET"])["ObjectLockConfiguration"]
        assert lock["ObjectLockEnabled"] == "Enabled"
        res = run_cli("transfer", "--db", sqlite_source_url, "--key", str(KEYS.key("operator")), "--json",
                      env={**env, **exported}, cwd=tmp_path)  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["status"] == "held"  # the hearing has no recorded outcome yet
        again = run_cli("local", "up", env=env, cwd=tmp_path)
        assert again.returncode == 2 and "already runs" in again.stderr
        down = run_cli("local", "down", env=env, cwd=tmp_path)
        assert down.returncode == 0 and "stopped the local stack" in down.stdout, down.stderr
        assert up.wait(timeout=30) == 0
        assert not env_file.exists() and not (home / "local.pid").exists()
        gone = run_cli("local", "down", env=env, cwd=tmp_path)
        assert gone.returncode == 2 and "no local stack runs" in gone.stderr
    finally:
        if up.poll() is None:
            up.kill()


def test_the_demo_kept_up_lets_every_command_it_printed_run_again(tmp_path: Path) -> None:
    """`handoff demo --keep`: after the story, the environment it prints reaches the demo's own state and
    buckets, so `status`, the recipient's `verify` and `audit verify` run again (the last naming what the
    demo's insider signed); `local down` ends it."""
    home = tmp_path / "home"
    env = cli_env(home)
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(k, None)  # the demo starts its own endpoint
    demo = subprocess.Popen([str(HANDOFF_BIN), "demo", "--rows", "400", "--keep"], env={**env, "COLUMNS": "400"},
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines: list[str] = []
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("# up (also in"):
                break
        assert lines and lines[-1].startswith("# up"), "".join(lines[-40:]) + (
            demo.stderr.read() if demo.stderr else ""
        )
        exported = dict(x.removeprefix("export ").strip().split("=", 1) for x in lines if x.startswith("export "))
        assert exported["HANDOFF_HOME"] == str(home / "demo")
        shell = {**env, **exported}
        status = run_cli("status", "--json", env=shell, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert [b["status"] for b in json.loads(status.stdout)].count("delivered") == 2
        verify = next(x for x in lines[-1].split("; ") if x.startswith("handoff verify "))
        res = run_cli(*verify.removeprefix("handoff ").split(), env=shell, cwd=tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
        # The sender's own check, against the published trust file, names what the insider signed.
        audit = next(x for x in lines[-1].split("; ") if x.startswith("handoff audit verify "))
        res = run_cli(*audit.removeprefix("handoff ").split(), env=shell, cwd=tmp_path)
        assert res.returncode == 1 and "ledger broken" in res.stdout and "hearing-outcome" in res.stdout, res.stdout
        down = run_cli("local", "down", env=env, cwd=tmp_path)
        assert down.returncode == 0, down.stderr
        assert demo.wait(timeout=30) == 0
        assert not (home / "local.env").exists()
    finally:
        if demo.poll() is None:
            demo.kill()
