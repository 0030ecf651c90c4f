"""Recipient verification: check a delivered batch with read access to the bucket and the trust file.

``handoff verify s3://BUCKET/PREFIX/ORDER.vN/BATCH/ --trust allowed_signers`` needs no state
database. It checks that the manifest is in the one serialisation handoff writes; that the
prefix holds exactly the files the manifest lists and each one's bytes, SHA-256, rows and
columns are what it says; that the content hash follows from the files; and that every
approval is a signature by a key the trust file lists for ``handoff-approve``, over a statement
naming this batch, this content, this order version and this exact destination, made before
it lapsed. Then the whole chain of authority the manifest's proof carries (``chain``): counsel's
signature on the order version, the court's signed outcomes, the operator's signed request, the
validation summary and the number of distinct approvers. Where the bucket keeps versions, an
overwritten object is named too. Every problem names the object it was found in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from handoff.authority import chain
from handoff.errors import HandoffError, SignatureError
from handoff.extract.stage import StagedFile, content_hash
from handoff.release import manifest as manifests
from handoff.signing import statement as st
from handoff.signing.trust import Trust


@dataclass(frozen=True)
class Problem:
    object: str
    what: str

    def __str__(self) -> str:
        return f"{self.object}: {self.what}"


@dataclass
class Report:
    url: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    approvers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "ok": self.ok, "files": self.files, "rows": self.rows, "approvers": self.approvers,
                "problems": [{"object": p.object, "problem": p.what} for p in self.problems], "notes": self.notes}  # fmt: skip


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` → (bucket, prefix ending in ``/``)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise HandoffError(f"{url!r} is not an s3://BUCKET/PREFIX/ address")
    prefix = parsed.path.lstrip("/")
    return parsed.netloc, (prefix.rstrip("/") + "/") if prefix else ""


@dataclass(frozen=True)
class Seen:
    """What the bucket holds for one key, read once as a stream: its SHA-256 and size, its Parquet
    rows and columns (None when it is not Parquet), when S3 stored it and under which KMS key."""

    key: str
    sha256: str
    size: int
    rows: int | None
    columns: list[str] | None
    modified: dt.datetime
    kms_key_id: str | None
    versions: int


def check(url: str, manifest_body: bytes | None, objects: dict[str, Seen], trust: Trust) -> Report:
    """Pure: the verdict on a delivered prefix from what was read out of the bucket."""
    bucket, prefix = parse_url(url)
    report = Report(url)
    name = prefix + manifests.NAME
    if manifest_body is None:
        report.problems.append(Problem(name, "missing: the delivery is not complete (or this is not a batch prefix)"))
        return report
    import json

    try:
        doc = json.loads(manifest_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        report.problems.append(Problem(name, "not valid JSON"))
        return report
    if not isinstance(doc, dict) or manifests.dumps(doc) != manifest_body:
        report.problems.append(Problem(name, "not in handoff's serialisation: it was edited after delivery"))
        if not isinstance(doc, dict):
            return report
    try:
        _verdict(doc, bucket, prefix, name, objects, trust, report)
    except Exception as exc:  # noqa: BLE001 - a field of another type than handoff writes: a failure, never a crash
        report.problems.append(Problem(name, f"not a handoff manifest: a field holds a value of another type "
                                             f"({type(exc).__name__}); it was edited or written by something else"))  # fmt: skip
    return report


def _verdict(doc: dict[str, Any], bucket: str, prefix: str, name: str, objects: dict[str, Seen], trust: Trust,
             report: Report) -> None:  # fmt: skip
    _files(doc, prefix, objects, report)
    delivered = _delivered_at(doc, objects.get(name), name, report)
    _approvals(doc, bucket, prefix, delivered, trust, report)
    report.problems += [Problem(name, what) for what in chain.check(doc, trust, delivered, report.approvers)]
    kms = str((doc.get("destination") or {}).get("kms_key_id") or "")
    for seen in objects.values():
        if seen.versions > 1:
            report.problems.append(Problem(seen.key, f"{seen.versions} versions: it was overwritten after delivery"))
        if kms and not str(seen.kms_key_id or "").endswith(kms.split("/")[-1]):
            report.problems.append(Problem(seen.key, "encrypted with another KMS key than the approved one"))
    if doc.get("trust_sha256") != trust.sha256:
        report.notes.append("the trust file given differs from the one used at delivery "
                            f"(sha256 {str(doc.get('trust_sha256'))[:16]}…); signatures were checked against yours")  # fmt: skip


def _files(doc: dict[str, Any], prefix: str, objects: dict[str, Seen], report: Report) -> None:
    listed = {str(f.get("key")): f for f in doc.get("files") or [] if isinstance(f, dict)}
    columns = list((doc.get("order") or {}).get("columns") or [])
    staged: list[StagedFile] = []
    for key in sorted(set(objects) - set(listed) - {prefix + manifests.NAME}):
        report.problems.append(Problem(key, "in the bucket but not in the manifest"))
    for key, entry in sorted(listed.items()):
        seen = objects.get(key)
        if seen is None:
            report.problems.append(Problem(key, "listed in the manifest but missing from the bucket"))
            continue
        if seen.sha256 != entry.get("sha256") or seen.size != entry.get("bytes"):
            report.problems.append(Problem(key, "SHA-256 or size differs from the manifest: the object was changed"))
            continue
        if seen.rows is None:
            report.problems.append(Problem(key, "not a readable Parquet file"))
            continue
        if seen.rows != entry.get("rows") or seen.columns != columns:
            report.problems.append(Problem(key, "rows or columns differ from the manifest"))
        staged.append(StagedFile(key.rsplit("/", 1)[-1], seen.rows, seen.size, seen.sha256))
        report.files += 1
        report.rows += seen.rows
    name = prefix + manifests.NAME
    if content_hash(staged) != doc.get("content_hash") and len(staged) == len(listed):
        report.problems.append(Problem(name, "content_hash does not follow from the files"))
    if doc.get("rows") != report.rows and len(staged) == len(listed):
        report.problems.append(Problem(name, f"says {doc.get('rows')} rows; the files hold {report.rows}"))


def _approvals(doc: dict[str, Any], bucket: str, prefix: str, delivered: dt.datetime, trust: Trust,
               report: Report) -> None:  # fmt: skip
    name = prefix + manifests.NAME
    order = doc.get("order") or {}
    expect = {"decision": "approve", "batch_id": doc.get("batch_id"), "content_hash": doc.get("content_hash"),
              "rows": doc.get("rows"), "order_ref": order.get("ref"), "policy_hash": order.get("policy_hash"),
              "destination": doc.get("destination")}  # fmt: skip
    where = doc.get("destination") or {}
    if where.get("bucket") != bucket or where.get("prefix") != prefix:
        report.problems.append(Problem(name, f"names destination s3://{where.get('bucket')}/{where.get('prefix')}, "
                                             f"but it lies at s3://{bucket}/{prefix}"))  # fmt: skip
    for i, a in enumerate(doc.get("approvals") or []):
        label = f"approval {i + 1}"
        try:
            v = st.verify(trust, st.Signed.from_dict(a), st.DECISION, delivered)
        except SignatureError as exc:
            report.problems.append(Problem(name, f"{label} does not verify: {exc}"))
            continue
        wrong = [k for k, want in expect.items() if v.doc.get(k) != want]
        if wrong:
            report.problems.append(Problem(name, f"{label} by {v.principal} is about another {', '.join(wrong)}"))
        elif st.expired(v.doc, delivered):
            report.problems.append(Problem(name, f"{label} by {v.principal} lapsed before the delivery"))
        elif a.get("principal") != v.principal:
            report.problems.append(Problem(name, f"{label} names {a.get('principal')!r}; the key is {v.principal!r}'s"))
        elif v.principal not in report.approvers:
            report.approvers.append(v.principal)
    if not report.approvers:
        report.problems.append(Problem(name, "no valid approval: nobody with the approver role signed this delivery"))


def _delivered_at(doc: dict[str, Any], manifest: Seen | None, name: str, report: Report) -> dt.datetime:
    """When the delivery happened, as the manifest says, never later than S3 stored the manifest."""
    stored = manifest.modified if manifest else dt.datetime.now(dt.UTC)
    try:
        said = dt.datetime.fromisoformat(str(doc.get("delivered_at")))
    except ValueError:
        report.problems.append(Problem(name, "delivered_at is not a time"))
        return stored
    if said.tzinfo is None or said > stored + dt.timedelta(minutes=5):
        report.problems.append(Problem(name, f"says it was delivered at {said.isoformat()}, after S3 stored it"))
        return stored
    return said


def _read_object(s3: Any, bucket: str, key: str, versions: int, spool: Path) -> tuple[Seen, bytes | None]:
    """Stream one object to a temporary file, hashing as it goes; keep the bytes only of the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    got = s3.get_object(Bucket=bucket, Key=key)
    digest, size = hashlib.sha256(), 0
    with spool.open("wb") as fh:
        for block in got["Body"].iter_chunks(1 << 20):
            digest.update(block)
            fh.write(block)
            size += len(block)
    try:
        rows: int | None = int(pq.read_metadata(spool).num_rows)
        columns: list[str] | None = pq.read_schema(spool).names
    except (OSError, pa.ArrowInvalid):
        rows, columns = None, None
    body = spool.read_bytes() if key.endswith(manifests.NAME) else None
    seen = Seen(key, digest.hexdigest(), size, rows, columns, got["LastModified"], got.get("SSEKMSKeyId"), versions)
    return seen, body


