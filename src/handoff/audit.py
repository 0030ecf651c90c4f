"""What ``handoff audit verify`` proves: the ledger as anchored, and every table as the ledger says.

Checks, each finding naming the row or object:

* the SHA-256 chain itself (a changed row, a gap in the sequence);
* the chain against every anchor in the write-once audit bucket: a row whose hash differs from
  its anchor was rewritten (even if the chain was recomputed after), a missing row was deleted,
  a database that ends before the newest anchor was truncated; entries after the newest anchor
  are reported as not yet anchored;
* the ``approvals``, ``deliveries`` and ``batches`` tables against the ledger, so a row written
  outside it is named; and every recorded delivery against its manifest in S3.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from handoff import ledger
from handoff.evidence import Anchor, AuditStore
from handoff.state import approvals, batches, deliveries


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


def against_anchors(rows: dict[int, str], anchors: list[Anchor]) -> list[Finding]:
    """Pure: every anchor must find its row, with its hash."""
    out: list[Finding] = []
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
    """Every delivered entry's manifest, fetched and hashed: gone or changed is a finding."""
    from handoff.deliver import s3_client

    findings, notes = [], []
    s3 = s3_client(region)
    for e in ledger.entries(conn, kinds=["delivered"]):
        url = str(e.payload.get("recipient", ""))
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        key = prefix + "manifest.json"
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - withdrawn, or no read access: a note, the ledger still stands
            notes.append(f"could not read s3://{bucket}/{key} ({type(exc).__name__})")
            continue
        if hashlib.sha256(body).hexdigest() != e.payload.get("manifest_sha256"):
            findings.append(Finding(f"s3://{bucket}/{key}", f"differs from the manifest ledger entry {e.seq} recorded"))
    return findings, notes


def verify(conn: sa.Connection, store: AuditStore | None, region: str, check_s3: bool = True) -> AuditReport:
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
        anchors = store.anchors()
        report.anchors = len(anchors)
        report.findings += against_anchors(rows, anchors)
        newest = max((a.seq for a in anchors), default=0)
        report.unanchored = sum(1 for s in rows if s > newest)
        if report.unanchored:
            report.notes.append(f"{report.unanchored} newest entr{'y is' if report.unanchored == 1 else 'ies are'} "
                                "not anchored yet (the next write anchors them)")  # fmt: skip
    report.findings += tables_against_ledger(conn)
    if check_s3:
        found, notes = manifests_in_s3(conn, region)
        report.findings += found
        report.notes += notes
    return report
