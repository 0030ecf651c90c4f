"""The transfer lifecycle: transfer, approve, reject, revalidate, release, withdraw, status, quarantine, lineage."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.tree import Tree

from handoff.cli.common import (
    JsonOpt,
    KeyOpt,
    SignatureOpt,
    SignedOpt,
    StatementOpt,
    _lifecycle,
    _print_outcome,
    _progress,
    _signed,
    _user,
    app,
    emit_json,
    err,
    now,
    out,
)
from handoff.errors import HandoffError
from handoff.extract import heap
from handoff.terminal import moment, plain


@app.command()
def transfer(
    db: Annotated[str, typer.Option(help="Source database URL.")],
    bucket: Annotated[str | None, typer.Option(help="Recipient S3 handoff bucket (env HANDOFF_BUCKET).")] = None,
    state: Annotated[list[str] | None, typer.Option(help="Limit to these states (USPS or FIPS); repeatable.")] = None,
    order: Annotated[str | None, typer.Option(help="Order id (default: the one in force).")] = None,
    incremental: Annotated[bool, typer.Option(help="Only rows changed since the last delivered watermark.")] = False,
    key: KeyOpt = None,
    signature: SignatureOpt = None,
    signed: SignedOpt = None,
    statement: StatementOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Extract, validate and stage a batch, then evaluate the gates.

    A transfer starts with a request signed by an operator key (handoff-operator in the trust file;
    --key, or HANDOFF_SIGNING_KEY); whoever signs it can never approve the batch. Ends quarantined, held (with reasons),
    awaiting-approval or delivered.
    Example: handoff transfer --db sqlite:///source.db --bucket agency-handoff --state TX --key ~/.ssh/id_ed25519
    """
    heap.starting()
    _start_checking_early()
    from handoff.staging.pipeline import StageRequest

    life = _lifecycle()
    target = bucket or life.settings.bucket
    if not target:
        raise HandoffError("give --bucket NAME (or set HANDOFF_BUCKET)")
    since = life.since(order, state or []) if incremental else None
    req = StageRequest(db, state or [], order_ref=order, since=since, incremental=incremental, bucket=target)
    key = key or (life.settings.signing_key if signature is None else None)  # HANDOFF_SIGNING_KEY
    req = dataclasses.replace(req, signed=_signed(life.request_statement(req, target, now()), statement, key,
                                                  signature, signed))  # fmt: skip
    with _progress() as bar:
        task = bar.add_task("extract → validate → stage", total=None)

        def progress(done: int, expected: int) -> None:
            bar.update(task, completed=done, total=expected or None)

        result = life.transfer(req, target, now(), progress)
    if as_json:
        emit_json(result.as_dict())
    else:
        _print_outcome(result)
    raise typer.Exit(0)


def _start_checking_early() -> None:
    """With checks in worker processes, start their fork server before this command's own imports,
    so that it imports GX on another core while this process opens the source."""
    from handoff.checks.server import start_server, use_processes
    from handoff.cli.common import settings

    s = settings()
    if use_processes(s.check_processes, s.workers):
        start_server()


