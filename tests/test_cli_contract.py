"""The `handoff` command line, run as a user runs it: a real subprocess, real S3 over HTTP, JSON out."""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import typer
from support import APPROVERS, COUNSEL, HEARING_ID, INITIATOR, KEYS, POLICY_DIR, buckets, cli_env, run_cli

from handoff.cli import app


@pytest.fixture(scope="module")
def world(s3_server, sqlite_source_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A home, a bucket and one transferred batch, shared by the tests of this module."""
    home = tmp_path_factory.mktemp("cli-home")
    bucket, key, audit = buckets(s3_server, "cli")
    env = cli_env(home, HANDOFF_KMS_KEY_ID=key, HANDOFF_AUDIT_BUCKET=audit)
    cwd = tmp_path_factory.mktemp("cli-cwd")
    args = ["transfer", "--db", sqlite_source_url, "--bucket", bucket, "--key", str(KEYS.key("operator")), "--json"]
    res = run_cli(*args, env=env, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return {"home": home, "bucket": bucket, "env": env, "cwd": cwd, "transfer": json.loads(res.stdout)}


def cli(world: dict[str, Any], *args: str) -> Any:
    return run_cli(*args, env=world["env"], cwd=world["cwd"])


def ok_json(world: dict[str, Any], *args: str) -> Any:
    res = cli(world, *args)
    assert res.returncode == 0, f"{args}: {res.stderr}"
    return json.loads(res.stdout)


def test_transfer_json_reports_a_held_batch_with_reasons(world: dict[str, Any]) -> None:
    doc = world["transfer"]
    assert doc["status"] == "held"
    assert "pending_hearing" in doc["reason"]
    gates = {g["gate"]: g for g in doc["gates"]}
    assert gates["pending_hearing"]["open"] is False and HEARING_ID in gates["pending_hearing"]["reason"]
    assert gates["effective_date"]["open"] is True
    assert doc["rows_staged"] > 0 and doc["rows_staged"] + doc["rows_quarantined"] == doc["rows_extracted"]
    assert doc["excluded"]["citizen_or_national"] > 0
    assert doc["objects"] == [] and doc["manifest_key"] is None


def test_unauthorised_approver_exits_2_with_an_error_and_records_nothing(world: dict[str, Any]) -> None:
    batch_id = world["transfer"]["batch_id"]
    res = cli(world, "approve", batch_id, "--key", str(KEYS.key("mallory")))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stdout == ""
    message = " ".join(res.stderr.split())
    assert message.startswith("error: key SHA256:") and "is not in the trust file" in message
    ledger = ok_json(world, "lineage", batch_id, "--json")["ledger"]
    assert not [e for e in ledger if e["kind"] == "approved"]
    assert [e["kind"] for e in ledger].count("approval-refused") >= 1


def test_the_environment_grants_no_authority(world: dict[str, Any]) -> None:
    res = run_cli("status", env={**world["env"], "HANDOFF_APPROVERS": "Bob Approver"}, cwd=world["cwd"])
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "HANDOFF_APPROVERS is no longer read" in res.stderr and "allowed_signers" in res.stderr
    res = cli(world, "approve", world["transfer"]["batch_id"], "--as", "Bob Approver")
    assert res.returncode == 2 and "No such option: --as" in res.stderr


def test_cli_walks_a_batch_from_hold_to_delivery(world: dict[str, Any]) -> None:
    batch_id = world["transfer"]["batch_id"]

    listing = ok_json(world, "status", "--json")
    assert [b["batch_id"] for b in listing] == [batch_id] and listing[0]["status"] == "held"
    assert ok_json(world, "status", batch_id[:12], "--json")["batch_id"] == batch_id

    hearings = ok_json(world, "court", "hearing", "list", "--json")
    assert [(h["id"], h["outcome"]) for h in hearings] == [(HEARING_ID, None)]
    recorded = ok_json(world, "court", "outcome", HEARING_ID, "--result", "upheld", "--key", str(KEYS.key("counsel")),
                       "--json")  # fmt: skip
    assert recorded["outcome"] == "upheld" and recorded["outcome_by"] == COUNSEL
    assert ok_json(world, "status", batch_id, "--json")["status"] == "awaiting-approval"

    # Signed elsewhere: print the statement, sign it with ssh-keygen, hand the signature back.
    res = cli(world, "approve", batch_id, "--note", "counts checked", "--statement")
    assert res.returncode == 0, res.stderr
    statement = world["cwd"] / "approve.json"
    statement.write_text(res.stdout)
    assert json.loads(res.stdout)["destination"]["bucket"] == world["bucket"]
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", "handoff-approve", "-f", str(KEYS.key("ada")), str(statement)],
                   check=True, capture_output=True)  # fmt: skip
    approved = ok_json(world, "approve", batch_id, "--signature", f"{statement}.sig", "--json")
    assert approved["status"] == "approved"

    res = cli(world, "hold", "set", "--reason", "TRO motion filed", "--as", "Ops On-call")
    assert res.returncode == 0, res.stderr
    [held] = ok_json(world, "release", "--json")
    assert held["status"] == "held" and "TRO motion filed" in held["reason"] and held["objects"] == []
    res = cli(world, "hold", "clear", "--reason", "I say so", "--key", str(KEYS.key("ada")))
    assert res.returncode == 2 and "does not hold the operator role" in res.stderr
    res = cli(world, "hold", "clear", "--reason", "TRO denied", "--key", str(KEYS.key("ops")))
    assert res.returncode == 0, res.stderr

    [delivered] = ok_json(world, "release", "--json")
    assert delivered["status"] == "delivered"
    assert delivered["manifest_key"].endswith(f"/{batch_id}/manifest.json")
    assert delivered["objects"][-1] == delivered["manifest_key"]
    assert ok_json(world, "release", "--json") == []

    res = cli(world, "verify", f"s3://{world['bucket']}/{delivered['manifest_key'].rsplit('/', 1)[0]}/", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["approvers"] == [APPROVERS[0]]

    walk = ok_json(world, "lineage", batch_id, "--json")
    assert walk["status"] == "delivered" and walk["bucket"] == world["bucket"]
    assert walk["approval"]["approver"] == APPROVERS[0]
    assert walk["policy"]["order_ref"] == world["transfer"]["order_ref"] and walk["policy"]["still_in_force"]
    assert len(walk["source"]["query_hash"]) == 64 and "enrollees" in walk["source"]["query"]
    assert walk["initiator"] == INITIATOR
    assert {o["key"] for o in walk["objects"]} == set(delivered["objects"])
    kinds = [e["kind"] for e in walk["ledger"]]
    assert kinds[0] == "staged" and kinds[-1] == "delivered"

    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    manifest = json.loads(s3.get_object(Bucket=world["bucket"], Key=delivered["manifest_key"])["Body"].read())
    assert manifest["content_hash"] == walk["content_hash"] and "source" not in manifest

    res = cli(world, "audit", "verify")
    assert res.returncode == 0 and "ledger intact" in res.stdout
    [disclosure] = ok_json(world, "audit", "disclosures", "--json")
    assert disclosure["batch_id"] == batch_id and disclosure["approver"] == APPROVERS[0]


def test_hold_without_reason_is_refused(world: dict[str, Any]) -> None:
    res = cli(world, "hold", "set", "--reason", "  ")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "--reason" in res.stderr


def _command_paths() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = [()]

    def walk(cmd: Any, prefix: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                paths.append((*prefix, name))
                walk(sub, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


COMMANDS = _command_paths()


def test_every_command_answers_help(tmp_path: Path) -> None:
    must_have = {
        ("transfer",), ("approve",), ("release",), ("status",), ("lineage",), ("policy", "whatif"),
        ("court", "hearing", "list"), ("court", "outcome"), ("hold", "set"), ("audit", "verify"),
    }  # fmt: skip
    assert must_have <= set(COMMANDS)
    env = cli_env(tmp_path / "h")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: (p, run_cli(*p, "--help", env=env, cwd=tmp_path)), COMMANDS))
    for path, res in results:
        assert res.returncode == 0, f"handoff {' '.join(path)} --help: {res.stderr}"
        assert "Usage: handoff" in res.stdout, path
        assert "Traceback" not in res.stderr


def test_a_command_built_alone_is_the_command_of_the_whole_command_line() -> None:
    """A process builds only the command its first word names (``cli.app_for``): each command's help,
    options and subcommands are what the whole command line gives, and the app's own options still
    come first; a line that does not start with a command gets every command."""
    from typer.testing import CliRunner

    from handoff.cli import app_for

    runner = CliRunner()
    for path in [p for p in COMMANDS if p]:
        alone = app_for(["handoff", path[0]])
        assert list(typer.main.get_command(alone).commands) == [path[0]], path  # type: ignore[attr-defined]
        got, want = (runner.invoke(a, [*path, "--help"], prog_name="handoff") for a in (alone, app))
        assert got.exit_code == want.exit_code == 0, (path, got.output)
        assert got.output == want.output, path
    built = typer.main.get_command(app_for(["handoff", "transfer"]))
    assert {p.name for p in built.params} >= {"home", "state_url", "policy_dir"}
    for line in (["handoff"], ["handoff", "--home", "x", "status"], ["handoff", "transfr"], ["handoff", "--help"]):
        assert app_for(line) is app, line


@pytest.mark.parametrize("case", ["bad-policy", "unauthorised-approver"])
def test_user_error_is_exactly_one_line(case: str, world: dict[str, Any], tmp_path: Path) -> None:
    if case == "bad-policy":
        policy_dir = tmp_path / "expectations"
        shutil.copytree(POLICY_DIR, policy_dir)
        order = policy_dir / "orders" / "2025-12-29.yaml"
        order.write_text(order.read_text().replace("permitted_fields:", "permited_fields:"))
        res = run_cli("--policy-dir", str(policy_dir), "policy", "show", env=cli_env(tmp_path / "h"), cwd=tmp_path)
    else:
        res = cli(world, "approve", world["transfer"]["batch_id"], "--key", str(KEYS.key("mallory")))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines


def test_quarantine_lists_diverted_rows_by_id_and_rule_never_values(world: dict[str, Any]) -> None:
    doc = world["transfer"]
    listed = ok_json(world, "quarantine", doc["batch_id"], "--json")
    assert len(listed["rows"]) == doc["rows_quarantined"] > 0
    assert sum(listed["by_rule"].values()) >= doc["rows_quarantined"]
    assert {r["rule"] for r in listed["rows"]} <= set(listed["by_rule"])
    assert all(set(r) == {"medicaid_id", "rule"} for r in listed["rows"])
    res = cli(world, "quarantine", doc["batch_id"], "--csv")
    assert res.returncode == 0 and res.stdout.splitlines()[0] == "medicaid_id,rule"
    assert len(res.stdout.splitlines()) == len(listed["rows"]) + 1


@pytest.fixture
def fresh_world(s3_server, sqlite_source_url: str, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A home of its own with one held batch, for attempts that would disturb the module's world."""
    bucket, key, audit = buckets(s3_server, "cli")
    policy_dir = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, policy_dir)
    env = cli_env(tmp_path / "home", HANDOFF_KMS_KEY_ID=key, HANDOFF_AUDIT_BUCKET=audit,
                  HANDOFF_POLICY_DIR=str(policy_dir))  # fmt: skip
    res = run_cli("transfer", "--db", sqlite_source_url, "--bucket", bucket, "--key", str(KEYS.key("dual")), "--json",
                  env=env, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return {"env": env, "cwd": tmp_path, "bucket": bucket, "policy_dir": policy_dir,
            "batch": json.loads(res.stdout)["batch_id"]}  # fmt: skip


def _narrowed_wider(policy_dir: Path) -> Path:
    text = (policy_dir / "orders" / "2025-12-29.yaml").read_text()
    path = policy_dir.parent / "wider.yaml"
    path.write_text(text.replace("version: 1", "version: 2", 1).replace("supersedes: null", "supersedes: "
                    "cand-3-25-cv-05536-2025-12-29@v1").replace("name_flag: false", "name_flag: true"))  # fmt: skip
    return path


def test_each_insider_attempt_is_refused_with_one_line_and_exit_2(fresh_world: dict[str, Any]) -> None:
    w = fresh_world
    key = {label: str(KEYS.key(label)) for label in ("ada", "dual", "mallory", "operator")}
    attempts = {
        "outcome by a typed name": ["court", "outcome", HEARING_ID, "--result", "upheld", "--as", "Totally Counsel"],
        "outcome by an approver's key": ["court", "outcome", HEARING_ID, "--result", "upheld", "--key", key["ada"]],
        "outcome with no signature": ["court", "outcome", HEARING_ID, "--result", "upheld"],
        "a wider order as narrowed": ["court", "outcome", HEARING_ID, "--result", "narrowed", "--order-file",
                                      str(_narrowed_wider(w["policy_dir"])), "--key", str(KEYS.key("counsel"))],
        "approval by the initiator's key": ["approve", w["batch"], "--key", key["dual"]],
        "approval by an unenrolled key": ["approve", w["batch"], "--key", key["mallory"]],
        "approval by a typed name": ["approve", w["batch"], "--as", "Bob Approver"],
        "clearing a stop with an approver's key": ["hold", "clear", "--reason", "x", "--key", key["ada"]],
        "a transfer signed by an approver": ["transfer", "--db", "sqlite:///nowhere.db", "--bucket", w["bucket"],
                                             "--key", key["ada"]],
    }  # fmt: skip
    run_cli("hold", "set", "--reason", "drill", env=w["env"], cwd=w["cwd"])
    for what, args in attempts.items():
        res = run_cli(*args, env=w["env"], cwd=w["cwd"])
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2, f"{what}: exit {res.returncode}\n{res.stderr}"
        assert len(lines) == 1 and "Traceback" not in res.stderr, f"{what}: {res.stderr}"
    hearings = json.loads(run_cli("court", "hearing", "list", "--json", env=w["env"], cwd=w["cwd"]).stdout)
    assert [h["outcome"] for h in hearings] == [None]
    status = json.loads(run_cli("status", w["batch"], "--json", env=w["env"], cwd=w["cwd"]).stdout)
    assert status["status"] == "held"
