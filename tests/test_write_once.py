"""The audit bucket as evidence, read back exactly: anchors per ledger (hidden ones flagged, malformed
keys ignored, old unnamespaced ones on request), every ledger sharing the bucket, stop markers that
stop even when hidden or unreadable, clearings that count only when readable and visible.

Each test writes to a fresh Object Lock bucket on the real local S3 endpoint; no delivery is made,
so these run under mutation testing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

import boto3
import pytest

from handoff.errors import ConfigError, StateError
from handoff.signing.statement import Signed
from handoff.state.ledger import Head
from handoff.storage.write_once import ANCHORS, STOPS, Anchor, AuditStore, list_versions, require, store_for

NOW = dt.datetime(2026, 1, 7, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=-8)))  # a court's local time
H1, H2 = "a" * 64, "b" * 64


@pytest.fixture
def store(s3_server: Any) -> AuditStore:
    from handoff_tools import emulator

    bucket = f"handoff-audit-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(s3_server, bucket, object_lock=True)
    made = store_for(bucket, 1, "us-east-1")
    assert made is not None
    return made


def _s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def _hide(store: AuditStore, key: str) -> None:
    _s3().delete_object(Bucket=store.bucket, Key=key)  # a plain DELETE: a delete marker, the version stays


def _plant(store: AuditStore, key: str, body: bytes) -> None:
    _s3().put_object(Bucket=store.bucket, Key=key, Body=body)


def test_an_anchor_is_written_once_and_read_back_exactly(store: AuditStore) -> None:
    store.anchor("ledger-a", Head(3, H1), NOW)
    store.anchor("ledger-a", Head(3, H1), NOW + dt.timedelta(hours=1))  # the same head again: nothing new
    store.anchor("ledger-a", Head(0, "0" * 64), NOW)  # an empty ledger has nothing to anchor
    key = f"{ANCHORS}ledger-a/000000000003-{H1}.json"
    assert store.anchors("ledger-a") == [Anchor(3, H1, "2026-01-07T18:00:00+00:00", key, False)]
    body = json.loads(_s3().get_object(Bucket=store.bucket, Key=key)["Body"].read())
    assert body == {"ledger": "ledger-a", "seq": 3, "hash": H1, "at": "2026-01-07T18:00:00+00:00"}
    head = _s3().head_object(Bucket=store.bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ServerSideEncryption"] == "aws:kms"
    until = head["ObjectLockRetainUntilDate"]
    assert dt.timedelta(hours=23) < until - NOW <= dt.timedelta(days=1)  # retention from now, one day here


def test_anchors_are_sorted_per_ledger_and_a_hidden_one_is_flagged_not_lost(store: AuditStore) -> None:
    for seq, digest in ((12, H2), (3, H1)):
        store.anchor("ledger-a", Head(seq, digest), NOW)
    store.anchor("ledger-b", Head(5, H1), NOW)
    _hide(store, f"{ANCHORS}ledger-a/000000000012-{H2}.json")
    got = store.anchors("ledger-a")
    assert [(a.seq, a.hash, a.hidden) for a in got] == [(3, H1, False), (12, H2, True)]
    assert got[1].at == "2026-01-07T18:00:00+00:00"  # read from the version behind the delete marker
    assert store.ledgers() == ["ledger-a", "ledger-b"]
    assert [a.seq for a in store.anchors("ledger-b")] == [5]


def test_keys_that_are_not_anchors_are_ignored_and_old_unnamed_anchors_only_on_request(store: AuditStore) -> None:
    store.anchor("ledger-a", Head(2, H1), NOW)
    for junk in ("notes.json", "x-" + H1 + ".json", "000000000004-short.json", "sub/000000000005-" + H1 + ".json"):
        _plant(store, f"{ANCHORS}ledger-a/{junk}", b"{}")
    _plant(store, f"{ANCHORS}000000000001-{H2}.json", json.dumps({"at": "2025-12-31T00:00:00+00:00"}).encode())
    assert [a.seq for a in store.anchors("ledger-a")] == [2]
    legacy = store.anchors("ledger-a", legacy=True)
    assert [(a.seq, a.key) for a in legacy] == [(1, f"{ANCHORS}000000000001-{H2}.json"),
                                                (2, f"{ANCHORS}ledger-a/000000000002-{H1}.json")]  # fmt: skip
    assert legacy[0].at == "2025-12-31T00:00:00+00:00"


def test_a_stop_marker_stops_even_when_hidden_or_unreadable(store: AuditStore) -> None:
    store.mark_stop("stop-1", "TRO motion filed", "Ops On-call", NOW)
    assert store.stop_markers() == ([{"stop": "stop-1", "reason": "TRO motion filed", "set_by": "Ops On-call",
                                      "set_at": "2026-01-07T18:00:00+00:00"}], [])  # fmt: skip
    _hide(store, f"{STOPS}stop-1.json")
    _plant(store, f"{STOPS}planted.json", b"\xff not json")
    _plant(store, f"{STOPS}no-id.json", json.dumps({"reason": "no stop id"}).encode())
    stops, clears = store.stop_markers()
    assert clears == [] and [s["stop"] for s in stops] == ["no-id.json", "planted.json", "stop-1"]
    unreadable = stops[1]
    assert unreadable["set_by"] == "(unknown)" and unreadable["set_at"] == ""
    assert unreadable["reason"] == (f"a stop marker that cannot be read ({STOPS}planted.json); clear it with a "
                                    "signed `handoff hold clear`")  # fmt: skip


def test_a_clearing_counts_only_when_it_is_readable_and_not_hidden(store: AuditStore) -> None:
    signed = Signed(
        b'{"kind":"handoff.hold-clear"}', "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----"
    )
    store.mark_clear(signed, ["stop-1"], NOW)
    key = f"{STOPS}clear-{hashlib.sha256(signed.signature.encode()).hexdigest()[:16]}.json"
    assert json.loads(_s3().get_object(Bucket=store.bucket, Key=key)["Body"].read()) == {**signed.as_dict(),
                                                                                       "stops": ["stop-1"]}  # fmt: skip
    assert store.stop_markers() == ([], [signed])
    _plant(store, f"{STOPS}clear-planted.json", b"not json")
    assert store.stop_markers() == ([], [signed])
    _hide(store, key)
    assert store.stop_markers() == ([], [])


class _Pages:
    """What S3 (not the emulator) lists for keys deleted before they were ever written: a delete marker
    alone; beside them, one readable stop marker."""

    def get_paginator(self, _name: str) -> Any:
        return self

    def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
        prefix = kwargs["Prefix"]
        markers = [{"Key": f"{prefix}a-never-written.json", "VersionId": "m1", "IsLatest": True},
                   {"Key": f"{prefix}000000000001-{H1}.json", "VersionId": "m2", "IsLatest": True}]  # fmt: skip
        versions = [{"Key": f"{prefix}b-stop.json", "VersionId": "v1", "IsLatest": True, "LastModified": NOW}]
        return [{"DeleteMarkers": markers, "Versions": versions}]

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        import io

        assert kwargs.get("VersionId") == "v1", kwargs  # only a key with a version is ever read
        return {"Body": io.BytesIO(json.dumps({"stop": "b", "reason": "r"}).encode())}


def test_a_key_that_is_only_a_delete_marker_is_listed_without_a_version_and_skipped(store: AuditStore) -> None:
    listed = list_versions(_Pages(), "bucket", STOPS)
    assert [(x.key, x.version_id, x.hidden) for x in listed] == [
        (f"{STOPS}000000000001-{H1}.json", None, True), (f"{STOPS}a-never-written.json", None, True),
        (f"{STOPS}b-stop.json", "v1", False)]  # fmt: skip
    store._s3 = _Pages()  # the store reads through the same listing
    assert store.stop_markers() == ([{"stop": "b", "reason": "r"}], [])
    key = f"{ANCHORS}ledger-a/000000000001-{H1}.json"
    assert store.anchors("ledger-a") == [Anchor(1, H1, "", key, True)]  # hidden, and no version to read a time from


def test_the_newest_version_of_a_key_is_the_one_read(store: AuditStore) -> None:
    key = f"{STOPS}stop-9.json"
    _plant(store, key, json.dumps({"stop": "stop-9", "reason": "first"}).encode())
    _plant(store, key, json.dumps({"stop": "stop-9", "reason": "second"}).encode())
    [listed] = list_versions(_s3(), store.bucket, STOPS)
    newest = _s3().list_object_versions(Bucket=store.bucket, Prefix=key)["Versions"]
    assert listed.version_id == next(v["VersionId"] for v in newest if v["IsLatest"]) and not listed.hidden
    assert [s["reason"] for s in store.stop_markers()[0]] == ["second"]


def test_no_audit_bucket_is_refused_with_what_to_set() -> None:
    assert store_for(None, 1, "us-east-1") is None
    with pytest.raises(ConfigError) as caught:
        require(None)
    assert str(caught.value) == ("set HANDOFF_AUDIT_BUCKET (an S3 bucket with Object Lock): every disclosure is "
                                 "anchored in write-once storage before it happens")  # fmt: skip
    kept = AuditStore("some-bucket", 1, "us-east-1")
    assert require(kept) is kept


def test_a_bucket_without_object_lock_or_that_does_not_exist_is_named(s3_server: Any) -> None:
    from handoff_tools import emulator

    plain = f"handoff-plain-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(s3_server, plain)
    with pytest.raises(ConfigError, match=f"the audit bucket '{plain}' has no Object Lock"):
        AuditStore(plain, 1, "us-east-1").check()
    with pytest.raises(ConfigError, match="the audit bucket 'handoff-no-such-audit' does not exist"):
        AuditStore("handoff-no-such-audit", 1, "us-east-1").check()
    with pytest.raises(StateError, match="cannot write s3://handoff-no-such-audit/"):
        AuditStore("handoff-no-such-audit", 1, "us-east-1").mark_stop("s", "r", "me", NOW)
    with pytest.raises(StateError, match="cannot list the audit bucket handoff-no-such-audit"):
        AuditStore("handoff-no-such-audit", 1, "us-east-1").ledgers()
    with pytest.raises(StateError, match="cannot list the audit bucket handoff-no-such-audit"):
        AuditStore("handoff-no-such-audit", 1, "us-east-1").anchors("x")


def test_an_object_lock_bucket_passes_its_check_and_anchors_are_stored_exactly(store: AuditStore) -> None:
    store.check()  # COMPLIANCE-capable Object Lock: nothing to say
    store.anchor("ledger-a", Head(7, H2), NOW)
    key = f"{ANCHORS}ledger-a/000000000007-{H2}.json"
    got = _s3().get_object(Bucket=store.bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == (b'{"at":"2026-01-07T18:00:00+00:00","hash":"' + H2.encode() +
                                  b'","ledger":"ledger-a","seq":7}\n')  # fmt: skip
    assert got["ContentType"] == "application/json" and got.get("ChecksumSHA256")


def test_times_written_are_utc_whatever_the_hosts_zone(store: AuditStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        store.anchor("ledger-a", Head(1, H1), NOW)
        store.mark_stop("stop-2", "r", "me", NOW)
        assert store.anchors("ledger-a")[0].at == "2026-01-07T18:00:00+00:00"
        assert store.stop_markers()[0][0]["set_at"] == "2026-01-07T18:00:00+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_anchor_without_a_time_reads_as_none_given_and_ledger_names_are_kept_whole(store: AuditStore) -> None:
    _plant(store, f"{ANCHORS}Xledger/000000000001-{H1}.json", b"{}")
    assert [(a.seq, a.at) for a in store.anchors("Xledger")] == [(1, "")]
    assert store.ledgers() == ["Xledger"]


def test_an_empty_audit_bucket_has_no_ledgers_and_the_store_keeps_its_region(store: AuditStore) -> None:
    assert store.ledgers() == [] and store.anchors("any") == [] and store.stop_markers() == ([], [])
    made = store_for("b", 3, "eu-west-1")
    assert made is not None and (made.bucket, made.retention_days, made.region) == ("b", 3, "eu-west-1")


class _Refusing:
    """An S3 client whose writes fail with a given error code (what S3 answers a lost race, or a refusal)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def put_object(self, **_: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "PutObject")


