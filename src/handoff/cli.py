"""The ``handoff`` command line: a thin layer over the library.

Every command has ``--help`` with an example; most have ``--json``. A user mistake prints one
line and exits 2; only a bug shows a traceback.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from handoff.config import Settings, load_settings
from handoff.errors import HandoffError
from handoff.terminal import SafeConsole, plain, styled

app = typer.Typer(
    help="Move only what a court permitted, only when permitted, only after a person with the authority signed it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Show, build and test the court-order policy.", no_args_is_help=True)
court_app = typer.Typer(help="The court calendar: hearings and their outcomes.", no_args_is_help=True)
hearing_app = typer.Typer(help="Add and list hearings.", no_args_is_help=True)
hold_app = typer.Typer(help="Emergency stop: holds every release and stops a delivery in flight.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify the ledger; list disclosures.", no_args_is_help=True)
trust_app = typer.Typer(help="The reviewed trust file: who may sign what.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(court_app, name="court")
court_app.add_typer(hearing_app, name="hearing")
app.add_typer(hold_app, name="hold")
app.add_typer(audit_app, name="audit")
app.add_typer(trust_app, name="trust")

# Piped output keeps whole lines: wide tables are not truncated and an error stays one line.
# Every string they render is cleaned of control and escape sequences (handoff.terminal); a value from
# outside inside a markup line also goes through plain().
out = SafeConsole(width=None if sys.stdout.isatty() else 200)
err = SafeConsole(stderr=True, width=None if sys.stderr.isatty() else 10_000)
_overrides: dict[str, Any] = {}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key", help="Sign here with this SSH key (a private key, or its .pub with the key loaded in ssh-agent)."
    ),
]
SignatureOpt = Annotated[
    Path | None,
    typer.Option(
        "--signature", help="A signature made elsewhere: `ssh-keygen -Y sign -n NAMESPACE -f KEY FILE` writes FILE.sig."
    ),
]
SignedOpt = Annotated[
    Path | None,
    typer.Option(
        "--signed", help="The statement file --signature covers (default: the signature's path without .sig)."
    ),
]
StatementOpt = Annotated[
    bool,
    typer.Option("--statement", help="Print the exact statement to sign (canonical JSON) and exit; sign it elsewhere."),
]


def settings() -> Settings:
    return load_settings(**_overrides)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _signed(doc: dict[str, Any], statement: bool, key: Path | None, signature: Path | None,
            signed: Path | None) -> Any:  # fmt: skip
    """Print the statement (``--statement``) and exit, or return it signed (``--key``/``--signature``)."""
    from handoff import statement as st

    if statement:
        data = st.canonical(doc)
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        err.print(f"sign it: ssh-keygen -Y sign -n {st.NAMESPACE[doc['kind']]} -f ~/.ssh/id_ed25519 FILE  "
                  "(then pass --signature FILE.sig)", markup=False, highlight=False)  # fmt: skip
        raise typer.Exit(0)
    return st.obtain(doc, key, signature, signed)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"


@app.callback()
def _main(
    home: Annotated[
        Path | None, typer.Option(help="State and staging folder (env HANDOFF_HOME; default ./.handoff).")
    ] = None,
    state_url: Annotated[str | None, typer.Option(help="State database URL (env HANDOFF_STATE_URL).")] = None,
    policy_dir: Annotated[
        Path | None, typer.Option(help="Policy folder with orders/ and suites/ (env HANDOFF_POLICY_DIR).")
    ] = None,
) -> None:
    """Court-governed transfer of Medicaid enrollee records to an S3 handoff bucket.

    Configuration order: flags, HANDOFF_* environment variables, handoff.toml, defaults.
    """
    _overrides.update(home=home, state_url=state_url, policy_dir=policy_dir)


# ----- seed ---------------------------------------------------------------------------------
@app.command()
def seed(
    db: Annotated[
        str, typer.Option(help="Source database URL, e.g. sqlite:///source.db or postgresql+psycopg://user@host/db.")
    ],
    rows: Annotated[int, typer.Option(min=1, help="Enrollees to generate.")] = 10_000,
    seed_: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same data.")] = 42,
    replace: Annotated[bool, typer.Option(help="Drop and recreate existing enrollees/claims tables.")] = False,
    dirty_rate: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of rows given a dirty value.")] = 0.005,
) -> None:
    """Create a synthetic T-MSIS-style source (enrollees + claims). Synthetic data only.

    Example: handoff seed --db sqlite:///source.db --rows 100000 --seed 7
    """
    from handoff.extract import open_source
    from handoff_tools.seed import seed_database

    engine = open_source(db, must_exist=False)
    with _progress() as bar:
        task = bar.add_task("seeding enrollees", total=rows)
        n = seed_database(engine, rows, seed_, replace=replace, dirty_rate=dirty_rate,
                          progress=lambda k: bar.advance(task, k))  # fmt: skip
    err.print(f"[green]seeded {n:,} enrollees[/] into {engine.url.render_as_string(hide_password=True)}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)  # fmt: skip


# ----- policy -------------------------------------------------------------------------------
@policy_app.command("show")
def policy_show(
    order: Annotated[str | None, typer.Option(help="Order id or ORDER@vN (default: the one in force).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the order in force: dates, permitted fields, population rule, scope, hearings.

    Example: handoff policy show --json
    """
    from handoff.order import PolicySet

    policies = PolicySet(settings().policy_dir)
    o = policies.current(order)
    if as_json:
        emit_json({**o.model_dump(mode="json", by_alias=True), "ref": o.ref, "policy_hash": o.policy_hash,
                   "columns": o.columns, "file": str(policies.file_for(o))})  # fmt: skip
        return
    out.print(f"[bold]{o.ref}[/]  {plain(o.case.caption)}, {plain(o.case.court)} {plain(o.case.number)}")
    out.print(f"signed {o.signed_date}; effective {o.effective_instant.isoformat()} ({plain(o.court_time_zone)})")
    out.print(f"file {plain(policies.file_for(o))}; policy hash {o.policy_hash[:16]}…")
    t = Table("category", "columns", title="Permitted fields")
    for cat, cols in o.permitted_fields.items():
        t.add_row(plain(cat), plain(", ".join(cols)))
    t.add_row("name (flag)", ("ON: " if o.name_flag else "off: ") + plain(", ".join(o.name_fields)))
    out.print(t)
    p = Table("column", "must be", "else excluded as", title=f"Population (all of; null → {o.population.on_null})")
    for c in o.population.all_of:
        must = f"in {c.in_}" if c.in_ is not None else ("null" if c.is_null else "not null")
        p.add_row(plain(c.column), plain(must), plain(c.reason))
    out.print(p)
    out.print("plaintiff states: " + plain(", ".join(f"{s.state}{'' if s.verified else '?'}" for s in o.plaintiff_states))
              + "   (? = unverified, treated as plaintiff)")  # fmt: skip
    sc = o.jurisdiction_scope
    out.print(
        plain(f"scope: plaintiff={sc.plaintiff} non-plaintiff={sc.non_plaintiff} overrides={sc.overrides or 'none'}")
    )
    for h in o.hearings:
        out.print(
            plain(f"hearing {h.id} at {h.at} ({o.court_time_zone}): {h.title} — outcome {h.outcome or 'not recorded'}")
        )


