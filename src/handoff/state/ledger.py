"""The accounting ledger: append-only events chained by SHA-256.

Every event (staged, quarantined, held, approved, rejected, delivered, hold set/cleared,
hearing added/outcome) is one row whose hash covers its content and the previous row's
hash. ``verify`` recomputes the chain and names the first broken link. Nothing here
updates or deletes a row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from handoff.state.schema import iso, ledger, lock_for_decision, utcnow

GENESIS = "0" * 64
OPENED = "ledger-opened"  # the first entry of every ledger: a random id that names it in a shared audit bucket


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str
    kind: str
    actor: str
    batch_id: str | None
    order_ref: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str


def _digest(
    seq: int, at: str, kind: str, actor: str, batch_id: str | None, order_ref: str | None, payload: str, prev: str
) -> str:
    body = json.dumps([seq, at, kind, actor, batch_id, order_ref, payload, prev], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def append(
    conn: sa.Connection,
    kind: str,
    actor: str,
    *,
    batch_id: str | None = None,
    order_ref: str | None = None,
    payload: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> Entry:
    """Append one event inside the caller's transaction, serialised against every other writer."""
    lock_for_decision(conn)
    row = conn.execute(sa.select(ledger.c.seq, ledger.c.hash).order_by(ledger.c.seq.desc()).limit(1)).first()
    last: tuple[int, str] | None = (int(row.seq), str(row.hash)) if row else None
    if last is None and kind != OPENED:
        opened = append(conn, OPENED, "handoff", payload={"ledger_id": secrets.token_hex(8)}, at=at)
        last = (opened.seq, opened.hash)
    seq = (last[0] + 1) if last else 1
    prev = last[1] if last else GENESIS
    stamp = iso(at or utcnow())
    body = json.dumps(payload or {}, sort_keys=True, separators=(",", ":"), default=str)
    digest = _digest(seq, stamp, kind, actor, batch_id, order_ref, body, prev)
    conn.execute(
        ledger.insert().values(
            seq=seq, at=stamp, kind=kind, actor=actor, batch_id=batch_id, order_ref=order_ref,
            payload=body, prev_hash=prev, hash=digest,
        )
    )  # fmt: skip
    return Entry(seq, stamp, kind, actor, batch_id, order_ref, payload or {}, prev, digest)


@dataclass(frozen=True)
class Head:
    """The newest entry's sequence number and hash: what an anchor or a manifest records."""

    seq: int
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}


def head(conn: sa.Connection) -> Head:
    last = conn.execute(sa.select(ledger.c.seq, ledger.c.hash).order_by(ledger.c.seq.desc()).limit(1)).first()
    return Head(last.seq, last.hash) if last else Head(0, GENESIS)


def ledger_id(conn: sa.Connection) -> str | None:
    """This ledger's name in a shared audit bucket: the random id its first entry (``ledger-opened``)
    drew, or, for a ledger opened before that entry existed, its first entry's hash cut to 16 digits.

    Fixed once the first entry is written (rewriting it breaks the chain and every anchor)."""
    first = conn.execute(sa.select(ledger.c.kind, ledger.c.payload, ledger.c.hash).where(ledger.c.seq == 1)).first()
    if first is None:
        return None
    if first.kind == OPENED:
        return str(json.loads(first.payload).get("ledger_id") or first.hash[:16])
    return str(first.hash)[:16]


def _entry(row: Any) -> Entry:
    return Entry(
        row.seq, row.at, row.kind, row.actor, row.batch_id, row.order_ref,
        json.loads(row.payload), row.prev_hash, row.hash,
    )  # fmt: skip


def entries(conn: sa.Connection, *, batch_id: str | None = None, kinds: list[str] | None = None) -> list[Entry]:
    stmt = sa.select(ledger).order_by(ledger.c.seq)
    if batch_id:
        stmt = stmt.where(ledger.c.batch_id == batch_id)
    if kinds:
        stmt = stmt.where(ledger.c.kind.in_(kinds))
    return [_entry(r) for r in conn.execute(stmt)]


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    broken_seq: int | None = None
    problem: str | None = None


def verify(conn: sa.Connection) -> Verification:
    """Recompute the whole chain; report the first row whose link or content does not hold."""
    prev = GENESIS
    expected_seq = 1
    checked = 0
    for row in conn.execute(sa.select(ledger).order_by(ledger.c.seq)):
        if row.seq != expected_seq:
            return Verification(False, checked, expected_seq, f"row {expected_seq} is missing")
        if row.prev_hash != prev:
            return Verification(False, checked, row.seq, "its prev_hash does not match the row before it")
        digest = _digest(row.seq, row.at, row.kind, row.actor, row.batch_id, row.order_ref, row.payload, prev)
        if digest != row.hash:
            return Verification(False, checked, row.seq, "its content was changed after it was written")
        prev = row.hash
        expected_seq += 1
        checked += 1
    return Verification(True, checked)
