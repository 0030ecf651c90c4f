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

from handoff.errors import HandoffError
from handoff.release import manifest as manifests
from handoff.release.verify import Seen, check, parse_url, read_prefix, verify_prefix
from handoff.signing.trust import load_trust, trust_path


@pytest.fixture(scope="module")
def delivery(s3_server: Any, crowded_source_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from handoff.transfer import Lifecycle

    bucket, key, audit = buckets(s3_server, "rc")
    home = tmp_path_factory.mktemp("rc-home")
    life = Lifecycle(build_settings(home, bucket=bucket, kms_key_id=key, audit_bucket=audit))
    batch = transfer(life, crowded_source_url, bucket, NOW).batch  # several files
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
    assert len(batch.files) >= 2
    return {"url": url, "bucket": bucket, "prefix": prefix, "body": body, "objects": objects, "server": s3_server,
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


def test_the_report_says_where_it_looked_and_what_it_found(delivery: dict[str, Any]) -> None:
    m, doc, part = delivery["manifest"], _doc(delivery), _part(delivery)
    extra = f"{delivery['prefix']}notes.txt"
    objects = {**delivery["objects"], extra: dataclasses.replace(delivery["objects"][part], key=extra)}
    report = check(delivery["url"], delivery["body"], objects, delivery["trust"])
    assert report.as_dict() == {
        "url": delivery["url"], "ok": False, "files": len(doc["files"]), "rows": doc["rows"], "approvers": APPROVERS,
        "problems": [{"object": extra, "problem": "in the bucket but not in the manifest"}], "notes": [],
    }  # fmt: skip
    missing = check(delivery["url"], None, {}, delivery["trust"])
    assert missing.url == delivery["url"]
    assert [(p.object, p.what) for p in missing.problems] == [
        (m, "missing: the delivery is not complete (or this is not a batch prefix)")]  # fmt: skip


def test_a_field_of_another_type_is_a_failure_named_never_a_crash(delivery: dict[str, Any]) -> None:
    m, doc = delivery["manifest"], _doc(delivery)
    assert (m, "not a handoff manifest: a field holds a value of another type (AttributeError); it was edited or "
               "written by something else") in _problems(delivery, doc={**doc, "order": "v1"})  # fmt: skip


def test_every_file_is_checked_when_an_earlier_one_is_missing_or_changed(delivery: dict[str, Any]) -> None:
    parts = sorted(k for k in delivery["objects"] if k.endswith(".parquet"))
    first, last = parts[0], parts[-1]
    for change in ({"sha256": "0" * 64}, {"rows": None}, {"rows": 1}):
        objects = {**_with(delivery, first, **change), last: dataclasses.replace(delivery["objects"][last], size=1)}
        found = [o for o, _ in _problems(delivery, objects=objects)]
        assert first in found and last in found, (change, found)
    objects = {k: v for k, v in _with(delivery, last, size=1).items() if k != first}
    assert {o for o, _ in _problems(delivery, objects=objects)} >= {first, last}


def test_the_counts_add_every_file(delivery: dict[str, Any]) -> None:
    report = check(delivery["url"], delivery["body"], delivery["objects"], delivery["trust"])
    parts = [s for k, s in delivery["objects"].items() if k.endswith(".parquet")]
    assert report.files == len(parts) >= 2 and report.rows == sum(s.rows or 0 for s in parts)


def test_the_time_s3_stored_the_manifest_bounds_the_delivery_time(delivery: dict[str, Any]) -> None:
    m, doc = delivery["manifest"], _doc(delivery)
    stored = dt.datetime(2026, 1, 7, 19, 0, tzinfo=dt.UTC)  # long before today: "now" would let anything pass
    objects = _with(delivery, m, modified=stored)
    late = stored + dt.timedelta(minutes=6)
    assert (m, f"says it was delivered at {late.isoformat()}, after S3 stored it") in _problems(
        delivery, doc={**doc, "delivered_at": late.isoformat()}, objects=objects
    )
    edge = stored + dt.timedelta(minutes=5)  # clocks differ: five minutes is allowed
    assert not [w for _, w in _problems(delivery, doc={**doc, "delivered_at": edge.isoformat()}, objects=objects)
                if "delivered at" in w]  # fmt: skip
    # Without the manifest's own object (read elsewhere), the delivery time is bounded by now, never a crash.
    without = {k: v for k, v in delivery["objects"].items() if k != m}
    assert not [w for _, w in _problems(delivery, objects=without) if "another type" in w or "delivered at" in w]


def test_approvals_are_checked_at_the_delivery_time_not_today(delivery: dict[str, Any], tmp_path: Path) -> None:
    """An approver's key that lapsed after the delivery (valid-before) still made a valid approval then."""
    lines = []
    for line in delivery["trust_file"].read_text().splitlines(keepends=True):
        if line.startswith(f'"{APPROVERS[0]}"'):
            line = line.replace(" namespaces=", ' valid-before="20260301",namespaces=', 1)
        lines.append(line)
    lapsed_since = tmp_path / "allowed_signers"
    lapsed_since.write_text("".join(lines))
    assert 'valid-before="20260301"' in lapsed_since.read_text()
    report = check(delivery["url"], delivery["body"], delivery["objects"], load_trust(lapsed_since))
    assert report.ok, report.problems
    assert report.approvers == APPROVERS


def test_a_broken_chain_link_is_named_against_the_manifest(delivery: dict[str, Any], tmp_path: Path) -> None:
    without_counsel = tmp_path / "allowed_signers"
    without_counsel.write_text("".join(x for x in delivery["trust_file"].read_text().splitlines(keepends=True)
                                       if "counsel" not in x))  # fmt: skip
    problems = _problems(delivery, trust=load_trust(without_counsel))
    assert problems and all(o == delivery["manifest"] for o, _ in problems), problems
    assert any("not signed by counsel under this trust file" in w for _, w in problems), problems


def test_the_kms_key_is_compared_by_its_id_whichever_form_each_side_uses(delivery: dict[str, Any]) -> None:
    part, doc = _part(delivery), _doc(delivery)
    key_id = str(delivery["objects"][part].kms_key_id).rsplit("/", 1)[-1]
    arn = f"arn:aws:kms:us-east-1:123456789012:key/{key_id}"
    named = {**doc, "destination": {**doc["destination"], "kms_key_id": arn}}
    objects = _with(delivery, part, kms_key_id=key_id)
    assert not [w for _, w in _problems(delivery, doc=named, objects=objects) if "KMS" in w]
    unencrypted = _with(delivery, part, kms_key_id=None)
    assert (part, "encrypted with another KMS key than the approved one") in _problems(delivery, objects=unencrypted)
    no_key = {**doc, "destination": {k: v for k, v in doc["destination"].items() if k != "kms_key_id"}}
    assert not [w for _, w in _problems(delivery, doc=no_key) if "KMS" in w]


@pytest.mark.parametrize(
    ("url", "expect"),
    [("s3://bucket", ("bucket", "")), ("s3://bucket/", ("bucket", "")), ("s3://bucket/a/b", ("bucket", "a/b/")),
     ("s3://bucket//Xorder.v1/BatchX/", ("bucket", "Xorder.v1/BatchX/"))],
)  # fmt: skip
def test_an_s3_address_is_read_as_bucket_and_prefix(url: str, expect: tuple[str, str]) -> None:
    assert parse_url(url) == expect


@pytest.mark.parametrize("url", ["https://bucket/prefix/", "s3:///prefix/", "bucket/prefix"])
def test_anything_but_an_s3_address_is_refused_by_name(url: str) -> None:
    with pytest.raises(HandoffError) as caught:
        parse_url(url)
    assert str(caught.value) == f"{url!r} is not an s3://BUCKET/PREFIX/ address"


@pytest.fixture(scope="module")
def shelf(delivery: dict[str, Any]) -> dict[str, Any]:
    """A versioned bucket holding the delivery's manifest and one part, an object overwritten, one hidden and
    put back, a large one, and a sibling prefix that must not be read."""
    import boto3

    from handoff_tools import emulator

    bucket = f"handoff-shelf-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(delivery["server"], bucket)
    s3 = boto3.client("s3", region_name="us-east-1")
    part = _part(delivery)
    real = boto3.client("s3", region_name="us-east-1").get_object(Bucket=delivery["bucket"], Key=part)["Body"].read()
    large = bytes(range(256)) * (5 * 4096 + 7)  # 5 MiB and change: read in several blocks
    puts = [("b/part-00000.parquet", real), ("b/manifest.json", delivery["body"]), ("b/over", b"one"),
            ("b/over", b"two"), ("b/back", b"first"), ("b/large.bin", large), ("b-sibling/x", b"elsewhere")]  # fmt: skip
    for key, body in puts:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.delete_object(Bucket=bucket, Key="b/back")
    s3.put_object(Bucket=bucket, Key="b/back", Body=b"again")
    return {"bucket": bucket, "large": large, "real": real}


def test_reading_a_prefix_counts_versions_and_delete_markers_and_hashes_every_byte(shelf: dict[str, Any]) -> None:
    import hashlib

    body, objects, notes = read_prefix(f"s3://{shelf['bucket']}/b/")
    assert notes == [] and body is not None and body.startswith(b"{")
    assert sorted(objects) == ["b/back", "b/large.bin", "b/manifest.json", "b/over", "b/part-00000.parquet"]
    assert {k: s.versions for k, s in objects.items()} == {"b/back": 3, "b/large.bin": 1, "b/manifest.json": 1,
                                                           "b/over": 2, "b/part-00000.parquet": 1}  # fmt: skip
    assert all(s.key == k for k, s in objects.items())
    large = objects["b/large.bin"]
    assert (large.size, large.sha256) == (len(shelf["large"]), hashlib.sha256(shelf["large"]).hexdigest())
    assert large.rows is None and large.columns is None
    part = objects["b/part-00000.parquet"]
    assert part.rows and part.columns and part.sha256 == hashlib.sha256(shelf["real"]).hexdigest()


def test_a_prefix_with_no_manifest_or_nothing_at_all_reads_as_such(shelf: dict[str, Any]) -> None:
    assert read_prefix(f"s3://{shelf['bucket']}/nothing-here/") == (None, {}, [])
    body, objects, _ = read_prefix(f"s3://{shelf['bucket']}/b-sibling/")
    assert body is None and list(objects) == ["b-sibling/x"]


def test_a_bucket_that_does_not_exist_is_named_with_what_s3_answered(shelf: dict[str, Any]) -> None:
    with pytest.raises(HandoffError) as caught:
        read_prefix("s3://handoff-no-such-bucket-here/b/")
    assert str(caught.value) == ("cannot read s3://handoff-no-such-bucket-here/b/: S3 answered NoSuchBucket; check the "
                                 "address and your read access")  # fmt: skip


def test_an_unreachable_endpoint_says_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(HandoffError) as caught:
        read_prefix("s3://bucket/b/")
    said = str(caught.value)
    assert said.startswith("cannot read s3://bucket/b/: ") and said.endswith(
        "; check AWS_ENDPOINT_URL_S3, the network and your AWS credentials (read access is enough)"
    )


def test_versions_that_cannot_be_listed_are_a_note_and_every_object_counts_once(
    delivery: dict[str, Any], shelf: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A reader allowed GetObject and ListBucket but not ListBucketVersions still gets a verdict."""
    import boto3

    made = boto3.client

    def without_versions(*args: Any, **kwargs: Any) -> Any:
        client = made(*args, **kwargs)

        def refuse(**_: Any) -> Any:
            from botocore.awsrequest import AWSResponse

            denied = {"Error": {"Code": "AccessDenied", "Message": "ListBucketVersions not allowed"},
                      "ResponseMetadata": {"HTTPStatusCode": 403}}  # fmt: skip
            return AWSResponse("", 403, {}, None), denied

        client.meta.events.register("before-call.s3.ListObjectVersions", refuse)
        return client

    monkeypatch.setattr(boto3, "client", without_versions)
    note = "object versions could not be listed: an overwrite of the manifest cannot be ruled out"
    _, objects, notes = read_prefix(f"s3://{shelf['bucket']}/b/")
    assert notes == [note] and {s.versions for s in objects.values()} == {1}
    reviewed = tmp_path / "allowed_signers"  # the published file, one comment later: a note of its own
    reviewed.write_text(delivery["trust_file"].read_text() + "# reviewed again\n")
    report = verify_prefix(delivery["url"], load_trust(reviewed))
    assert report.ok and report.notes[0] == note and len(report.notes) == 2, report.notes
    assert report.notes[1].startswith("the trust file given differs")


def test_a_delivery_at_the_root_of_a_bucket_is_checked_like_any_other(delivery: dict[str, Any]) -> None:
    """Keys without a folder: the checks still run (the destination named in the manifest then differs)."""
    prefix, doc = delivery["prefix"], _doc(delivery)
    objects = {k.removeprefix(prefix): dataclasses.replace(s, key=k.removeprefix(prefix))
               for k, s in delivery["objects"].items()}  # fmt: skip
    moved = {**doc, "files": [{**f, "key": f["key"].removeprefix(prefix)} for f in doc["files"]]}
    report = check(f"s3://{delivery['bucket']}", manifests.dumps(moved), objects, delivery["trust"])
    assert report.files == len(doc["files"]) and report.rows == doc["rows"]
    assert not [p for p in report.problems if "another type" in p.what or "content_hash" in p.what], report.problems
