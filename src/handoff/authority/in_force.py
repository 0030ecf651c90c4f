"""Which order version is in force: the newest one the ledger accepted, and never an older one.

The policy folder says which versions exist; the ledger says which were accepted: a version's
first use (an ``order-version`` entry, written once counsel's signature on its file verified)
or counsel's signed ``narrowed`` outcome that installed it (a ``hearing-outcome`` entry naming the
new version and its file's SHA-256). Deleting the newest version's files would otherwise put an
older, wider version back in force; here that holds everything, naming the missing file.
Versions never go backwards. This module reads the ledger and decides; it changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from handoff.policy.order import Order
from handoff.state import ledger


@dataclass(frozen=True)
class Accepted:
    """The newest version of one order the ledger accepted, and how."""

    ref: str
    version: int
    file_sha256: str | None
    seq: int
    how: str


def _outcome_file(payload: dict[str, object]) -> str | None:
    try:
        doc = json.loads(str(payload.get("statement", "")))
    except ValueError:
        return None
    return str(doc["order_file_sha256"]) if isinstance(doc, dict) and doc.get("order_file_sha256") else None


def accepted(conn: sa.Connection, order_id: str) -> Accepted | None:
    """The newest version of ``order_id`` the ledger accepted (None: no version used yet)."""
    best: Accepted | None = None
    for e in ledger.entries(conn, kinds=["order-version", "hearing-outcome"]):
        if e.kind == "order-version":
            ref, sha, how = e.payload.get("order_ref"), e.payload.get("file_sha256"), "first used"
        else:
            ref, sha = e.payload.get("new_order_ref"), _outcome_file(e.payload)
            how = f"installed by counsel's narrowed outcome of hearing {e.payload.get('hearing')}"
        oid, _, version = str(ref or "").rpartition("@v")
        if oid != order_id or not version.isdigit():
            continue
        if best is None or int(version) > best.version:
            best = Accepted(str(ref), int(version), str(sha) if sha else None, e.seq, how)
    return best


def problem(order: Order, file_sha256: str, record: Accepted | None) -> str | None:
    """Pure: why ``order`` (the policy folder's newest version, its file hashing ``file_sha256``) may not
    be in force given what the ledger accepted; None when it may."""
    if record is None:
        return None  # nothing accepted yet: the first use records this version
    if order.version < record.version:
        return (f"the ledger accepted {record.ref} (ledger entry {record.seq}, {record.how}), but the newest "
                f"version of {order.order_id} in the policy folder is {order.ref}: {record.ref}'s file is missing. "
                f"Restore it; an order version never goes backwards")  # fmt: skip
    if order.ref == record.ref and record.file_sha256 and file_sha256 != record.file_sha256:
        return (f"{order.ref}'s file differs from the one the ledger accepted (ledger entry {record.seq}, "
                f"SHA-256 {record.file_sha256[:16]}…). Restore the reviewed file")  # fmt: skip
    return None
