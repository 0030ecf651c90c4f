"""What ``handoff audit verify`` proves: the ledger as anchored, and every table as the ledger says.

Checks, each finding naming the row or object:

* the SHA-256 chain itself (a changed row, a gap in the sequence);
* the chain against every anchor in the write-once audit bucket: a row whose hash differs from
  its anchor was rewritten (even if the chain was recomputed after), a missing row was deleted,
  a database that ends before the newest anchor was truncated; entries after the newest anchor
  are reported as not yet anchored; an anchor hidden by a delete marker, or a delivery's start
  that no anchor covers, is tampering;
* every signed entry (decisions, outcomes, stop clearings, transfer requests, order versions
  first use) against a trust file: run with the agency's published one, it names what a key
  enrolled only on this host signed;
* the ``approvals``, ``deliveries`` and ``batches`` tables against the ledger, so a row written
  outside it is named; every recorded delivery against its manifest in S3; and the handoff
  bucket itself, listed with versions: an object (or hidden object) no recorded delivery
  accounts for is a disclosure outside handoff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from handoff.errors import SignatureError
from handoff.signing import statement as st
from handoff.signing.trust import COUNSEL, Trust
from handoff.state import ledger
from handoff.state.schema import approvals, batches, deliveries
from handoff.storage.write_once import Anchor, AuditStore, Listed, list_versions


@dataclass(frozen=True)
class Finding:
    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass
class AuditReport:
    entries: int = 0
    anchors: int = 0
    unanchored: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "anchors": self.anchors, "unanchored": self.unanchored,
                "findings": [{"where": f.where, "problem": f.problem} for f in self.findings], "notes": self.notes}  # fmt: skip


def against_anchors(rows: dict[int, str], anchors: list[Anchor], started: list[int] | None = None) -> list[Finding]:
    """Pure: every anchor must find its row, with its hash; no anchor may be hidden; every entry that
    started a delivery (``started``: their sequence numbers) must be covered by an anchor."""
    out: list[Finding] = [Finding(a.key, "hidden by a delete marker: someone deleted this anchor (it still stands, "
                                         "read through its version)") for a in anchors if a.hidden]  # fmt: skip
    newest = max((a.seq for a in anchors), default=0)
    out += [Finding(f"ledger entry {seq}", "started a delivery but no anchor covers it: the anchor written before "
                                           "any byte moved is missing") for seq in started or [] if seq > newest]  # fmt: skip
    last = max(rows, default=0)
    for a in anchors:
        if a.seq > last:
            out.append(Finding(f"ledger entry {a.seq}", f"missing: the ledger ends at entry {last}, but an anchor written "
                                                        f"{a.at} proves it existed (truncated)"))  # fmt: skip
        elif a.seq not in rows:
            out.append(Finding(f"ledger entry {a.seq}", f"missing: deleted after it was anchored at {a.at}"))
        elif rows[a.seq] != a.hash:
            out.append(Finding(f"ledger entry {a.seq}", f"rewritten: its hash differs from the anchor written {a.at}"))
    return out


def tables_against_ledger(conn: sa.Connection) -> list[Finding]:
    """Rows in approvals, deliveries and batches that no ledger entry accounts for."""
    entries = ledger.entries(conn)
    signatures = {str(e.payload.get("signature", "")).strip() for e in entries if e.kind in ("approved", "rejected")}
    started = {e.batch_id for e in entries if e.kind == "delivery-started"}
    recorded = {e.batch_id for e in entries if e.kind in ("staged", "quarantined", "revalidated")}
    out = [Finding(f"approvals row {r.id}", f"batch {r.batch_id}: written outside the ledger (no signed entry)")
           for r in conn.execute(sa.select(approvals.c.id, approvals.c.batch_id, approvals.c.signature))
           if (r.signature or "").strip() not in signatures]  # fmt: skip
    out += [Finding(f"deliveries row {r.batch_id}", "written outside the ledger (no delivery-started entry)")
            for r in conn.execute(sa.select(deliveries.c.batch_id)) if r.batch_id not in started]  # fmt: skip
    out += [Finding(f"batches row {r.id}", "written outside the ledger (never staged by handoff)")
            for r in conn.execute(sa.select(batches.c.id)) if r.id not in recorded]  # fmt: skip
    return out


def manifests_in_s3(conn: sa.Connection, region: str) -> tuple[list[Finding], list[str]]:
    """Every delivered entry's manifest (withdrawn batches aside), fetched and hashed: gone, unreadable
    or changed is a finding, since what could not be checked is not shown intact."""
    from handoff.storage.deliver import s3_client

    findings: list[Finding] = []
    s3 = s3_client(region)
    withdrawn = {e.batch_id for e in ledger.entries(conn, kinds=["withdrawn"])}
    for e in ledger.entries(conn, kinds=["delivered"]):
        if e.batch_id in withdrawn:
            continue
        url = str(e.payload.get("recipient", ""))
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        key = prefix + "manifest.json"
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - any failure means this delivery could not be checked
            findings.append(Finding(f"s3://{bucket}/{key}", f"could not be read ({_why(exc)}); the delivery "
                                    f"ledger entry {e.seq} recorded cannot be checked"))  # fmt: skip
            continue
        if hashlib.sha256(body).hexdigest() != e.payload.get("manifest_sha256"):
            findings.append(Finding(f"s3://{bucket}/{key}", f"differs from the manifest ledger entry {e.seq} recorded"))
    return findings, []


def _why(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return f"S3 answered {exc.response.get('Error', {}).get('Code', '?')}"
    return type(exc).__name__


def unaccounted(listed: dict[str, list[Listed]], started: dict[tuple[str, str], str]) -> list[Finding]:
    """Pure: objects in the handoff bucket(s) that no recorded delivery accounts for, and delivered
    objects hidden by a delete marker (deleted outside handoff, which withdraws by removing versions).

    ``listed``: each bucket's keys as its version listing shows them; ``started``: (bucket, prefix)
    of every ``delivery-started`` entry, with its batch."""
    out = []
    for bucket, items in sorted(listed.items()):
        prefixes = [p for (b, p) in started if b == bucket]
        for item in items:
            where = f"s3://{bucket}/{item.key}"
            if not any(item.key.startswith(p) for p in prefixes):
                hidden = " (now hidden by a delete marker)" if item.hidden else ""
                out.append(Finding(where, f"no recorded delivery accounts for this object{hidden}: it was "
                                          "uploaded outside handoff, a disclosure the ledger does not list"))  # fmt: skip
            elif item.hidden:
                out.append(Finding(where, "hidden by a delete marker: a delivered object was deleted outside "
                                          "handoff (a withdrawal removes every version and is recorded)"))  # fmt: skip
    return out


def handoff_bucket(conn: sa.Connection, buckets: list[str], prefix: str, region: str) -> list[Finding]:
    """List every handoff bucket (with versions) and name what no recorded delivery accounts for."""
    from handoff.storage.deliver import s3_client

    started = {(str(e.payload.get("bucket")), str(e.payload.get("prefix"))): str(e.batch_id)
               for e in ledger.entries(conn, kinds=["delivery-started"])}  # fmt: skip
    names = sorted({*buckets, *(b for b, _ in started)} - {"", "None"})
    s3 = s3_client(region)
    listed: dict[str, list[Listed]] = {}
    findings: list[Finding] = []
    for bucket in names:
        try:
            listed[bucket] = list_versions(s3, bucket, prefix.strip("/"))
        except Exception as exc:  # noqa: BLE001 - not listable means not checked: say so, exit 1
            findings.append(Finding(f"s3://{bucket}/", f"could not be listed with its versions ({_why(exc)}); "
                                    "objects uploaded outside handoff cannot be ruled out"))  # fmt: skip
    return findings + unaccounted(listed, started)


SIGNED_KINDS = {"approved": st.DECISION, "rejected": st.DECISION, "hearing-outcome": st.HEARING_OUTCOME,
                "hold-cleared": st.HOLD_CLEAR}  # fmt: skip


def signatures(conn: sa.Connection, trust: Trust) -> list[Finding]:
    """Every signed decision in the ledger, and every batch's transfer request, re-verified against
    ``trust`` as of when it was recorded; and every order version's first use by a counsel key in it.

    Run with the agency's published trust file, this names what a key enrolled only on this host signed."""
    out: list[Finding] = []
    for e in ledger.entries(conn, kinds=[*SIGNED_KINDS, "order-version"]):
        where = f"ledger entry {e.seq}"
        if e.kind == "order-version":
            signer = next((x for x in trust.signers if x.fingerprint == e.payload.get("key")), None)
            if signer is None or COUNSEL not in signer.namespaces:
                out.append(Finding(where, f"{e.payload.get('order_ref')} was first used under a counsel signature by "
                                          f"key {e.payload.get('key')}, which {trust.path} does not list for counsel"))  # fmt: skip
            continue
        try:
            st.verify(trust, st.Signed.from_dict(e.payload), SIGNED_KINDS[e.kind], dt.datetime.fromisoformat(e.at))
        except (SignatureError, ValueError) as exc:
            out.append(Finding(where, f"{e.kind} recorded for {e.actor} does not verify under {trust.path} ({exc})"))
    rows = conn.execute(sa.select(batches.c.id, batches.c.created_at, batches.c.request_statement,
                                  batches.c.request_signature))  # fmt: skip
    for r in rows:
        try:
            at = dt.datetime.fromisoformat(str(r.created_at))
            st.verify(trust, st.Signed((r.request_statement or "").encode(), r.request_signature or ""),
                      st.TRANSFER_REQUEST, at)  # fmt: skip
        except (SignatureError, ValueError) as exc:
            out.append(
                Finding(f"batches row {r.id}", f"its transfer request does not verify under {trust.path} ({exc})")
            )
    return out


