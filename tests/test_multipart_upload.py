"""Large staged files go up as multipart uploads, verified against handoff's own hashes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from handoff.errors import DeliveryError
from handoff.storage import deliver

MB = 1024 * 1024


def _target(s3: Any) -> deliver.Target:
    return deliver.Target(s3.name, "", s3.kms_key_id, "us-east-1", multipart_threshold=5 * MB)


def test_large_file_is_uploaded_in_parts_encrypted_and_verified(
    tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliver, "PART_SIZE", 5 * MB)
    path = tmp_path / "part-00000.parquet"
    path.write_bytes(os.urandom(12 * MB))  # three parts: 5 + 5 + 2 MB
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    client = deliver.s3_client("us-east-1")

    obj = deliver.upload_file(client, _target(s3), "o/b/part-00000.parquet", path, digest)
    assert obj.uploaded and obj.checksum_sha256.endswith("-3"), obj.checksum_sha256
    head = client.head_object(Bucket=s3.name, Key="o/b/part-00000.parquet", ChecksumMode="ENABLED")
    assert head["ContentLength"] == 12 * MB
    assert head["ServerSideEncryption"] == "aws:kms"
    body = client.get_object(Bucket=s3.name, Key="o/b/part-00000.parquet")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest

    again = deliver.upload_file(client, _target(s3), "o/b/part-00000.parquet", path, digest)
    assert again.uploaded is False, "an identical object was uploaded twice"


def test_an_existing_object_with_other_content_is_never_overwritten(tmp_path: Path, s3: Any) -> None:
    client = deliver.s3_client("us-east-1")
    client.put_object(Bucket=s3.name, Key="o/b/part-00000.parquet", Body=b"someone else's bytes")
    path = tmp_path / "part-00000.parquet"
    path.write_bytes(b"our staged bytes")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DeliveryError, match="nothing was overwritten"):
        deliver.upload_file(client, _target(s3), "o/b/part-00000.parquet", path, digest)
    body = client.get_object(Bucket=s3.name, Key="o/b/part-00000.parquet")["Body"].read()
    assert body == b"someone else's bytes"


def test_a_stop_between_parts_aborts_the_multipart_upload(tmp_path: Path, s3: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from handoff.errors import DeliveryStopped

    monkeypatch.setattr(deliver, "PART_SIZE", 5 * MB)
    path = tmp_path / "part-00000.parquet"
    path.write_bytes(os.urandom(12 * MB))
    calls: list[int] = []

    def guard() -> None:  # the emergency stop is set while part 1 is on its way
        calls.append(1)
        if len(calls) == 3:  # before the object, before part 1, before part 2
            raise DeliveryStopped("emergency stop set")

    client = deliver.s3_client("us-east-1")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DeliveryStopped):
        deliver.upload_file(client, _target(s3), "o/b/part-00000.parquet", path, digest, guard)
    assert client.list_multipart_uploads(Bucket=s3.name).get("Uploads", []) == []
    assert "Contents" not in client.list_objects_v2(Bucket=s3.name)


def test_a_small_file_goes_up_in_one_conditional_put_and_one_verifying_head(tmp_path: Path, s3: Any) -> None:
    """A single PUT carries ``If-None-Match: *``, so no HEAD is asked before it: the one HEAD verifies
    what was written. Delivered again (a resumed release), the PUT is refused, the object keeps its
    version and counts as not uploaded."""
    client = deliver.s3_client("us-east-1")
    calls: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    path = tmp_path / "part-00000.parquet"
    path.write_bytes(os.urandom(64 * 1024))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    first = deliver.upload_file(client, _target(s3), "o/b/part-00000.parquet", path, digest)
    assert first.uploaded and calls == ["PutObject", "HeadObject"]
    calls.clear()
    again = deliver.upload_file(client, _target(s3), "o/b/part-00000.parquet", path, digest)
    assert again.uploaded is False and calls == ["PutObject", "HeadObject"]
    assert again.version_id == first.version_id
    versions = client.list_object_versions(Bucket=s3.name, Prefix="o/b/").get("Versions", [])
    assert [v["VersionId"] for v in versions] == [first.version_id]