@policy_app.command("build")
def policy_build(
    check: Annotated[bool, typer.Option(help="Only check that checked-in suites match their orders.")] = False,
) -> None:
    """Write the Great Expectations suite JSON for every order into expectations/suites.

    Example: handoff policy build --check
    """
    from handoff.order import PolicySet
    from handoff.suite import load_suite, write_suites

    policies = PolicySet(settings().policy_dir)
    if check:
        for o in policies.orders.values():
            load_suite(policies, o)
        err.print(f"[green]{len(policies.orders)} suite(s) match their orders[/]")
        return
    for path in write_suites(policies):
        err.print(f"wrote {path}", markup=False, highlight=False)


@policy_app.command("sign")
def policy_sign(
    order_file: Annotated[Path, typer.Argument(help="The order version file to sign (orders/NAME.yaml).")],
    key: KeyOpt = None,
    signature: SignatureOpt = None,
) -> None:
    """Sign an order version as counsel: writes FILE.sig, a signature over the file's exact bytes.

    The same as `ssh-keygen -Y sign -n handoff-counsel -f KEY FILE`; --signature installs one made
    that way. An order version is in force only once counsel signed it; editing the file voids it.
    Example: handoff policy sign expectations/orders/2026-02-01.v2.yaml --key ~/.ssh/counsel_ed25519
    """
    import shutil

    from handoff import signoff

    life = _lifecycle()
    if key is not None and signature is not None:
        raise HandoffError("give --key or --signature, not both")
    if key is not None:
        signoff.sign_file(order_file, key)
    elif signature is not None:
        shutil.copyfile(signature, signoff.signature_path(order_file))
    signer = signoff.verify_file(life.trust(), order_file, now())
    out.print(f"{plain(order_file.name)}: signed by counsel [bold]{plain(signer.principal)}[/] ({signer.fingerprint})")


