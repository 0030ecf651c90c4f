"""Failures a user can cause print one line naming the cause and the fix, never a traceback and never
a source value: an unreadable, non-UTF-8 or absurdly nested order file, an unreadable trust file, S3
down or no credentials for `verify`, a replayed transfer request, a source column of the wrong type."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import KEYS, POLICY_DIR, cli_env, execute, run_cli

from handoff_tools import emulator

ORDER = "2025-12-29.yaml"


def _one_line(res: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr and len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _policy(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, folder)
    return folder


@pytest.mark.parametrize(
    ("spoil", "needle"),
    [
        pytest.param(lambda o: (o.unlink(), o.mkdir()), "cannot read the order file", id="unreadable"),
        pytest.param(lambda o: o.write_bytes(o.read_bytes() + b"\nnote: caf\xe9\n"), "not UTF-8 text (byte", id="latin-1"),
        pytest.param(lambda o: o.write_text("a: " + "[" * 3000 + "]" * 3000 + "\n"), "nested too deeply", id="deep"),
        pytest.param(lambda o: o.write_text("a: &x [1, 2]\nb: [*x, *x]\n"), "uses YAML aliases", id="aliases"),
        pytest.param(lambda o: o.write_text("effective_date: 2026-13-45\n"), "a value cannot be read", id="no-such-day"),
    ],
)  # fmt: skip
def test_a_bad_order_file_is_one_line(tmp_path: Path, spoil: Any, needle: str) -> None:
    policy = _policy(tmp_path)
    spoil(policy / "orders" / ORDER)
    res = run_cli("policy", "show", env=cli_env(tmp_path / "h", HANDOFF_POLICY_DIR=str(policy)), cwd=tmp_path)
    _one_line(res, 2, ORDER, needle)


def test_an_unreadable_trust_file_is_one_line(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    trust = policy / "trust" / "allowed_signers"
    trust.unlink()
    trust.mkdir()
    res = run_cli("trust", "show", env=cli_env(tmp_path / "h", HANDOFF_POLICY_DIR=str(policy)), cwd=tmp_path)
    _one_line(res, 2, "cannot read the trust file", "permissions")


def test_verify_with_s3_down_or_no_credentials_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = "s3://agency-handoff/cand.v1/20260107T180000Z-1a2b3c/"
    down = cli_env(tmp_path / "h", AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="x",
                   AWS_SECRET_ACCESS_KEY="x", AWS_MAX_ATTEMPTS="1", AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    _one_line(
        run_cli("verify", url, env=down, cwd=tmp_path), 2, "cannot read s3://agency-handoff", "AWS_ENDPOINT_URL_S3"
    )
    nocreds = {k: v for k, v in down.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    nocreds.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
                   AWS_EC2_METADATA_DISABLED="true")  # fmt: skip
    _one_line(run_cli("verify", url, env=nocreds, cwd=tmp_path), 2, "credentials")


@pytest.fixture
def home(s3_server, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    bucket = f"handoff-err-{uuid.uuid4().hex[:12]}"
    key = emulator.create_bucket(s3_server, bucket)
    env = cli_env(tmp_path / "home", HANDOFF_KMS_KEY_ID=key, HANDOFF_BUCKET=bucket)
    return {"env": env, "cwd": tmp_path}


def test_a_replayed_transfer_request_is_refused_in_one_line_and_leaves_nothing(home: dict[str, Any],
                                                                               sqlite_source_url: str) -> None:  # fmt: skip
    env, cwd = home["env"], home["cwd"]
    res = run_cli("transfer", "--db", sqlite_source_url, "--statement", env=env, cwd=cwd)
    assert res.returncode == 0, res.stderr
    request = cwd / "request.json"
    request.write_text(res.stdout)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", "handoff-operator", "-f", str(KEYS.key("operator")),
                    str(request)], check=True, capture_output=True)  # fmt: skip
    first = run_cli("transfer", "--db", sqlite_source_url, "--signature", f"{request}.sig", "--json", env=env, cwd=cwd)
    assert first.returncode == 0, first.stderr
    batch = json.loads(first.stdout)["batch_id"]
    again = run_cli("transfer", "--db", sqlite_source_url, "--signature", f"{request}.sig", env=env, cwd=cwd)
    _one_line(again, 2, "already used", batch, "sign a new one")
    staging = Path(env["HANDOFF_HOME"]) / "staging"
    assert not list(staging.glob("*.partial")), list(staging.iterdir())


def test_a_text_updated_at_quarantines_nothing_and_prints_no_value(home: dict[str, Any], fresh_source_url: str) -> None:
    """A change timestamp that is not one: one line naming the column, never the value, and no file left."""
    secret = "Zelda 123-45-6789"
    if fresh_source_url.startswith("postgresql"):
        execute(fresh_source_url, "ALTER TABLE enrollees ALTER COLUMN updated_at TYPE text")
    execute(fresh_source_url, "UPDATE enrollees SET updated_at = :v WHERE msis_ident_num IN "
                              "(SELECT msis_ident_num FROM enrollees ORDER BY msis_ident_num LIMIT 1)",
            params={"v": secret})  # fmt: skip
    env, cwd = home["env"], home["cwd"]
    res = run_cli("transfer", "--db", fresh_source_url, "--key", str(KEYS.key("operator")), env=env, cwd=cwd)
    shown = res.stdout + res.stderr
    assert secret not in shown and "123-45-6789" not in shown, shown
    assert "Traceback" not in shown
    if res.returncode != 0:
        _one_line(res, 2, "updated_at")
        staging = Path(env["HANDOFF_HOME"]) / "staging"
        assert not staging.exists() or not [p for p in staging.rglob("*") if p.is_file()], list(staging.rglob("*"))


def test_release_without_an_audit_bucket_says_so_once(home: dict[str, Any], sqlite_source_url: str) -> None:
    from support import HEARING_ID

    env, cwd = home["env"], home["cwd"]
    res = run_cli("transfer", "--db", sqlite_source_url, "--key", str(KEYS.key("operator")), "--json", env=env, cwd=cwd)
    assert res.returncode == 0, res.stderr
    batch = json.loads(res.stdout)["batch_id"]
    for args in (("court", "outcome", HEARING_ID, "--result", "upheld", "--key", str(KEYS.key("counsel"))),
                 ("approve", batch, "--key", str(KEYS.key("ada")))):  # fmt: skip
        assert run_cli(*args, env=env, cwd=cwd).returncode == 0
    res = run_cli("release", env=env, cwd=cwd)
    line = _one_line(res, 2, "set HANDOFF_AUDIT_BUCKET")
    assert (res.stdout + res.stderr).count("HANDOFF_AUDIT_BUCKET") == 1, res.stdout + res.stderr
    assert line.startswith("error: ")


def test_expiry_limits_are_in_the_help(tmp_path: Path) -> None:
    res = run_cli("approve", "--help", env=cli_env(tmp_path / "h"), cwd=tmp_path)
    assert "5 minutes" in res.stdout and "30 days" in res.stdout


def test_verify_on_a_manifest_of_the_wrong_shape_fails_in_one_line_per_problem(s3: Any, tmp_path: Path) -> None:
    """A manifest whose fields hold other types (written by something else): `verify` exits 1 naming it."""
    from handoff.release import manifest as manifests

    prefix = "cand.v1/20260107T180000Z-1a2b3c/"
    doc = {"files": "part-0.parquet", "order": ["not", "a", "mapping"], "approvals": {"x": 1}, "rows": "many",
           "destination": 7, "delivered_at": ["2026"], "proof": "trust me"}  # fmt: skip
    s3.client.put_object(Bucket=s3.name, Key=prefix + "manifest.json", Body=manifests.dumps(doc))
    res = run_cli("verify", f"s3://{s3.name}/{prefix}", "--trust", str(POLICY_DIR / "trust" / "allowed_signers"),
                  env=cli_env(tmp_path / "h"), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    assert "FAIL" in res.stdout and prefix + "manifest.json" in res.stdout
