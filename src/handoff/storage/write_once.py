"""Write-once evidence: ledger anchors and emergency-stop markers in an Object Lock bucket.

After each committed ledger append the chain head (seq, hash, time) is written to the audit
bucket (``HANDOFF_AUDIT_BUCKET``) under a key that never repeats and names the ledger
(``anchors/LEDGER_ID/SEQ-HASH.json``, so several state databases share one bucket), with ``If-None-Match: *`` and
an Object Lock retention in COMPLIANCE mode, so nobody with write access to the state database
(or to the bucket) can rewrite or erase what the ledger said. ``hold set`` also writes a stop
marker there, and its signed clearing a clear marker: every release, against any state database,
honours a stop it finds in the bucket.

Everything is read through the bucket's version listing: a plain DELETE adds a delete marker
that hides an object from ``list_objects_v2``, so a hidden anchor or stop is still seen (and
``audit`` names the marker as tampering). This module writes and lists objects; ``audit``
decides what they prove.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from handoff.errors import ConfigError, StateError
from handoff.signing.statement import Signed
from handoff.state.ledger import Head

log = logging.getLogger(__name__)
ANCHORS = "anchors/"
STOPS = "stops/"


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str
    key: str
    hidden: bool = False  # a delete marker is its latest version: someone tried to make it disappear


@dataclass(frozen=True)
class Listed:
    """One key as the bucket's version listing shows it: its newest object version, and whether a
    delete marker stands in front of it (hiding it from plain listings and GETs)."""

    key: str
    version_id: str | None
    hidden: bool


class WriteOnceBucket:
    """An Object Lock bucket in COMPLIANCE mode: each key written once, then locked for the retention."""

    def __init__(self, bucket: str, retention_days: int, region: str) -> None:
        self.bucket, self.retention_days, self.region = bucket, retention_days, region
        self._s3: Any = None

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from handoff.storage.deliver import client

            self._s3 = client("s3", self.region)  # the process's one client for this endpoint
        return self._s3

    def check(self) -> None:
        """The bucket exists and has Object Lock on; ``ConfigError`` names what is wrong."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            conf = self.s3.get_object_lock_configuration(Bucket=self.bucket).get("ObjectLockConfiguration", {})
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            if code in ("ObjectLockConfigurationNotFoundError", "InvalidRequest"):
                conf = {}
            else:
                what = "does not exist" if code in ("404", "NoSuchBucket") else f"cannot be used (S3 answered {code})"
                raise ConfigError(f"the audit bucket {self.bucket!r} {what}; check HANDOFF_AUDIT_BUCKET. "
                                  "Nothing was extracted") from None  # fmt: skip
        except BotoCoreError as exc:
            raise ConfigError(f"S3 could not be reached to check the audit bucket ({type(exc).__name__})") from None
        if conf.get("ObjectLockEnabled") != "Enabled":
            raise ConfigError(f"the audit bucket {self.bucket!r} has no Object Lock, so its evidence could be "
                              "erased; create it with Object Lock (infra/terraform). Nothing was extracted")  # fmt: skip

    def _put_once(self, key: str, doc: dict[str, Any], now: dt.datetime) -> bool:
        """Write ``key`` unless it exists; True if written. Locked until now + retention."""
        from botocore.exceptions import ClientError

        body = (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()
        until = now.astimezone(dt.UTC) + dt.timedelta(days=self.retention_days)
        try:
            # SSE-KMS is asked for explicitly: the audit bucket's policy (infra/terraform) denies any put without it.
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*", ContentType="application/json",
                               ChecksumAlgorithm="SHA256", ObjectLockMode="COMPLIANCE", ServerSideEncryption="aws:kms",
                               ObjectLockRetainUntilDate=until)  # fmt: skip
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise StateError(f"cannot write s3://{self.bucket}/{key}: "
                             f"{exc.response.get('Error', {}).get('Code', '?')}; check HANDOFF_AUDIT_BUCKET and access") from None  # fmt: skip
        except Exception as exc:
            raise StateError(f"cannot reach the audit bucket {self.bucket}: {type(exc).__name__}") from None
        return True

    def _list(self, prefix: str) -> list[Listed]:
        """Every key under ``prefix`` with its versions: a delete marker never hides evidence from us."""
        try:
            return list_versions(self.s3, self.bucket, prefix)
        except Exception as exc:
            raise StateError(f"cannot list the audit bucket {self.bucket}: {type(exc).__name__}") from None

    def _get(self, item: Listed) -> dict[str, Any]:
        args = {"VersionId": item.version_id} if item.version_id else {}
        return dict(json.loads(self.s3.get_object(Bucket=self.bucket, Key=item.key, **args)["Body"].read()))