def read_prefix(url: str) -> tuple[bytes | None, dict[str, Seen], list[str]]:
    """Read the manifest and every object under the prefix (streamed, one at a time; versions where allowed)."""
    import tempfile

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_url(url)
    s3 = boto3.client("s3")
    notes: list[str] = []
    versions: dict[str, int] = {}
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                versions[v["Key"]] = versions.get(v["Key"], 0) + 1
    except ClientError:
        notes.append("object versions could not be listed: an overwrite of the manifest cannot be ruled out")
    except BotoCoreError as exc:
        raise HandoffError(f"cannot read {url}: {exc}; check AWS_ENDPOINT_URL_S3, the network and your "
                           "AWS credentials (read access is enough)") from None  # fmt: skip
    objects: dict[str, Seen] = {}
    manifest: bytes | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="handoff-verify-") as tmp:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    seen, body = _read_object(s3, bucket, o["Key"], versions.get(o["Key"], 1), Path(tmp) / "object")
                    objects[o["Key"]] = seen
                    if o["Key"] == prefix + manifests.NAME:
                        manifest = body
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise HandoffError(f"cannot read {url}: S3 answered {code}; check the address and your read access") from None
    return manifest, objects, notes


def verify_prefix(url: str, trust: Trust) -> Report:
    body, objects, notes = read_prefix(url)
    report = check(url, body, objects, trust)
    report.notes[:0] = notes
    return report
