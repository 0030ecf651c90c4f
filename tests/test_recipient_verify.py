"""The recipient verifies a delivered batch with read access to the bucket and the published trust file.

`handoff verify` runs as a subprocess with no state database (a fresh home, no HANDOFF_STATE_URL)
and only the trust file: it passes on a delivered prefix and names the object after one byte of a
file or one character of the manifest changed in the bucket.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import APPROVERS, NOW, approve, cli_env, record_upheld, run_cli, transfer

from handoff.release.verify import verify_prefix
from handoff.signing.trust import load_trust, trust_path


@pytest.fixture
def delivered(life, sqlite_source_url: str, s3, tmp_path: Path) -> dict[str, Any]:
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada")
    [done] = life.release(NOW + dt.timedelta(hours=1))
    assert done.batch.status == "delivered"
    prefix = done.manifest_key.rsplit("/", 1)[0] + "/"
    published = tmp_path / "published_allowed_signers"
    shutil.copyfile(trust_path(life.settings.policy_dir), published)
    return {"url": f"s3://{s3.name}/{prefix}", "prefix": prefix, "manifest": done.manifest_key,
            "parts": [o.key for o in done.objects[:-1]], "trust": published}  # fmt: skip


def _verify_cli(d: dict[str, Any], tmp_path: Path) -> Any:
    env = cli_env(tmp_path / "recipient-home")  # no state database of the sender's
    res = run_cli("verify", d["url"], "--trust", str(d["trust"]), "--json", env=env, cwd=tmp_path)
    assert "Traceback" not in res.stderr
    return res


def test_verify_passes_on_a_delivered_prefix(delivered: dict[str, Any], tmp_path: Path) -> None:
    res = _verify_cli(delivered, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] and report["approvers"] == [APPROVERS[0]] and report["files"] == len(delivered["parts"])
    assert not (tmp_path / "recipient-home" / "state.db").exists()


def test_one_changed_byte_of_one_object_is_named(delivered: dict[str, Any], s3, tmp_path: Path) -> None:
    key = delivered["parts"][0]
    body = bytearray(s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.client.put_object(Bucket=s3.name, Key=key, Body=bytes(body))
    res = _verify_cli(delivered, tmp_path)
    assert res.returncode == 1
    problems = [p["problem"] for p in json.loads(res.stdout)["problems"] if p["object"] == key]
    assert any("SHA-256 or size differs" in p for p in problems), problems
    assert any("2 versions: it was overwritten" in p for p in problems), problems


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        pytest.param("rows", lambda d: {**d, "rows": d["rows"] + 1}, id="bound-field"),
        pytest.param("delivered_at", lambda d: {**d, "delivered_at": d["delivered_at"].replace("2026", "2027", 1)},
                     id="unbound-field-in-a-versioned-bucket"),
    ],
)  # fmt: skip
def test_one_changed_character_of_the_manifest_is_named(delivered: dict[str, Any], s3, tmp_path: Path, field: str,
                                                        edit: Any) -> None:  # fmt: skip
    from handoff.release.manifest import dumps

    key = delivered["manifest"]
    doc = json.loads(s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read())
    s3.client.put_object(Bucket=s3.name, Key=key, Body=dumps(edit(doc)))
    res = _verify_cli(delivered, tmp_path)
    assert res.returncode == 1
    assert key in {p["object"] for p in json.loads(res.stdout)["problems"]}


def test_a_reformatted_manifest_or_an_extra_object_is_named(delivered: dict[str, Any], s3, life) -> None:
    trust = load_trust(delivered["trust"])
    key = delivered["manifest"]
    doc = json.loads(s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read())
    s3.client.put_object(Bucket=s3.name, Key=key, Body=json.dumps(doc).encode())
    s3.client.put_object(Bucket=s3.name, Key=delivered["prefix"] + "part-99999.parquet", Body=b"extra")
    problems = [(p.object, p.what) for p in verify_prefix(delivered["url"], trust).problems]
    assert (key, "not in handoff's serialisation: it was edited after delivery") in problems
    assert (delivered["prefix"] + "part-99999.parquet", "in the bucket but not in the manifest") in problems


def test_an_approval_by_a_key_the_recipient_does_not_trust_fails(delivered: dict[str, Any], tmp_path: Path) -> None:
    text = delivered["trust"].read_text()
    delivered["trust"].write_text("".join(x for x in text.splitlines(keepends=True) if APPROVERS[0] not in x))
    res = _verify_cli(delivered, tmp_path)
    assert res.returncode == 1
    problems = json.loads(res.stdout)["problems"]
    assert any("not in the trust file" in p["problem"] for p in problems)
    assert any("no valid approval" in p["problem"] for p in problems)


def test_the_demo_ends_verified_then_refused_after_a_counsel_key_swap(tmp_path: Path) -> None:
    """The README's first command: the honest delivery verifies against the published trust file; the
    insider's, after counsel's key was swapped on the sender's host, is refused with the link named."""
    env = cli_env(tmp_path / "home")
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(k, None)  # the demo starts its own endpoint
    res = run_cli("demo", "--rows", "600", env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    text = " ".join(res.stdout.split())
    first, _, second = text.partition("An insider swaps counsel's key")
    assert "verified: 1 file(s)" in first and "NOT verified" not in first
    assert (
        "NOT verified" in second and "order: 2025-12-29.yaml is not signed by counsel under this trust file" in second
    )


def test_verify_names_another_kms_key_and_an_approval_that_lapsed_before_delivery(delivered: dict[str, Any]) -> None:
    import dataclasses

    from handoff.release.manifest import dumps
    from handoff.release.verify import check, read_prefix
    from handoff.signing import statement as st

    trust = load_trust(delivered["trust"])
    body, objects, _ = read_prefix(delivered["url"])
    assert check(delivered["url"], body, objects, trust).ok
    part = delivered["parts"][0]
    other = {**objects, part: dataclasses.replace(objects[part], kms_key_id="arn:aws:kms:us-east-1:1:key/other")}
    problems = [str(p) for p in check(delivered["url"], body, other, trust).problems]
    assert any(p.startswith(part) and "another KMS key" in p for p in problems), problems

    doc = json.loads(body or b"{}")
    expires = st.parse_stamp(json.loads(doc["approvals"][0]["statement"])["expires_at"])
    late = expires + dt.timedelta(seconds=1)
    doc["delivered_at"] = late.isoformat()
    manifest = delivered["manifest"]
    moved = {**objects, manifest: dataclasses.replace(objects[manifest], modified=late)}
    problems = [str(p) for p in check(delivered["url"], dumps(doc), moved, trust).problems]
    assert any("lapsed before the delivery" in p for p in problems), problems