class AuditStore(WriteOnceBucket):
    """The audit bucket's two kinds of evidence: ledger anchors and emergency-stop markers."""

    def anchor(self, ledger_id: str, head: Head, now: dt.datetime) -> None:
        """Anchor the chain head of ledger ``ledger_id`` (idempotent: the key is the head itself)."""
        if head.seq == 0:
            return
        self._put_once(f"{ANCHORS}{ledger_id}/{head.seq:012d}-{head.hash}.json",
                       {"ledger": ledger_id, "seq": head.seq, "hash": head.hash,
                        "at": now.astimezone(dt.UTC).isoformat()}, now)  # fmt: skip

    def anchors(self, ledger_id: str, legacy: bool = False) -> list[Anchor]:
        """This ledger's anchors, hidden ones included (flagged). ``legacy``: also those a ledger opened
        before anchors were namespaced wrote at the top of ``anchors/`` (only ever one ledger's)."""
        out = []
        prefixes = [f"{ANCHORS}{ledger_id}/"] + ([ANCHORS] if legacy else [])
        for prefix in prefixes:
            for item in self._list(prefix):
                name = item.key[len(prefix) :].removesuffix(".json")
                seq, _, digest = name.partition("-")
                if "/" not in name and seq.isdigit() and len(digest) == 64:
                    at = self._get(item).get("at", "") if item.version_id else ""
                    out.append(Anchor(int(seq), digest, at, item.key, item.hidden))
        return sorted(out, key=lambda a: (a.seq, a.key))

    def ledgers(self) -> list[str]:
        """Every ledger that anchors in this bucket (several state databases may share it)."""
        try:
            pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=ANCHORS,
                                                                           Delimiter="/")  # fmt: skip
            return sorted(p["Prefix"][len(ANCHORS) :].strip("/") for page in pages
                          for p in page.get("CommonPrefixes", []))  # fmt: skip
        except Exception as exc:
            raise StateError(f"cannot list the audit bucket {self.bucket}: {type(exc).__name__}") from None

    # ----- stop markers ----------------------------------------------------------------------------
    def mark_stop(self, stop_id: str, reason: str, set_by: str, now: dt.datetime) -> None:
        self._put_once(f"{STOPS}{stop_id}.json", {"stop": stop_id, "reason": reason, "set_by": set_by,
                                                   "set_at": now.astimezone(dt.UTC).isoformat()}, now)  # fmt: skip

    def mark_clear(self, signed: Signed, stops: list[str], now: dt.datetime) -> None:
        digest = hashlib.sha256(signed.signature.encode()).hexdigest()[:16]
        self._put_once(f"{STOPS}clear-{digest}.json", {**signed.as_dict(), "stops": stops}, now)

    def stop_markers(self) -> tuple[list[dict[str, Any]], list[Signed]]:
        """Stops set, and clearings (as signed), from the bucket: a stop hidden by a delete marker still holds."""
        stops: list[dict[str, Any]] = []
        clears: list[Signed] = []
        for item in self._list(STOPS):
            if item.version_id is None:
                continue
            try:
                doc = self._get(item)
            except Exception:  # noqa: BLE001 - planted bytes: fail closed, never crash every release
                doc = None
            if item.key.startswith(f"{STOPS}clear-"):
                if not item.hidden and isinstance(doc, dict):  # a hidden or unreadable clearing clears nothing
                    clears.append(Signed.from_dict(doc))
            elif isinstance(doc, dict) and doc.get("stop"):
                stops.append(doc)
            else:  # a stop marker that cannot be read still stops
                stops.append({"stop": item.key.removeprefix(STOPS), "reason": "a stop marker that cannot be read "
                              f"({item.key}); clear it with a signed `handoff hold clear`", "set_by": "(unknown)",
                              "set_at": ""})  # fmt: skip
        return stops, clears


def list_versions(s3: Any, bucket: str, prefix: str) -> list[Listed]:
    """Every key under ``prefix``: its newest object version and whether a delete marker hides it."""
    versions: dict[str, list[dict[str, Any]]] = {}
    hidden: set[str] = set()
    markers: set[str] = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            versions.setdefault(v["Key"], []).append(v)
        for m in page.get("DeleteMarkers", []):
            markers.add(m["Key"])
            if m.get("IsLatest"):
                hidden.add(m["Key"])
    out = []
    for key in sorted(set(versions) | markers):
        newest = max(versions[key], key=lambda v: v["LastModified"]) if key in versions else None
        out.append(Listed(key, newest.get("VersionId") if newest else None, key in hidden))
    return out


def store_for(bucket: str | None, retention_days: int, region: str) -> AuditStore | None:
    return AuditStore(bucket, retention_days, region) if bucket else None


def require(store: AuditStore | None) -> AuditStore:
    if store is None:
        raise ConfigError("set HANDOFF_AUDIT_BUCKET (an S3 bucket with Object Lock): every disclosure is anchored "
                          "in write-once storage before it happens")  # fmt: skip
    return store