@policy_app.command("whatif")
def policy_whatif(
    db: Annotated[str, typer.Option(help="Source database URL.")],
    order: Annotated[str | None, typer.Option(help="Order id or ORDER@vN (default: the one in force).")] = None,
    state: Annotated[list[str] | None, typer.Option(help="Limit to these states (USPS or FIPS); repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Count, before anything moves, who the order would disclose per state and who it excludes, by reason.

    Reads only aggregate counts; writes no data. Example: handoff policy whatif --db sqlite:///source.db
    """
    from handoff import extract
    from handoff.order import PolicySet
    from handoff.pipeline import parse_states
    from handoff.population import INCLUDED, reason_labels

    o = PolicySet(settings().policy_dir).current(order)
    engine = extract.open_source(db)
    counts = extract.exclusion_counts(engine, o, parse_states(state) if state else None)
    totals = extract.totals(counts)
    labels = reason_labels(o)
    if as_json:
        emit_json({"order_ref": o.ref, "by_jurisdiction": counts, "totals": totals, "reasons": labels,
                   "disclosed": totals.get(INCLUDED, 0)})  # fmt: skip
        return
    reasons = sorted(r for r in totals if r != INCLUDED)
    t = Table("state", "plaintiff", "disclosed", *map(plain, reasons), title=f"What {o.ref} would disclose")
    for st in sorted(counts):
        row = counts[st]
        t.add_row(plain(st), "yes" if st in o.plaintiff_abbrs else "", f"{row.get(INCLUDED, 0):,}",
                  *(f"{row.get(r, 0):,}" for r in reasons))  # fmt: skip
    t.add_row("[bold]total", "", f"[bold]{totals.get(INCLUDED, 0):,}", *(f"[bold]{totals[r]:,}" for r in reasons))
    out.print(t)
    for r in reasons:
        out.print(f"  {plain(r)}: {plain(labels.get(r, r))}")


# ----- transfer lifecycle --------------------------------------------------------------------
def _lifecycle():  # type: ignore[no-untyped-def]
    from handoff.transfer import Lifecycle

    return Lifecycle(settings())


def _print_outcome(o: Any, with_error: bool = True) -> None:
    b = o.batch
    colour = {"delivered": "green", "quarantined": "red", "held": "yellow", "rejected": "red", "failed": "red",
              "withdrawn": "magenta"}.get(b.status, "cyan")  # fmt: skip
    out.print(f"batch [bold]{plain(b.id)}[/]  [{colour}]{plain(b.status)}[/]  ({plain(b.order_ref)})")
    out.print(
        f"  rows: {b.rows_extracted:,} extracted, {b.rows_quarantined:,} row-quarantined, {b.rows_staged:,} staged"
    )
    excl = b.excluded.get("totals", {})
    if excl:
        out.print("  excluded by reason: " + plain(", ".join(f"{k}={v:,}" for k, v in sorted(excl.items()))))
    if b.validation.get("read_path"):
        out.print(f"  read: {plain(b.validation['read_path'])}")
    if b.validation.get("checked_in"):
        out.print(f"  checked (GX): in {plain(b.validation['checked_in'])}")
    if b.status_reason:
        out.print(f"  why: {plain(b.status_reason)}")
    if o.gates:
        from handoff.report import gate_table

        out.print(gate_table(o.gates))
    if o.manifest_key:
        out.print(f"  manifest: s3://{plain(b.bucket)}/{plain(o.manifest_key)}")
    if with_error and getattr(o, "error", None):
        out.print(f"  [red]delivery failed:[/] {plain(o.error)}")


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
    from handoff.pipeline import StageRequest

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
    """Show where each batch stands and why (gates re-evaluated now).

    Example: handoff status 20260106T080000Z-1a2b3c
    """
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
    from handoff.pipeline import quarantined_rows

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
    from handoff.walk import walk

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
    src = tree.add(plain(f"source: {s['url']} tables {', '.join(s['tables'])} snapshot {s['snapshot_at']}"))
    src.add(plain(f"query sha256 {s['query_hash'][:16]}…: {s['query'][:160]}…"))
    tree.add(plain(f"flow run: {doc.get('flow_run_id') or 'none (CLI)'}; initiator {doc['initiator']}"))
    led = tree.add("ledger")
    for e in doc["ledger"]:
        led.add(plain(f"#{e['seq']} {e['at']} {e['kind']} by {e['actor']}"))
    out.print(tree)


# ----- court --------------------------------------------------------------------------------
def _parse_at(value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise HandoffError(f"--at {value!r} is not ISO 8601; e.g. 2026-02-10T09:00 (court local time)") from None


@hearing_app.command("add")
def hearing_add(
    order: Annotated[str, typer.Option(help="Order id the hearing concerns.")],
    at: Annotated[str, typer.Option(help="ISO 8601 date-time; without offset = court local time.")],
    title: Annotated[str, typer.Option(help="What the hearing is about.")],
    as_: Annotated[str | None, typer.Option("--as", help="Who records this (default: OS user).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a hearing; until its outcome is recorded, every batch of that order is held.

    Example: handoff court hearing add --order cand-3-25-cv-05536-2025-12-29 --at 2026-02-10T09:00 --title "Status conference"
    """
    from handoff.court import add_hearing

    life = _lifecycle()
    with life.ctx.write() as conn:
        h = add_hearing(conn, life.policies, order, _parse_at(at), title, as_ or _user(), now())
    emit_json(h.as_dict()) if as_json else out.print(
        f"added hearing [bold]{plain(h.id)}[/] at {h.at}: {plain(h.title)}"
    )


@hearing_app.command("list")
def hearing_list(as_json: JsonOpt = False) -> None:
    """List every hearing, its source and its outcome.

    Example: handoff court hearing list --json
    """
    from handoff.court import calendar

    life = _lifecycle()
    with life.engine.connect() as conn:
        hs = calendar(conn, life.policies, life.trust(), now())
    if as_json:
        emit_json([h.as_dict() for h in hs])
        return
    t = Table("hearing", "order", "at", "title", "outcome", "recorded by", "source")
    for h in hs:
        t.add_row(*map(plain, (h.id, h.order_id, h.at, h.title)), plain(h.outcome) if h.outcome else styled("pending", "yellow"),
                  plain(h.outcome_by or ""), plain(h.source))  # fmt: skip
    out.print(t)


@court_app.command("outcome")
def court_outcome(
    hearing: Annotated[str, typer.Argument(help="Hearing id from `handoff court hearing list`.")],
    result: Annotated[str, typer.Option(help="upheld, narrowed, enjoined or vacated.")],
    order_file: Annotated[Path | None, typer.Option(help="The new order version (required for narrowed).")] = None,
    key: KeyOpt = None,
    signature: SignatureOpt = None,
    signed: SignedOpt = None,
    statement: StatementOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Record a hearing's outcome, signed by counsel (handoff-counsel in the trust file).

    narrowed installs a new order version, which must only narrow the one in force and be signed
    by counsel itself (FILE.sig beside it; with --key both are signed); enjoined or vacated hold
    everything. Example: handoff court outcome cand-2026-01-02 --result upheld --key ~/.ssh/counsel_ed25519
    """
    from handoff import signoff
    from handoff.court import calendar, check_narrower, outcome_statement, record_outcome

    life = _lifecycle()
    trust = life.trust()
    with life.engine.connect() as conn:
        known = {h.id: h for h in calendar(conn, life.policies, trust, now())}
    if hearing not in known:
        raise HandoffError(f"no hearing {hearing!r}; `handoff court hearing list` shows hearings")
    doc = outcome_statement(known[hearing], result, order_file, now())
    outcome = _signed(doc, statement, key, signature, signed)
    if order_file is not None and key is not None and not signoff.signature_path(order_file).exists():
        check_narrower(life.policies.current(known[hearing].order_id), order_file)  # never sign a wider file
        signoff.sign_file(order_file, key)
    with life.ctx.write() as conn:
        h = record_outcome(conn, life.policies, trust, outcome, now(), order_file)
    emit_json(h.as_dict()) if as_json else out.print(
        f"hearing {plain(h.id)}: [bold]{plain(h.outcome)}[/] recorded by {plain(h.outcome_by)}"
    )


# ----- hold ---------------------------------------------------------------------------------
@hold_app.command("set")
def hold_set(
    reason: Annotated[str, typer.Option(help="Why deliveries stop (recorded in the ledger).")],
    as_: Annotated[str | None, typer.Option("--as", help="Your name, recorded as given (default: OS user).")] = None,
) -> None:
    """Stop every delivery, within seconds, without a deploy. Anyone may pull the alarm.

    Example: handoff hold set --reason "TRO motion filed"
    """
    from handoff.hold import set_stop

    life = _lifecycle()
    with life.ctx.write() as conn:
        s = set_stop(conn, reason, as_ or _user(), now())
    out.print(f"emergency stop [red]SET[/] ({plain(s.id)}) by {plain(s.set_by)}: {plain(s.reason)}")
    if life.ctx.store is None:
        err.print("note: no HANDOFF_AUDIT_BUCKET: this stop holds releases against this state database only",
                  markup=False, highlight=False)  # fmt: skip
        return
    try:
        life.ctx.store.mark_stop(s.id, s.reason, s.set_by, now())
    except HandoffError as exc:
        err.print(f"warning: the stop is set here but not in the audit bucket ({exc}); run hold set again",
                  markup=False, highlight=False)  # fmt: skip


@hold_app.command("clear")
def hold_clear(
    reason: Annotated[str, typer.Option(help="Why deliveries may resume (part of what you sign).")],
    key: KeyOpt = None,
    signature: SignatureOpt = None,
    signed: SignedOpt = None,
    statement: StatementOpt = False,
) -> None:
    """Clear every active emergency stop, signed by an operator (handoff-operator in the trust file).

    Example: handoff hold clear --reason "TRO denied" --key ~/.ssh/id_ed25519
    """
    from handoff import hold

    life = _lifecycle()
    trust = life.trust()
    with life.engine.connect() as conn:
        active = life.gatekeeper.stops(conn, trust, now()).active
    doc = hold.clear_statement(active, reason, now())
    clearing = _signed(doc, statement, key, signature, signed)
    with life.ctx.write() as conn:
        v = hold.clear(conn, trust, clearing, now(), {s.id for s in active})
    if life.ctx.store is not None:  # the bucket's markers stop every state database: clear them there too
        life.ctx.store.mark_clear(clearing, [str(x) for x in v.doc.get("stops", [])], now())
    out.print(f"emergency stop [green]cleared[/] by {plain(v.principal)}: {plain(v.doc.get('reason'))}")


@hold_app.command("list")
def hold_list(as_json: JsonOpt = False) -> None:
    """List every emergency stop and whether a valid signature cleared it.

    Example: handoff hold list
    """
    from handoff import hold

    life = _lifecycle()
    with life.engine.connect() as conn:
        stops, _ = hold.history(conn)
        state = life.gatekeeper.stops(conn, life.trust(), now())
    stops += [s for s in state.active if s.id not in {x.id for x in stops}]  # set elsewhere, seen in the bucket
    active = {s.id for s in state.active}
    if as_json:
        emit_json([{**s.as_dict(), "active": s.id in active} for s in stops])
        return
    t = Table("stop", "set by", "at", "reason", "state")
    for s in stops:
        state_cell = styled("active", "red") if s.id in active else styled("cleared", "green")
        t.add_row(*map(plain, (s.id, s.set_by, s.set_at, s.reason)), state_cell)
    out.print(t if stops else "no emergency stop was ever set")


# ----- trust and recipient verification ------------------------------------------------------
@trust_app.command("show")
def trust_show(as_json: JsonOpt = False) -> None:
    """List who may sign what: each principal, key fingerprint and role, from the reviewed trust file.

    Example: handoff trust show
    """
    from handoff.trust import ROLES, load_trust, trust_path

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
    from handoff.trust import load_trust, trust_path
    from handoff.verify import verify_prefix

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
    from handoff.audit import verify
    from handoff.trust import load_trust

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
    import dataclasses

    from handoff.accounting import Disclosure, disclosures

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
            t.add_row(*map(plain, (r.kind, r.at, r.batch_id, r.order_ref, r.recipient, f"{r.records:,}",
                                   r.approver or "", r.initiator or "")))  # fmt: skip
        out.print(t if rows else "no disclosures")


# ----- demo / bench / serve -----------------------------------------------------------------
@app.command()
def demo(
    rows: Annotated[int, typer.Option(min=100, help="Synthetic enrollees to seed.")] = 20_000,
) -> None:
    """Tell the whole story on embedded defaults: seed, held transfer, outcome, approval, delivery, lineage.

    Uses SQLite, a local S3-compatible endpoint with KMS on loopback, and DEMO keys; ends with the
    recipient's check against the published trust file, passing, then failing for a second batch
    sent after an insider swapped counsel's key on the sender's host.
    Everything lives under HANDOFF_HOME/demo and is recreated on each run.
    Example: handoff demo --rows 50000
    """
    from handoff_tools.demo import run_demo

    run_demo(settings(), rows, out)


@app.command()
def bench(
    db: Annotated[
        str, typer.Option(help="PostgreSQL URL to seed and read (created if missing).")
    ] = "postgresql+psycopg://postgres@127.0.0.1:5432/handoff_bench",
    rows: Annotated[
        list[int] | None, typer.Option(min=1000, help="Rows to seed; repeat for a scaling line (default 4,000,000).")
    ] = None,
    no_dlt: Annotated[bool, typer.Option("--no-dlt", help="Skip the dlt comparison.")] = False,
    chart: Annotated[Path | None, typer.Option(help="Write a PNG chart (rows/s and peak RSS vs rows) here.")] = None,
    repeat: Annotated[
        int,
        typer.Option(
            min=1,
            max=5,
            help="Run each SQL-level path and handoff this many times "
            "and keep the fastest (a machine whose speed wanders).",
        ),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Measure rows/s and peak memory: raw floor vs dlt vs this governed path, side by side.

    Also measured: the floor without ORDER BY, and the floor plus the exclusion aggregate.
    The SQL-level bound: handoff's aggregate, the unsorted export and a sort in Arrow (and raw-grouped).
    The profile line shows where handoff's time went and, in its timeline, what the end waited for.
    With several --rows, each size gets its own database (NAME_ROWS) and a scaling line is printed.
    Example: handoff bench --rows 1000000 --rows 16000000 --chart bench.png
    """
    import sqlalchemy as sa

    from handoff_tools import bench as bench_mod

    sizes = rows or [4_000_000]
    results = []
    for n in sizes:
        url = db
        if len(sizes) > 1:
            base = sa.engine.make_url(db)
            url = base.set(database=f"{base.database}_{n}").render_as_string(hide_password=False)
        results.append(
            bench_mod.run_bench(
                url,
                n,
                work_dir=settings().home / "bench",
                include_dlt=not no_dlt,
                progress=lambda m: err.print(m, markup=False),
                repeat=repeat,
            )
        )
    if chart:
        bench_mod.plot(results, chart)
    if as_json:
        emit_json(results[0] if len(results) == 1 else results)
        return
    for r in results:
        out.print(bench_mod.render_table(r))
        out.print(bench_mod.profile_line(r), markup=False)
    if len(results) > 1:
        out.print(bench_mod.scaling_line(results), markup=False)


@app.command()
def serve(
    db: Annotated[
        str | None,
        typer.Option(
            help="Source database URL, without a password (it would be stored in the deployment's parameters in clear)."
        ),
    ] = None,  # fmt: skip
    db_env: Annotated[
        str | None,
        typer.Option(
            help="Or: the name of an environment variable on the worker that holds the source URL, password included."
        ),
    ] = None,  # fmt: skip
    db_secret: Annotated[
        str | None,
        typer.Option(help="Or: the name of a Prefect Secret block holding the source URL, password included."),
    ] = None,  # fmt: skip
    bucket: Annotated[str | None, typer.Option(help="Recipient S3 bucket (env HANDOFF_BUCKET).")] = None,
    group: Annotated[
        list[str] | None, typer.Option(help="Jurisdiction group NAME=ST,ST (repeatable); default one group 'all'.")
    ] = None,
    transfer_cron: Annotated[str, typer.Option(help="Cron for transfers, in the court's time zone.")] = "0 2 * * *",
    release_cron: Annotated[str, typer.Option(help="Cron for release runs.")] = "0 * * * *",
    approval_timeout: Annotated[
        int, typer.Option(help="Seconds a run waits for approval before leaving the batch awaiting.")
    ] = 3600,
) -> None:
    """Serve the transfer (daily, per jurisdiction group, incremental) and release (hourly) deployments.

    The deployments reference the source's credentials, never embed them: give --db-env VAR (read
    on the worker at run time) or --db-secret BLOCK; a --db URL with a password is refused.
    Needs a Prefect API (PREFECT_API_URL). Example: handoff serve --db-env HANDOFF_SOURCE_DB_URL --group west=CA,OR,WA
    """
    from handoff.source_ref import reference

    source = reference(db, db_env, db_secret)
    groups: dict[str, list[str]] = {}
    for g in group or []:
        name, sep, states = g.partition("=")
        if not sep or not name.strip():
            raise HandoffError(f"--group {g!r} should look like west=CA,OR,WA")
        groups[name.strip()] = [s.strip().upper() for s in states.split(",") if s.strip()]
    from flows.serve import serve_all

    serve_all(source, bucket or settings().bucket, groups or {"all": []}, transfer_cron=transfer_cron,
              release_cron=release_cron, approval_timeout_s=approval_timeout)  # fmt: skip


_RETIRED_OPTIONS = {
    "--as": "no typed name decides anything any more: sign with --key KEY (or --statement, then --signature FILE)",
    "--initiator": "who started a transfer is the key that signed its request: pass --key KEY",
}


# Typer carries its own copy of click: reach its UsageError through a public subclass.
UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main() -> None:
    try:
        code = typer.main.get_command(app).main(prog_name="handoff", standalone_mode=False)
    except UsageError as exc:
        ctx: Any = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `handoff`, `handoff hold`
            out.print(ctx.get_help(), markup=False, highlight=False)
            sys.exit(2)
        retired = _RETIRED_OPTIONS.get(getattr(exc, "option_name", "") or "")
        where = f"handoff {ctx.command_path.removeprefix('handoff').strip()}".strip() if ctx else "handoff"
        message = exc.format_message()  # type: ignore[attr-defined]
        said = f"{message}: {retired}" if retired else f"{message} (see `{where} --help`)"
        err.print(f"error: {said}", style="red", markup=False, highlight=False)
        sys.exit(2)
    except typer.Abort:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except HandoffError as exc:
        err.print(f"error: {exc}", style="red", markup=False, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:
        if not type(exc).__module__.startswith("botocore"):
            raise  # a bug: the traceback is for us
        # S3 unreachable, no credentials, an endpoint that is not S3: the environment, not a bug.
        err.print(f"error: S3 could not be used ({type(exc).__name__}: {exc}); check AWS_ENDPOINT_URL_S3 (or "
                  "AWS_ENDPOINT_URL), the network and your AWS credentials", style="red", markup=False,
                  highlight=False)  # fmt: skip
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
