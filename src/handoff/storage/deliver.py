"""Delivery to the recipient's S3 handoff bucket: exactly once, intact, encrypted.

Keys are ``[PREFIX]ORDER.vN/BATCH/part-NNNNN.parquet`` with ``manifest.json`` written last as
the commit marker. Every PUT uses SSE-KMS, a SHA-256 checksum and ``If-None-Match: *`` so
nothing is overwritten; large files go multipart. After upload a HEAD with checksum mode
confirms each object against our own hashes (an emulator may accept a wrong checksum).
Re-running a delivered batch is a no-op; a half-finished delivery completes without
duplicates. The endpoint comes from boto3's own ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from handoff.errors import ConfigError, DeliveryError, DeliveryFailed

PART_SIZE = 16 * 1024 * 1024
Progress = Callable[[str], None]
Guard = Callable[[], None]  # raises DeliveryStopped when a stop is set (or the lease lost)


def _no_guard() -> None:
    return None


def endpoint_for(region: str) -> str:
    """The S3 endpoint boto3 talks to: ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``, else AWS's own."""
    import os

    named = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return (named or f"https://s3.{region}.amazonaws.com").rstrip("/")


@dataclass(frozen=True)
class Destination:
    """Exactly where a batch goes, and where its evidence goes: what an approval binds and what release
    checks before writing. The endpoint and the audit bucket are bound too, so pointing the host at
    another S3 service or another audit bucket (with its own stops) voids every approval."""

    bucket: str
    prefix: str  # the batch's own folder: [PREFIX/]ORDER.vN/BATCH/
    kms_key_id: str | None  # None: the bucket's default KMS key
    endpoint: str = ""
    audit_bucket: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"bucket": self.bucket, "prefix": self.prefix, "kms_key_id": self.kms_key_id,
                "endpoint": self.endpoint, "audit_bucket": self.audit_bucket}  # fmt: skip

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class Target:
    bucket: str
    prefix: str
    kms_key_id: str | None
    region: str
    multipart_threshold: int
    endpoint: str = ""
    audit_bucket: str | None = None

    def folder(self, order_id: str, version: int, batch_id: str) -> str:
        prefix = self.prefix.strip("/")
        return f"{prefix + '/' if prefix else ''}{order_id}.v{version}/{batch_id}/"

    def destination(self, order_id: str, version: int, batch_id: str) -> Destination:
        return Destination(self.bucket, self.folder(order_id, version, batch_id), self.kms_key_id, self.endpoint,
                           self.audit_bucket)  # fmt: skip