@app.command()
def approve(
    batch: Annotated[str, typer.Argument(help="Batch id (or a unique prefix).")],
    note: Annotated[str | None, typer.Option(help="Why; part of what you sign.")] = None,
    expires_in: Annotated[
        float, typer.Option(help="Hours until the approval lapses if not yet used: 5 minutes (0.084) to 30 days (720).")
    ] = 168,
    key: KeyOpt = None,
    signature: SignatureOpt = None,
    signed: SignedOpt = None,
    statement: StatementOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Approve a batch's exact content, order version and destination, by signing it.

    Your key must hold handoff-approve in the trust file, and must not be the key (or person)
    that started the transfer. Examples:
      handoff approve 20260106T080000Z-1a2b3c --key ~/.ssh/id_ed25519 --note "checked counts"
      handoff approve 20260106T080000Z-1a2b3c --statement > approve.json   # sign elsewhere, then:
      handoff approve 20260106T080000Z-1a2b3c --signature approve.json.sig
    """
    heap.starting()
    _decide(batch, "approve", note, expires_in, key, signature, signed, statement, as_json)


@app.command()
def reject(
    batch: Annotated[str, typer.Argument(help="Batch id (or a unique prefix).")],
    note: Annotated[str, typer.Option(help="Why it is rejected (required; part of what you sign).")],
    key: KeyOpt = None,
    signature: SignatureOpt = None,
    signed: SignedOpt = None,
    statement: StatementOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Reject a batch, by signing it; it will never be delivered.

    Example: handoff reject 20260106T080000Z-1a2b3c --note "scope too broad" --key ~/.ssh/id_ed25519
    """
    _decide(batch, "reject", note, 168, key, signature, signed, statement, as_json)


def _decide(batch: str, decision: str, note: str | None, expires_in: float, key: Path | None,
            signature: Path | None, signed: Path | None, statement: bool, as_json: bool) -> None:  # fmt: skip
    life = _lifecycle()
    doc = life.decision_statement(batch, decision, note, now(), dt.timedelta(hours=expires_in))
    decided = _signed(doc, statement, key, signature, signed)
    result = life.decide(batch, decided, now())
    _wake(result, decided)
    emit_json(result.as_dict()) if as_json else _print_outcome(result)


def _wake(result: Any, decided: Any) -> None:
    """Wake a Prefect run that waits for this batch's approval: it sees the recorded decision."""
    from flows.approval_bridge import resume_waiting_run

    said = resume_waiting_run(result.batch.flow_run_id, decided)
    if said:
        err.print(said, markup=False, highlight=False)


@app.command()
def revalidate(
    batch: Annotated[str, typer.Argument(help="A superseded batch id (or prefix).")],
    key: KeyOpt = None,
    signature: SignatureOpt = None,
    signed: SignedOpt = None,
    statement: StatementOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-check a batch staged under a superseded order version against the version in force.

    Works when the new version permits the same fields for the same population; the result is a
    new batch that needs its own approval. Otherwise it says to re-extract with `handoff transfer`.
    Like a transfer, it starts with a request signed by an operator key.
    Example: handoff revalidate 20260106T080000Z-1a2b3c --key ~/.ssh/id_ed25519
    """
    life = _lifecycle()
    doc = life.revalidation_statement(batch, now())
    result = life.revalidate(batch, _signed(doc, statement, key, signature, signed), now())
    emit_json(result.as_dict()) if as_json else _print_outcome(result)


@app.command()
def release(as_json: JsonOpt = False) -> None:
    """Deliver every approved batch whose gates are all open now; show why the rest wait.

    Example: handoff release --json
    """
    heap.starting()
    results = _lifecycle().release(now())
    if as_json:
        emit_json([r.as_dict() for r in results])
    else:
        if not results:
            out.print("nothing to release")
        for r in results:
            _print_outcome(r, with_error=False)  # the failure is said once, on stderr, below
    failed = [r for r in results if r.error]
    for r in failed:
        after = "not retried: see `handoff status`" if r.batch.status == "failed" else "it resumes on the next release"
        err.print(f"delivery of {r.batch.id} failed ({after}): {r.error}", style="red", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def withdraw(
    batch: Annotated[str, typer.Argument(help="A delivered batch id, or one stuck delivering (or a prefix).")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the ledger and in the tombstone the recipient sees).")],
    as_: Annotated[str | None, typer.Option("--as", help="Your name, recorded as given (default: OS user).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Take a delivered batch back out of the handoff bucket (every object version and the manifest).

    For a court order that narrows scope before the recipient collected. Leaves WITHDRAWN.json in
    its place and accounts the withdrawal in the ledger; the disclosure stays in the accounting.
    A batch stuck delivering (its releases keep failing; no live process holds it) ends failed, any
    objects it uploaded removed and accounted.
    Example: handoff withdraw 20260106T080000Z-1a2b3c --reason "order narrowed on 2026-01-20"
    """
    result = _lifecycle().withdraw(batch, reason, as_ or _user(), now())
    emit_json(result.as_dict()) if as_json else _print_outcome(result)


@app.command()
def status(
    batch: Annotated[str | None, typer.Argument(help="One batch id (or prefix); default: all.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where each batch stands and why (gates re-evaluated now for every batch they still decide).

    Example: handoff status 20260106T080000Z-1a2b3c
    """
    heap.starting()
    life = _lifecycle()
    results = [life.refresh(batch, now())] if batch else life.statuses(now())
    if as_json:
        emit_json([r.as_dict() for r in results] if not batch else results[0].as_dict())
        return
    if batch:
        _print_outcome(results[0])
        return
    t = Table("batch", "order", "status", "staged rows", "why")
    for r in results:
        b = r.batch
        t.add_row(*map(plain, (b.id, b.order_ref, b.status, f"{b.rows_staged:,}", b.status_reason or "")))
    out.print(t if results else "no batches yet")


@app.command("quarantine")
def quarantine_cmd(
    batch: Annotated[str, typer.Argument(help="Batch id (or prefix).")],
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (medicaid_id,rule).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the rows a batch diverted to row quarantine: Medicaid ID and rule, never the value.

    Example: handoff quarantine 20260106T080000Z-1a2b3c --csv
    """
    from handoff.staging.pipeline import quarantined_rows

    life = _lifecycle()
    b = life.get(batch)
    rows = quarantined_rows(life.settings, b.id)
    if as_json:
        emit_json({"batch_id": b.id, "by_rule": b.quarantined_by_rule,
                   "rows": [{"medicaid_id": i, "rule": r} for i, r in rows]})  # fmt: skip
    elif as_csv:
        w = csv.writer(sys.stdout)
        w.writerow(["medicaid_id", "rule"])
        w.writerows(rows)
    else:
        t = Table("medicaid_id", "rule", title=f"Row quarantine of {plain(b.id)}: {len(rows):,} rows")
        for i, r in rows:
            t.add_row(plain(i), plain(r))
        out.print(t)


@app.command("lineage")
def lineage_cmd(
    batch: Annotated[str, typer.Argument(help="Batch id (or prefix).")],
    as_json: JsonOpt = False,
) -> None:
    """Walk from the delivered S3 objects back to the source query and the policy.

    Example: handoff lineage 20260106T080000Z-1a2b3c --json
    """
    from handoff.evidence.walk import walk

    doc = walk(_lifecycle(), batch)
    if as_json:
        emit_json(doc)
        return
    tree = Tree(f"[bold]batch {plain(doc['batch_id'])}[/] ({plain(doc['status'])})")
    objs = tree.add("S3 objects")
    for o in doc["objects"]:
        objs.add(plain(f"s3://{doc['bucket']}/{o['key']}  {o['bytes']:,} B  sha256 {o['sha256'][:16]}…"))
    tree.add(plain(f"manifest: {doc['manifest_key']}"))
    a = doc.get("approval")
    tree.add(plain(f"approval: {a['approver']} at {a['at']}") if a else "approval: none")
    g = tree.add("gates at delivery start")
    for d in doc["gates"]:
        g.add(plain(f"{d['gate']}: {'open' if d['open'] else 'held'} — {d['reason']}"))
    v = doc["validation"]
    tree.add(plain(f"validation: {v['result']}, {v['expectations_evaluated']} expectations over {v['chunks']} "
                   f"chunk(s); suite {doc['suite']['path']} sha256 {doc['suite']['hash'][:16]}…"))  # fmt: skip
    p = doc["policy"]
    tree.add(plain(f"policy: {p['order_ref']} file {p['file']} hash {p['policy_hash'][:16]}…"))
    s = doc["source"]
    src = tree.add(plain(f"source: {s['url']} tables {', '.join(s['tables'])} snapshot {moment(s['snapshot_at'])}"))
    src.add(plain(f"query sha256 {s['query_hash'][:16]}…: {s['query'][:160]}…"))
    tree.add(plain(f"flow run: {doc.get('flow_run_id') or 'none (CLI)'}; initiator {doc['initiator']}"))
    led = tree.add("ledger")
    for e in doc["ledger"]:
        led.add(plain(f"#{e['seq']} {e['at']} {e['kind']} by {e['actor']}"))
    out.print(tree)