@pytest.mark.parametrize("code", ["PreconditionFailed", "412", "ConditionalRequestConflict"])
def test_a_key_already_written_is_not_an_error(code: str) -> None:
    store = AuditStore("b", 1, "us-east-1")
    store._s3 = _Refusing(code)
    store.mark_stop("stop-1", "r", "me", NOW)  # another process wrote it first: the evidence is there


def test_a_refused_or_unreachable_write_says_so() -> None:
    store = AuditStore("b", 1, "us-east-1")
    store._s3 = _Refusing("AccessDenied")
    with pytest.raises(StateError) as caught:
        store.mark_stop("stop-1", "r", "me", NOW)
    assert (
        str(caught.value)
        == "cannot write s3://b/stops/stop-1.json: AccessDenied; check HANDOFF_AUDIT_BUCKET and access"
    )
    store._s3 = object()  # no put_object at all: an endpoint that answers nothing S3 would
    with pytest.raises(StateError) as caught:
        store.mark_stop("stop-1", "r", "me", NOW)
    assert str(caught.value) == "cannot reach the audit bucket b: AttributeError"


def test_an_unreachable_endpoint_is_named_when_the_bucket_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ConfigError) as caught:
        AuditStore("b", 1, "us-east-1").check()
    assert str(caught.value) == "S3 could not be reached to check the audit bucket (EndpointConnectionError)"