@dataclass(frozen=True)
class DeliveredObject:
    key: str
    bytes: int
    sha256: str
    checksum_sha256: str
    uploaded: bool  # False when it was already there with the same content
    version_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_CLIENTS: dict[tuple[str, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()
_SESSION: list[Any] = []  # the process's one botocore session, made with its first client


def client(service: str, region: str) -> Any:
    """One S3 (or KMS) client per service, region, endpoint and credentials in this process: making one
    costs about 0.1 s, and clients are thread-safe. The endpoint and credentials are read from the
    environment each time, so a changed ``AWS_ENDPOINT_URL*`` or key gets a client of its own.

    The client comes from botocore's session, as ``boto3.client`` makes it (the same credential chain,
    region, endpoint settings and retries), without importing boto3's resource layer and s3transfer,
    which handoff never uses: 0.025-0.05 s of CPU in every command that talks to S3, measured here; and
    its models are loaded without listing every service botocore ships (``service_models``: 0.02 s)."""
    env = os.environ.get
    key = (service, region, env(f"AWS_ENDPOINT_URL_{service.upper()}") or env("AWS_ENDPOINT_URL") or "",
           env("AWS_ACCESS_KEY_ID") or "", env("AWS_PROFILE") or "")  # fmt: skip
    with _CLIENTS_LOCK:  # a botocore session is not thread-safe: clients are made one at a time
        made = _CLIENTS.get(key)
        if made is None:
            import botocore.session
            from botocore.config import Config

            if not _SESSION:
                from handoff.storage import service_models

                session = botocore.session.Session()
                session.register_component(
                    "data_loader", service_models.loader(session.get_config_variable("data_path"))
                )
                _SESSION.append(session)
            config = Config(retries={"max_attempts": 5, "mode": "standard"})
            made = _CLIENTS[key] = _SESSION[0].create_client(service, region_name=region, config=config)
        return made


def s3_client(region: str) -> Any:
    return client("s3", region)


def _b64(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def checksum(hexdigest: str) -> str:
    """S3's base64 SHA-256 checksum of an object whose hex SHA-256 is ``hexdigest``."""
    return _b64(hexdigest)


def _composite(part_digests: list[bytes]) -> str:
    return f"{base64.b64encode(hashlib.sha256(b''.join(part_digests)).digest()).decode()}-{len(part_digests)}"


def _error(exc: Exception, what: str) -> DeliveryError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        return DeliveryError(f"{what}: S3 answered {code}: {exc.response.get('Error', {}).get('Message', '')}")
    return DeliveryError(f"{what}: {type(exc).__name__}: {exc}; check AWS_ENDPOINT_URL_S3, credentials and bucket")


def check_destination(region: str, bucket: str, kms_key_id: str | None) -> None:
    """Before anything is extracted: the handoff bucket exists and answers, and the KMS key (when one is
    named) exists and is enabled. ``ConfigError`` names what is wrong; an answer that proves nothing
    (KMS access denied to a role that may still encrypt) is not held against the destination."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = s3_client(region)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        what = (
            "does not exist" if code in ("404", "NoSuchBucket", "NotFound") else f"cannot be used (S3 answered {code})"
        )
        raise ConfigError(f"the handoff bucket {bucket!r} {what}; check --bucket (or HANDOFF_BUCKET) and this "
                          "host's access to it. Nothing was extracted") from None  # fmt: skip
    except BotoCoreError as exc:
        raise ConfigError(f"S3 could not be reached to check the handoff bucket ({type(exc).__name__}); check "
                          "AWS_ENDPOINT_URL_S3, the network and your AWS credentials. Nothing was extracted") from None  # fmt: skip
    if not kms_key_id:
        return
    try:
        meta = client("kms", region).describe_key(KeyId=kms_key_id)["KeyMetadata"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in ("NotFoundException", "InvalidArnException"):
            raise ConfigError(f"the KMS key {kms_key_id!r} does not exist; check HANDOFF_KMS_KEY_ID. "
                              "Nothing was extracted") from None  # fmt: skip
        return  # access denied to DescribeKey says nothing about encrypting with it
    except BotoCoreError:
        return  # KMS not reachable from here (AWS_ENDPOINT_URL_S3 alone): the upload will tell
    if meta.get("KeyState", "Enabled") != "Enabled":
        raise ConfigError(f"the KMS key {kms_key_id!r} is {meta.get('KeyState')}; enable it or set another "
                          "HANDOFF_KMS_KEY_ID. Nothing was extracted")  # fmt: skip


def bucket_missing(s3: Any, bucket: str) -> bool:
    """True when S3 says the bucket does not exist (so nothing was ever uploaded to it)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound")
    return False


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return dict(s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _sse(target: Target) -> dict[str, str]:
    args = {"ServerSideEncryption": "aws:kms"}
    if target.kms_key_id:
        args["SSEKMSKeyId"] = target.kms_key_id
    return args


def _fingerprint(path: Path, size: int, target: Target) -> tuple[str, str, list[bytes], bytes | None]:
    """Read a staged file once: its SHA-256, S3's expected checksum, part digests, and the body.

    A file at or below the multipart threshold is kept in memory for the single PUT; a larger
    one is hashed part by part (for the composite checksum) and streamed again only to upload.
    """
    if size <= target.multipart_threshold:
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()
        return digest, _b64(digest), [], body
    whole = hashlib.sha256()
    parts: list[bytes] = []
    with path.open("rb") as fh:
        while chunk := fh.read(PART_SIZE):
            whole.update(chunk)
            parts.append(hashlib.sha256(chunk).digest())
    return whole.hexdigest(), _composite(parts), parts, None


def _same_checksum(reported: str | None, ours: str) -> bool:
    """Compare S3's checksum with ours; a composite (multipart) one may come without its "-N" suffix.

    AWS reports a multipart object's SHA-256 as ``BASE64-N``; some S3-compatible servers drop the
    part count. The digest itself must match either way.
    """
    if reported is None:
        return False
    return reported == ours or ("-" in ours and "-" not in reported and reported == ours.rsplit("-", 1)[0])


def _check(head: dict[str, Any], key: str, size: int, checksum: str, target: Target) -> None:
    problems = []
    if int(head.get("ContentLength", -1)) != size:
        problems.append(f"size {head.get('ContentLength')} != {size}")
    if not _same_checksum(head.get("ChecksumSHA256"), checksum):
        problems.append("SHA-256 checksum differs from the staged file")
    if head.get("ServerSideEncryption") != "aws:kms":
        problems.append(f"encryption is {head.get('ServerSideEncryption')!r}, not aws:kms")
    if target.kms_key_id and not str(head.get("SSEKMSKeyId", "")).endswith(target.kms_key_id.split("/")[-1]):
        problems.append("encrypted with a different KMS key")
    if problems:
        raise DeliveryFailed(f"s3://{target.bucket}/{key}: {'; '.join(problems)}; nothing was overwritten")


def _put_single(s3: Any, target: Target, key: str, body: bytes, checksum: str) -> None:
    s3.put_object(
        Bucket=target.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
        ChecksumSHA256=checksum, IfNoneMatch="*", **_sse(target),
    )  # fmt: skip


def _put_multipart(s3: Any, target: Target, key: str, path: Path, digests: list[bytes], guard: Guard) -> None:
    """Upload part by part, re-reading the stop before each part; any failure aborts the upload."""
    upload = s3.create_multipart_upload(Bucket=target.bucket, Key=key, ChecksumAlgorithm="SHA256", **_sse(target))
    uid = upload["UploadId"]
    parts = []
    try:
        with path.open("rb") as fh:
            for number, digest in enumerate(digests, start=1):
                guard()
                body = fh.read(PART_SIZE)
                b64 = base64.b64encode(digest).decode()
                res = s3.upload_part(Bucket=target.bucket, Key=key, UploadId=uid, PartNumber=number, Body=body,
                                     ChecksumAlgorithm="SHA256", ChecksumSHA256=b64)  # fmt: skip
                parts.append({"ETag": res["ETag"], "PartNumber": number, "ChecksumSHA256": b64})
        guard()
        s3.complete_multipart_upload(Bucket=target.bucket, Key=key, UploadId=uid,
                                     MultipartUpload={"Parts": parts}, IfNoneMatch="*")  # fmt: skip
    except BaseException:
        s3.abort_multipart_upload(Bucket=target.bucket, Key=key, UploadId=uid)
        raise


def _precondition_failed(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
        "PreconditionFailed", "412", "ConditionalRequestConflict",
    )  # fmt: skip


def start_upload(s3: Any, target: Target, key: str, path: Path, sha256_hex: str,
                 guard: Guard = _no_guard) -> Callable[[], DeliveredObject]:  # fmt: skip
    """Check one staged file against its SHA-256 and re-read the guard, here and now; return the upload
    itself (the bytes unless an identical object is there, then the HEAD that verifies them), to run
    here or on another thread (``upload_files``)."""
    try:
        size = path.stat().st_size
        digest, checksum, digests, body = _fingerprint(path, size, target)
    except FileNotFoundError:
        raise DeliveryFailed(f"{path.name}: the staged file is missing; it will not be delivered") from None
    if digest != sha256_hex:
        raise DeliveryFailed(f"{path.name}: staged file changed since validation; it will not be delivered")
    guard()

    def send() -> DeliveredObject:
        try:
            # A single PUT is conditional (``If-None-Match: *``): where an object is already at the key S3
            # refuses it, so only a multipart upload asks first whether one is there.
            head = _head(s3, target.bucket, key) if body is None else None
            uploaded = False
            if head is None:
                try:
                    if body is None:
                        _put_multipart(s3, target, key, path, digests, guard)
                    else:
                        _put_single(s3, target, key, body, checksum)
                    uploaded = True
                except Exception as exc:
                    if not _precondition_failed(exc):
                        raise
            head = _head(s3, target.bucket, key)
        except DeliveryError:
            raise
        except Exception as exc:
            raise _error(exc, f"upload of s3://{target.bucket}/{key}") from None
        if head is None:
            raise DeliveryError(f"s3://{target.bucket}/{key} is missing right after upload")
        _check(head, key, size, checksum, target)
        return DeliveredObject(key, size, sha256_hex, checksum, uploaded, head.get("VersionId"))

    return send


def upload_file(s3: Any, target: Target, key: str, path: Path, sha256_hex: str,
                guard: Guard = _no_guard) -> DeliveredObject:  # fmt: skip
    """Upload one staged file unless an identical object is already there; verify it after."""
    return start_upload(s3, target, key, path, sha256_hex, guard)()


def upload_files(s3: Any, target: Target, files: list[tuple[str, Path, str]], guard: Guard,
                 at_once: int = 1) -> list[DeliveredObject]:  # fmt: skip
    """Upload ``(key, path, sha256)`` files with up to ``at_once`` of them in flight; the objects in file order.

    Each file is checked and the guard re-read on this thread, in file order, before its bytes go, as
    one at a time; only the PUT and its HEAD overlap (a round trip each, which a remote S3 makes long).
    The guard runs one call at a time (a multipart upload re-reads it per part, on its own thread). On
    the first error no further file starts; the uploads already under way end before this returns,
    so nothing is written after it; then the error of the earliest file raises.
    """
    if at_once <= 1 or len(files) <= 1:
        return [upload_file(s3, target, key, path, sha, guard) for key, path, sha in files]
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait  # here: `status` needs none

    lock = threading.Lock()

    def one_at_a_time() -> None:
        with lock:
            guard()

    started: list[Future[DeliveredObject]] = []
    failed: tuple[int, BaseException] | None = None
    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="handoff-upload") as pool:
        for i, (key, path, sha) in enumerate(files):
            running = [f for f in started if not f.done()]
            if len(running) >= at_once:
                wait(running, return_when=FIRST_COMPLETED)
            if any(f.done() and f.exception() is not None for f in started):
                break
            try:
                started.append(pool.submit(start_upload(s3, target, key, path, sha, one_at_a_time)))
            except BaseException as exc:  # noqa: BLE001 - raised below, once the uploads under way ended
                failed = (i, exc)
                break
    # The pool's exit waited for every upload it started: the earliest file's error is the one raised.
    for i, future in enumerate(started):
        error = future.exception()
        if error is not None and (failed is None or i < failed[0]):
            failed = (i, error)
            break
    if failed is not None:
        raise failed[1]
    return [f.result() for f in started]


def read_manifest(s3: Any, target: Target, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise _error(exc, f"reading s3://{target.bucket}/{key}") from None
    except Exception as exc:
        raise _error(exc, f"reading s3://{target.bucket}/{key}") from None
    return dict(json.loads(body))


def existing_object(s3: Any, target: Target, key: str) -> DeliveredObject:
    """An object already in the bucket (a manifest written by an interrupted run), as delivered."""
    try:
        body = s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise _error(exc, f"reading s3://{target.bucket}/{key}") from None
    digest = hashlib.sha256(body).hexdigest()
    return DeliveredObject(key, len(body), digest, _b64(digest), False)


def write_manifest(s3: Any, target: Target, key: str, manifest: dict[str, Any]) -> DeliveredObject:
    """Write the manifest last, once; it is the marker that the delivery is complete."""
    body = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    digest = hashlib.sha256(body).hexdigest()
    try:
        s3.put_object(Bucket=target.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                      ChecksumSHA256=_b64(digest), IfNoneMatch="*", ContentType="application/json",
                      **_sse(target))  # fmt: skip
        head = _head(s3, target.bucket, key)
    except Exception as exc:
        if _precondition_failed(exc):
            raise DeliveryError(
                f"s3://{target.bucket}/{key} appeared during this delivery; run release again"
            ) from None
        raise _error(exc, f"writing s3://{target.bucket}/{key}") from None
    if head is None:
        raise DeliveryError(f"s3://{target.bucket}/{key} is missing right after upload")
    _check(head, key, len(body), _b64(digest), target)
    return DeliveredObject(key, len(body), digest, _b64(digest), True, head.get("VersionId"))


def remove_prefix(s3: Any, target: Target, prefix: str) -> list[dict[str, str | None]]:
    """Delete every object version under ``prefix`` (a withdrawal); return what was removed."""
    removed: list[dict[str, str | None]] = []
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=target.bucket, Prefix=prefix)
        for page in pages:
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                s3.delete_object(Bucket=target.bucket, Key=v["Key"], VersionId=v["VersionId"])
                removed.append({"key": v["Key"], "version_id": v["VersionId"]})
    except Exception as exc:
        raise _error(exc, f"withdrawing s3://{target.bucket}/{prefix}") from None
    return removed


def write_tombstone(s3: Any, target: Target, key: str, doc: dict[str, Any]) -> None:
    """A note left where a withdrawn batch was, so the recipient sees why it is gone."""
    body = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    try:
        s3.put_object(Bucket=target.bucket, Key=key, Body=body, IfNoneMatch="*", ContentType="application/json",
                      **_sse(target))  # fmt: skip
    except Exception as exc:
        if not _precondition_failed(exc):
            raise _error(exc, f"writing s3://{target.bucket}/{key}") from None


def abort_stale_uploads(s3: Any, target: Target, prefix: str) -> int:
    """Abort multipart uploads left in progress under ``prefix`` by a delivery that died mid-part."""
    try:
        uploads = s3.list_multipart_uploads(Bucket=target.bucket, Prefix=prefix).get("Uploads", [])
        for u in uploads:
            s3.abort_multipart_upload(Bucket=target.bucket, Key=u["Key"], UploadId=u["UploadId"])
    except Exception as exc:
        raise _error(exc, f"listing uploads in progress under s3://{target.bucket}/{prefix}") from None
    return len(uploads)
