"""Manual approval: a person whose key is in the trust file signs exactly one batch's release.

A decision is a signed statement (``statement.DECISION``, namespace ``handoff-approve``) naming
the batch, its content hash and row count, the order version and policy hash, the exact
destination (S3 endpoint, bucket, key prefix, KMS key, and the audit bucket whose stops it honours),
the decision, a note and an expiry. The principal
recorded is the one the trust file lists for the signing key, never typed text. The key that
started the transfer, and any other key of the same person, cannot approve it.

``binding`` is the pure check the approval gate runs at upload time: it re-verifies every
signature against the trust file as it is *now*, so a removed key voids its pending approvals.
Decisions are read from the ledger; a row in the ``approvals`` table that the ledger does not
back with a valid signature is ignored and reported.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from handoff.errors import GateError, SignatureError
from handoff.extract.stage import content_hash, verify_staged
from handoff.policy.order import Order
from handoff.signing import statement as st
from handoff.signing.trust import Signer, Trust
from handoff.state import ledger
from handoff.state import validated as validation
from handoff.state.batch import Batch, set_status
from handoff.state.schema import approvals, batches, iso, lock_for_decision
from handoff.state.status import Status
from handoff.storage.deliver import Destination

DECIDABLE = (Status.STAGED, Status.HELD, Status.AWAITING, Status.APPROVED)
DEFAULT_TTL = dt.timedelta(days=7)
MAX_TTL = dt.timedelta(days=30)
KINDS = ("approved", "rejected")


def statement_for(batch: Batch, order: Order, destination: Destination, decision: str, note: str | None,
                  now: dt.datetime, ttl: dt.timedelta = DEFAULT_TTL) -> dict[str, Any]:  # fmt: skip
    """What an approver signs: this batch's exact content, under this order, to this destination."""
    if decision not in ("approve", "reject"):
        raise GateError(f"decision must be approve or reject, not {decision!r}")
    if not dt.timedelta(minutes=5) <= ttl <= MAX_TTL:
        raise GateError(f"an approval expires between 5 minutes and {MAX_TTL.days} days after it is signed")
    return {
        "kind": st.DECISION,
        "version": 1,
        "decision": decision,
        "batch_id": batch.id,
        "content_hash": batch.content_hash,
        "rows": batch.rows_staged,
        "order_ref": order.ref,
        "policy_hash": order.policy_hash,
        "destination": destination.as_dict(),
        "note": (note or "").strip(),
        "issued_at": st.stamp(now),
        "expires_at": st.stamp(now + ttl),
    }


@dataclass(frozen=True)
class Decision:
    """A verified decision, as the gates, the manifest and the lineage walk see it."""

    batch_id: str
    decision: str
    approver: str  # the trust file's principal
    key: str  # SHA256 fingerprint
    at: str
    note: str
    expires_at: str
    signed: st.Signed

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "principal": self.approver, "key": self.key, "at": self.at,
                "note": self.note, "expires_at": self.expires_at, **self.signed.as_dict()}  # fmt: skip


def mismatch(doc: dict[str, Any], batch: Batch, order: Order, destination: Destination) -> str | None:
    """Why a decision statement is not about this batch, order and destination (None when it is)."""
    checks = [
        ("batch_id", batch.id), ("content_hash", batch.content_hash), ("rows", batch.rows_staged),
        ("order_ref", order.ref), ("policy_hash", order.policy_hash), ("destination", destination.as_dict()),
    ]  # fmt: skip
    for name, want in checks:
        got = doc.get(name)
        if got == want:
            continue
        if name == "destination" and isinstance(got, dict) and isinstance(want, dict):
            field = next(k for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k))
            return (f"it names destination {field} {got.get(field)!r}, but this batch is to be delivered with "
                    f"{want.get(field)!r}; approve again for this destination or restore the configuration")  # fmt: skip
        return f"it names another {name} than this batch is to be delivered with"
    return None


def judge(signed: st.Signed, trust: Trust, batch: Batch, order: Order, destination: Destination,
          initiator: Signer | None, now: dt.datetime) -> Decision:  # fmt: skip
    """Verify one signed decision for this batch; raise ``SignatureError``/``GateError`` saying why not."""
    verified = st.verify(trust, signed, st.DECISION, now)
    doc = verified.doc
    why = mismatch(doc, batch, order, destination)
    if why:
        raise GateError(f"the decision signed by {verified.principal} does not bind: {why}")
    if doc.get("decision") == "approve" and st.expired(doc, now):
        raise GateError(f"the approval signed by {verified.principal} expired at {doc.get('expires_at')}")
    if doc.get("decision") == "approve" and st.lifetime_beyond(doc, MAX_TTL):
        raise GateError(f"the approval signed by {verified.principal} claims to last longer than {MAX_TTL.days} days")
    if initiator is not None and (verified.signer.fingerprint == initiator.fingerprint
                                  or verified.principal == initiator.principal):  # fmt: skip
        raise GateError(f"{verified.principal} started batch {batch.id} and cannot approve it; ask another approver")
    if doc.get("decision") == "reject" and not str(doc.get("note", "")).strip():
        raise GateError("a rejection needs a note saying why (sign a statement with --note)")
    return Decision(batch.id, str(doc["decision"]), verified.principal, verified.signer.fingerprint,
                    str(doc["issued_at"]), str(doc.get("note", "")), str(doc.get("expires_at")), signed)  # fmt: skip