class _LockAnswers:
    """An S3 client whose Object Lock configuration answer is given: a document, or an error code."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def get_object_lock_configuration(self, **_: Any) -> Any:
        from botocore.exceptions import ClientError

        if isinstance(self.answer, str):
            raise ClientError({"Error": {"Code": self.answer, "Message": "no"}}, "GetObjectLockConfiguration")
        return self.answer


@pytest.mark.parametrize(
    ("answer", "said"),
    [({}, "has no Object Lock"), ({"ObjectLockConfiguration": {}}, "has no Object Lock"),
     ({"ObjectLockConfiguration": {"ObjectLockEnabled": "Disabled"}}, "has no Object Lock"),
     ("InvalidRequest", "has no Object Lock"), ("ObjectLockConfigurationNotFoundError", "has no Object Lock"),
     ("404", "does not exist"), ("NoSuchBucket", "does not exist"),
     ("AccessDenied", "cannot be used (S3 answered AccessDenied)")],
)  # fmt: skip
def test_what_s3_answers_about_object_lock_is_named(answer: Any, said: str) -> None:
    store = AuditStore("b", 1, "us-east-1")
    store._s3 = _LockAnswers(answer)
    with pytest.raises(ConfigError) as caught:
        store.check()
    assert f"the audit bucket 'b' {said}" in str(caught.value)
    store._s3 = _LockAnswers({"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}})
    store.check()
