"""Write-once evidence: ledger anchors and emergency-stop markers in an Object Lock bucket.

After each committed ledger append the chain head (seq, hash, time) is written to the audit
bucket (``HANDOFF_AUDIT_BUCKET``) under a key that never repeats, with ``If-None-Match: *`` and
an Object Lock retention in COMPLIANCE mode, so nobody with write access to the state database
(or to the bucket) can rewrite or erase what the ledger said. ``hold set`` also writes a stop
marker there, and its signed clearing a clear marker: every release, against any state database,
honours a stop it finds in the bucket.

This module writes and lists objects; ``audit`` decides what they prove.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from handoff.errors import ConfigError, StateError
from handoff.ledger import Head
from handoff.statement import Signed

log = logging.getLogger("handoff.evidence")
ANCHORS = "anchors/"
STOPS = "stops/"


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str
    key: str


class WriteOnceBucket:
    """An Object Lock bucket in COMPLIANCE mode: each key written once, then locked for the retention."""

    def __init__(self, bucket: str, retention_days: int, region: str) -> None:
        self.bucket, self.retention_days, self.region = bucket, retention_days, region
        self._s3: Any = None

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            self._s3 = boto3.client("s3", region_name=self.region,
                                    config=Config(retries={"max_attempts": 5, "mode": "standard"}))  # fmt: skip
        return self._s3

    def _put_once(self, key: str, doc: dict[str, Any], now: dt.datetime) -> bool:
        """Write ``key`` unless it exists; True if written. Locked until now + retention."""
        from botocore.exceptions import ClientError

        body = (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()
        until = now.astimezone(dt.UTC) + dt.timedelta(days=self.retention_days)
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*", ContentType="application/json",
                               ChecksumAlgorithm="SHA256", ObjectLockMode="COMPLIANCE",
                               ObjectLockRetainUntilDate=until)  # fmt: skip
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise StateError(f"cannot write s3://{self.bucket}/{key}: "
                             f"{exc.response.get('Error', {}).get('Code', '?')}; check HANDOFF_AUDIT_BUCKET and access") from None  # fmt: skip
        except Exception as exc:
            raise StateError(f"cannot reach the audit bucket {self.bucket}: {type(exc).__name__}") from None
        return True

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys += [o["Key"] for o in page.get("Contents", [])]
        except Exception as exc:
            raise StateError(f"cannot list the audit bucket {self.bucket}: {type(exc).__name__}") from None
        return sorted(keys)

    def _get(self, key: str) -> dict[str, Any]:
        return dict(json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()))


class AuditStore(WriteOnceBucket):
    """The audit bucket's two kinds of evidence: ledger anchors and emergency-stop markers."""

    def anchor(self, head: Head, now: dt.datetime) -> None:
        """Anchor the chain head (idempotent: the key is the head itself)."""
        if head.seq == 0:
            return
        self._put_once(f"{ANCHORS}{head.seq:012d}-{head.hash}.json",
                       {"seq": head.seq, "hash": head.hash, "at": now.astimezone(dt.UTC).isoformat()}, now)  # fmt: skip

    def anchors(self) -> list[Anchor]:
        out = []
        for key in self._list(ANCHORS):
            name = key[len(ANCHORS) :].removesuffix(".json")
            seq, _, digest = name.partition("-")
            if seq.isdigit() and len(digest) == 64:
                out.append(Anchor(int(seq), digest, self._get(key).get("at", ""), key))
        return sorted(out, key=lambda a: (a.seq, a.key))

    # ----- stop markers ----------------------------------------------------------------------------
    def mark_stop(self, stop_id: str, reason: str, set_by: str, now: dt.datetime) -> None:
        self._put_once(f"{STOPS}{stop_id}.json", {"stop": stop_id, "reason": reason, "set_by": set_by,
                                                   "set_at": now.astimezone(dt.UTC).isoformat()}, now)  # fmt: skip

    def mark_clear(self, signed: Signed, stops: list[str], now: dt.datetime) -> None:
        digest = hashlib.sha256(signed.signature.encode()).hexdigest()[:16]
        self._put_once(f"{STOPS}clear-{digest}.json", {**signed.as_dict(), "stops": stops}, now)

    def stop_markers(self) -> tuple[list[dict[str, Any]], list[Signed]]:
        """Stops set, and clearings (as signed), from the bucket."""
        stops, clears = [], []
        for key in self._list(STOPS):
            doc = self._get(key)
            if key.startswith(f"{STOPS}clear-"):
                clears.append(Signed.from_dict(doc))
            else:
                stops.append(doc)
        return stops, clears


def store_for(bucket: str | None, retention_days: int, region: str) -> AuditStore | None:
    return AuditStore(bucket, retention_days, region) if bucket else None


def require(store: AuditStore | None) -> AuditStore:
    if store is None:
        raise ConfigError("set HANDOFF_AUDIT_BUCKET (an S3 bucket with Object Lock): every disclosure is anchored "
                          "in write-once storage before it happens")  # fmt: skip
    return store