@dataclass
class Binding:
    """What the approval gate found: decisions that bind, and those ignored with the reason."""

    approvals: list[Decision] = field(default_factory=list)
    rejections: list[Decision] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def binding(signed: list[st.Signed], trust: Trust, batch: Batch, order: Order, destination: Destination,
            initiator: Signer | None, now: dt.datetime) -> Binding:  # fmt: skip
    """Every decision that binds this batch now; one approval per person counts."""
    out = Binding()
    for s in signed:
        try:
            d = judge(s, trust, batch, order, destination, initiator, now)
        except GateError as exc:
            out.ignored.append(str(exc))
            continue
        if d.decision == "reject":
            out.rejections.append(d)
        elif all(a.approver != d.approver for a in out.approvals):
            out.approvals.append(d)
    return out


# ----- the state database side ----------------------------------------------------------------------
def signed_decisions(conn: sa.Connection, batch_id: str) -> list[st.Signed]:
    """Every decision statement the ledger holds for a batch, in order, as signed."""
    return [
        st.Signed.from_dict(e.payload)
        for e in ledger.entries(conn, batch_id=batch_id, kinds=list(KINDS))
        if "statement" in e.payload
    ]


def unbacked_rows(conn: sa.Connection, batch_id: str, backed: list[st.Signed]) -> list[int]:
    """Ids of ``approvals`` rows no ledger decision backs (written outside handoff): ignored, reported."""
    known = {s.signature.strip() for s in backed}
    rows = conn.execute(sa.select(approvals.c.id, approvals.c.signature).where(approvals.c.batch_id == batch_id))
    return [r.id for r in rows if (r.signature or "").strip() not in known]


def decidable(batch_id: str, status: str | None) -> None:
    if status not in DECIDABLE:
        hint = (
            "; a delivery that cannot complete is taken back with `handoff withdraw`"
            if status == Status.DELIVERING
            else ""
        )
        raise GateError(f"batch {batch_id} is {status}; only a staged, held or awaiting batch can be decided{hint}")


def check(batch: Batch, order: Order, decision: Decision, record: validation.Validated | None) -> None:
    """Refuse a verified decision that may not be recorded: other policy, content other than validation
    recorded in the ledger (``record``), changed files, a closed batch.

    Runs outside any transaction: re-hashing a large batch must not hold the writers' lock
    (and with it an emergency stop).
    """
    decidable(batch.id, batch.status)
    if batch.policy_hash != order.policy_hash:
        raise GateError(f"batch {batch.id} was validated under {batch.order_ref}, not {order.ref}; re-run transfer")
    if not batch.staging_path or not batch.content_hash:
        raise GateError(f"batch {batch.id} has no staged content to approve")
    differs = validation.differs(batch.files, batch.content_hash, batch.rows_staged, record)
    if differs:
        raise GateError(f"batch {batch.id} is not the content validation recorded: {differs}; it cannot be approved")
    bad = verify_staged(Path(batch.staging_path), batch.files)
    if bad or content_hash(batch.files) != batch.content_hash:
        raise GateError(f"batch {batch.id} changed on disk since validation ({', '.join(bad)}); it cannot be approved")


def record(conn: sa.Connection, batch: Batch, order: Order, d: Decision, now: dt.datetime) -> Decision:
    """Record a ``check``ed decision: the ledger entry (which the gates read) and the table row (a view)."""
    lock_for_decision(conn)
    # Checked again under the lock: the batch may have moved on while its files were hashed.
    decidable(batch.id, conn.execute(sa.select(batches.c.status).where(batches.c.id == batch.id)).scalar())
    doc = json.loads(d.signed.statement)
    conn.execute(approvals.insert().values(
        batch_id=batch.id, decision=d.decision, approver=d.approver, content_hash=batch.content_hash,
        policy_hash=order.policy_hash, order_ref=order.ref, note=d.note, at=iso(now), key_fingerprint=d.key,
        statement=d.signed.statement.decode("utf-8"), signature=d.signed.signature, expires_at=d.expires_at,
    ))  # fmt: skip
    ledger.append(conn, "approved" if d.decision == "approve" else "rejected", d.approver, batch_id=batch.id,
                  order_ref=order.ref, at=now,
                  payload={**d.signed.as_dict(), "key": d.key, "content_hash": doc["content_hash"],
                           "policy_hash": doc["policy_hash"], "destination": doc["destination"],
                           "note": d.note})  # fmt: skip
    if d.decision == "reject":
        set_status(conn, batch.id, Status.REJECTED, f"rejected by {d.approver}: {d.note}", now)
    return d


def refusal(exc: Exception) -> str:
    """One line for a refused decision (signature problems are worded for the person who signed)."""
    prefix = "signature refused: " if isinstance(exc, SignatureError) else ""
    return prefix + str(exc)
