"""Each check the recipient's `verify` makes, one at a time, on one real delivery.

The batch is delivered once per module (real S3 endpoint, real signatures); its prefix is read once,
then each test changes one thing in what was read (a manifest field, an object's hash, size, rows,
columns, versions or KMS key, the time S3 stored the manifest) and asserts the exact problem
`verify` names, against the object it names. Fast enough to run under mutation testing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import APPROVERS, NOW, approve, buckets, build_settings, record_upheld, transfer

from handoff.release import manifest as manifests
from handoff.release.verify import Seen, check, read_prefix
from handoff.signing.trust import load_trust, trust_path


@pytest.fixture(scope="module")
def delivery(s3_server: Any, sqlite_source_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from handoff.transfer import Lifecycle

    bucket, key, audit = buckets(s3_server, "rc")
    home = tmp_path_factory.mktemp("rc-home")
    life = Lifecycle(build_settings(home, bucket=bucket, kms_key_id=key, audit_bucket=audit))
    batch = transfer(life, sqlite_source_url, bucket, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada")
    approve(life, batch.id, "bo")
    [done] = life.release(NOW + dt.timedelta(hours=1))
    assert done.batch.status == "delivered"
    prefix = done.manifest_key.rsplit("/", 1)[0] + "/"
    url = f"s3://{bucket}/{prefix}"
    body, objects, _ = read_prefix(url)
    published = home / "published_allowed_signers"
    shutil.copyfile(trust_path(life.settings.policy_dir), published)
    life.engine.dispose()
    assert body is not None
    return {"url": url, "bucket": bucket, "prefix": prefix, "body": body, "objects": objects,
            "trust": load_trust(published), "trust_file": published, "manifest": prefix + manifests.NAME}  # fmt: skip


def _doc(d: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(d["body"]))


def _problems(d: dict[str, Any], doc: Any = None, objects: dict[str, Seen] | None = None, body: bytes | None = None,
              url: str | None = None, trust: Any = None) -> list[tuple[str, str]]:  # fmt: skip
    raw = body if body is not None else (manifests.dumps(doc) if doc is not None else d["body"])
    report = check(url or d["url"], raw, objects if objects is not None else d["objects"], trust or d["trust"])
    return [(p.object, p.what) for p in report.problems]


def _part(d: dict[str, Any]) -> str:
    return sorted(k for k in d["objects"] if k.endswith(".parquet"))[0]


def _with(d: dict[str, Any], key: str, **change: Any) -> dict[str, Seen]:
    return {**d["objects"], key: dataclasses.replace(d["objects"][key], **change)}


def test_the_delivery_as_it_was_verifies(delivery: dict[str, Any]) -> None:
    report = check(delivery["url"], delivery["body"], delivery["objects"], delivery["trust"])
    doc = _doc(delivery)
    assert report.ok, report.problems
    assert report.approvers == APPROVERS and report.files == len(doc["files"]) and report.rows == doc["rows"] > 0
    assert report.notes == []
    assert report.as_dict()["ok"] is True and report.as_dict()["approvers"] == APPROVERS


def test_a_missing_unreadable_or_reformatted_manifest_is_named(delivery: dict[str, Any]) -> None:
    m = delivery["manifest"]
    assert check(delivery["url"], None, {}, delivery["trust"]).problems[0].what.startswith("missing: the delivery")
    assert _problems(delivery, body=b"\xff{") == [(m, "not valid JSON")]
    assert _problems(delivery, body=b"[1, 2]") == [(m, "not in handoff's serialisation: it was edited after delivery")]
    reformatted = json.dumps(_doc(delivery)).encode()
    assert (m, "not in handoff's serialisation: it was edited after delivery") in _problems(delivery, body=reformatted)


def test_objects_added_missing_or_changed_are_named_by_key(delivery: dict[str, Any]) -> None:
    part = _part(delivery)
    extra = f"{delivery['prefix']}part-99999.parquet"
    objects = {**delivery["objects"], extra: dataclasses.replace(delivery["objects"][part], key=extra)}
    assert (extra, "in the bucket but not in the manifest") in _problems(delivery, objects=objects)
    missing = {k: v for k, v in delivery["objects"].items() if k != part}
    assert (part, "listed in the manifest but missing from the bucket") in _problems(delivery, objects=missing)
    changed = "SHA-256 or size differs from the manifest: the object was changed"
    assert (part, changed) in _problems(delivery, objects=_with(delivery, part, sha256="0" * 64))
    assert (part, changed) in _problems(delivery, objects=_with(delivery, part, size=1))
    assert (part, "not a readable Parquet file") in _problems(delivery, objects=_with(delivery, part, rows=None))
    differ = "rows or columns differ from the manifest"
    seen = delivery["objects"][part]
    assert (part, differ) in _problems(delivery, objects=_with(delivery, part, rows=(seen.rows or 0) + 1))
    assert (part, differ) in _problems(delivery, objects=_with(delivery, part, columns=[*(seen.columns or []), "ssn"]))


def test_the_manifests_totals_must_follow_from_the_files(delivery: dict[str, Any]) -> None:
    m, doc = delivery["manifest"], _doc(delivery)
    problems = _problems(delivery, doc={**doc, "content_hash": "0" * 64})
    assert (m, "content_hash does not follow from the files") in problems
    rows = doc["rows"]
    assert (m, f"says {rows + 1} rows; the files hold {rows}") in _problems(delivery, doc={**doc, "rows": rows + 1})


def test_a_manifest_found_elsewhere_than_it_names_is_named(delivery: dict[str, Any]) -> None:
    moved = f"s3://other-bucket/{delivery['prefix']}"
    problems = _problems(delivery, url=moved)
    assert (delivery["manifest"], f"names destination s3://{delivery['bucket']}/{delivery['prefix']}, but it lies "
                                  f"at s3://other-bucket/{delivery['prefix']}") in problems  # fmt: skip


def test_each_approval_is_checked_and_each_person_counted_once(delivery: dict[str, Any]) -> None:
    m, doc = delivery["manifest"], _doc(delivery)
    first, second = doc["approvals"]
    renamed = {**second, "principal": "Someone Else"}
    assert (m, f"approval 2 names 'Someone Else'; the key is '{APPROVERS[1]}''s") in _problems(
        delivery, doc={**doc, "approvals": [first, renamed]}
    )
    twice = check(delivery["url"], manifests.dumps({**doc, "approvals": [first, first]}), delivery["objects"],
                  delivery["trust"])  # fmt: skip
    assert twice.approvers == [APPROVERS[0]]
    assert (m, "no valid approval: nobody with the approver role signed this delivery") in _problems(
        delivery, doc={**doc, "approvals": []}
    )
    broken = {**first, "signature": first["signature"].replace("A", "B", 3)}
    assert any(o == m and w.startswith("approval 1 does not verify: ")
               for o, w in _problems(delivery, doc={**doc, "approvals": [broken, second]}))  # fmt: skip


def test_an_approval_about_other_content_or_lapsed_before_delivery_is_named(delivery: dict[str, Any]) -> None:
    m, doc = delivery["manifest"], _doc(delivery)
    problems = _problems(delivery, doc={**doc, "batch_id": "20260107T180000Z-000000"})
    assert (m, f"approval 1 by {APPROVERS[0]} is about another batch_id") in problems
    expires = json.loads(doc["approvals"][0]["statement"])["expires_at"]
    later = dt.datetime.fromisoformat(expires.replace("Z", "+00:00")) + dt.timedelta(hours=1)
    objects = _with(delivery, m, modified=later)
    lapsed = _problems(delivery, doc={**doc, "delivered_at": later.isoformat()}, objects=objects)
    assert (m, f"approval 1 by {APPROVERS[0]} lapsed before the delivery") in lapsed


def test_the_delivery_time_is_a_time_and_never_after_s3_stored_the_manifest(delivery: dict[str, Any]) -> None:
    m, doc = delivery["manifest"], _doc(delivery)
    assert (m, "delivered_at is not a time") in _problems(delivery, doc={**doc, "delivered_at": "soon"})
    stored = delivery["objects"][m].modified
    late = stored + dt.timedelta(minutes=6)
    assert (m, f"says it was delivered at {late.isoformat()}, after S3 stored it") in _problems(
        delivery, doc={**doc, "delivered_at": late.isoformat()}
    )
    naive = stored.replace(tzinfo=None)
    assert (m, f"says it was delivered at {naive.isoformat()}, after S3 stored it") in _problems(
        delivery, doc={**doc, "delivered_at": naive.isoformat()}
    )
    within = stored + dt.timedelta(minutes=4)
    assert not [p for p in _problems(delivery, doc={**doc, "delivered_at": within.isoformat()})
                if "delivered at" in p[1]]  # fmt: skip


def test_an_overwritten_object_or_another_kms_key_is_named(delivery: dict[str, Any]) -> None:
    part = _part(delivery)
    assert (part, "2 versions: it was overwritten after delivery") in _problems(
        delivery, objects=_with(delivery, part, versions=2)
    )
    other = "arn:aws:kms:us-east-1:123456789012:key/" + str(uuid.uuid4())
    assert (part, "encrypted with another KMS key than the approved one") in _problems(
        delivery, objects=_with(delivery, part, kms_key_id=other)
    )


def test_another_trust_file_is_a_note_and_its_signatures_decide(delivery: dict[str, Any], tmp_path: Path) -> None:
    text = delivery["trust_file"].read_text()
    other = tmp_path / "allowed_signers"
    other.write_text(text + "\n# reviewed again\n")
    report = check(delivery["url"], delivery["body"], delivery["objects"], load_trust(other))
    assert report.ok and len(report.notes) == 1 and report.notes[0].startswith("the trust file given differs")
    without = tmp_path / "without_ada"
    without.write_text("".join(x for x in text.splitlines(keepends=True) if APPROVERS[0] not in x))
    report = check(delivery["url"], delivery["body"], delivery["objects"], load_trust(without))
    assert not report.ok and report.approvers == [APPROVERS[1]]
