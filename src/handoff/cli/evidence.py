"""Trust and evidence: `trust show`, the recipient's `verify`, `audit verify` and `audit disclosures`."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from handoff.cli.common import (
    JsonOpt,
    _lifecycle,
    app,
    audit_app,
    emit_json,
    err,
    out,
    settings,
    trust_app,
)
from handoff.errors import HandoffError
from handoff.terminal import moment, plain


@trust_app.command("show")
def trust_show(as_json: JsonOpt = False) -> None:
    """List who may sign what: each principal, key fingerprint and role, from the reviewed trust file.

    Example: handoff trust show
    """
    from handoff.signing.trust import ROLES, load_trust, trust_path

    trust = load_trust(trust_path(settings().policy_dir))
    rows = [(s.principal, s.fingerprint, sorted(ROLES[n] for n in s.namespaces if n in ROLES)) for s in trust.signers]
    if as_json:
        emit_json({"file": str(trust.path), "sha256": trust.sha256, "skipped": list(trust.warnings),
                   "signers": [{"principal": p, "key": k, "roles": r} for p, k, r in rows]})  # fmt: skip
        return
    t = Table("principal", "key", "roles", title=f"{plain(trust.path)} (sha256 {trust.sha256[:16]}…)")
    for p, k, r in rows:
        t.add_row(plain(p), plain(k), plain(", ".join(r)))
    out.print(
        t if rows else f"{plain(trust.path)} lists nobody: no one can approve, record outcomes or start transfers"
    )


@app.command("verify")
def verify_cmd(
    url: Annotated[str, typer.Argument(help="The delivered batch: s3://BUCKET/PREFIX/ORDER.vN/BATCH/")],
    trust_file: Annotated[
        Path | None,
        typer.Option(
            "--trust", help="The published allowed_signers to check signatures against (default: the policy folder's)."
        ),
    ] = None,  # fmt: skip
    as_json: JsonOpt = False,
) -> None:
    """Verify a delivered batch as its recipient: objects, manifest and every signature, no state database.

    Needs only read access to the bucket (s3:GetObject, s3:ListBucket; s3:ListBucketVersions to
    rule out overwrites). Exits 1 naming each object that fails.
    Example: handoff verify s3://agency-handoff/cand-3-25-cv-05536-2025-12-29.v1/20260107T180000Z-1a2b3c/ --trust allowed_signers
    """
    from handoff.release.verify import verify_prefix
    from handoff.signing.trust import load_trust, trust_path

    trust = load_trust(trust_file or trust_path(settings().policy_dir))
    report = verify_prefix(url, trust)
    if as_json:
        emit_json(report.as_dict())
    elif report.ok:
        out.print(f"[green]verified[/] {plain(url)}: {report.files} file(s), {report.rows:,} rows, "
                  f"approved by {plain(', '.join(report.approvers))}")  # fmt: skip
    else:
        for p in report.problems:
            out.print(f"[red]FAIL[/] {plain(p)}", highlight=False)
    for n in report.notes:
        err.print(f"note: {n}", markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(1)


# ----- audit --------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(
    no_s3: Annotated[bool, typer.Option("--no-s3", help="Skip fetching each delivered manifest from S3.")] = False,
    trust: Annotated[
        Path | None,
        typer.Option(
            "--trust",
            help="Re-verify every signed entry against this trust "
            "file (the agency's published one; default: this host's).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the ledger against its write-once anchors, and every table and manifest against the ledger.

    Names each rewritten, missing or truncated ledger entry, each anchor hidden by a delete marker,
    each row written outside the ledger, each manifest that changed in S3 (or could not be read),
    and each object in the handoff bucket (HANDOFF_BUCKET and every bucket the ledger delivered to,
    listed with versions) that no recorded delivery accounts for; exits 1 when anything is found.
    Example: handoff audit verify
    """
    from handoff.evidence.audit import verify
    from handoff.signing.trust import load_trust

    life = _lifecycle()
    signers = load_trust(trust) if trust is not None else life.trust()
    with life.engine.connect() as conn:
        report = verify(conn, life.ctx.store, life.settings.region, check_s3=not no_s3, trust=signers,
                        buckets=[life.settings.bucket] if life.settings.bucket else [], prefix=life.settings.prefix)  # fmt: skip
    if as_json:
        emit_json(report.as_dict())
    elif report.ok:
        out.print(f"[green]ledger intact[/]: {report.entries} entries, chain verified, "
                  f"{report.anchors} anchor(s) match, every table row accounted for")  # fmt: skip
    else:
        out.print(f"[red]ledger broken[/]: {len(report.findings)} finding(s) over {report.entries} entries")
        for f in report.findings:
            out.print(f"  {f}", markup=False, highlight=False)
    for n in report.notes:
        err.print(f"note: {n}", markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("disclosures")
def audit_disclosures(
    since: Annotated[str | None, typer.Option(help="Only disclosures on or after this ISO date.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List every disclosure: when, to whom, what, how many records, who approved.

    Example: handoff audit disclosures --since 2026-01-01 --csv
    """

    from handoff.evidence.accounting import Disclosure, disclosures

    start = None
    if since:
        try:
            start = dt.datetime.fromisoformat(since)
        except ValueError:
            raise HandoffError(f"--since {since!r} is not an ISO date like 2026-01-01") from None
        start = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
    life = _lifecycle()
    with life.engine.connect() as conn:
        rows = disclosures(conn, start)
    if as_json:
        emit_json([r.as_dict() for r in rows])
    elif as_csv:
        w = csv.DictWriter(sys.stdout, fieldnames=[f.name for f in dataclasses.fields(Disclosure)])
        w.writeheader()
        for r in rows:
            w.writerow(r.as_dict())
    else:
        t = Table("kind", "at", "batch", "order", "recipient", "records", "approver", "initiator")
        for r in rows:
            t.add_row(*map(plain, (r.kind, moment(r.at), r.batch_id, r.order_ref, r.recipient, f"{r.records:,}",
                                   r.approver or "", r.initiator or "")))  # fmt: skip
        out.print(t if rows else "no disclosures")