def verify(conn: sa.Connection, store: AuditStore | None, region: str, check_s3: bool = True,
           buckets: list[str] | None = None, prefix: str = "", trust: Trust | None = None) -> AuditReport:  # fmt: skip
    """``buckets``: the handoff bucket(s) to list besides those the ledger names; ``prefix`` their key prefix;
    ``trust``: the trust file every signed entry is re-verified against (the published one, ideally)."""
    report = AuditReport()
    chain = ledger.verify(conn)
    report.entries = chain.checked
    if not chain.ok:
        report.findings.append(Finding(f"ledger entry {chain.broken_seq}", str(chain.problem)))
    rows = {int(r.seq): str(r.hash) for r in conn.execute(sa.select(ledger.ledger.c.seq, ledger.ledger.c.hash))}
    report.entries = len(rows)
    if store is None:
        report.notes.append("no HANDOFF_AUDIT_BUCKET: the chain is checked, but nothing proves it was not rewritten")
    else:
        name = ledger.ledger_id(conn) or ""
        opened = conn.execute(sa.select(ledger.ledger.c.kind).where(ledger.ledger.c.seq == 1)).scalar()
        anchors = store.anchors(name, legacy=opened not in (None, ledger.OPENED)) if name else []
        report.anchors = len(anchors)
        started = [e.seq for e in ledger.entries(conn, kinds=["delivery-started"])]
        report.findings += against_anchors(rows, anchors, started)
        others = [n for n in store.ledgers() if n != name]
        if others:
            report.notes.append(f"the audit bucket also holds the anchors of {len(others)} other ledger(s) "
                                f"({', '.join(others[:5])}); this ledger is {name or '(empty)'}")  # fmt: skip
        newest = max((a.seq for a in anchors), default=0)
        report.unanchored = sum(1 for s in rows if s > newest)
        if report.unanchored:
            report.notes.append(f"{report.unanchored} newest entr{'y is' if report.unanchored == 1 else 'ies are'} "
                                "not anchored yet (the next write anchors them)")  # fmt: skip
    report.findings += tables_against_ledger(conn)
    if trust is not None:
        report.findings += signatures(conn, trust)
    if check_s3:
        found, notes = manifests_in_s3(conn, region)
        report.findings += found + handoff_bucket(conn, buckets or [], prefix, region)
        report.notes += notes
    return report
