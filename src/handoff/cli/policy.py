"""`handoff policy`: show, build, sign and try the court order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from handoff.cli.common import (
    JsonOpt,
    KeyOpt,
    SignatureOpt,
    _lifecycle,
    emit_json,
    err,
    now,
    out,
    policy_app,
    settings,
    source_app,
)
from handoff.errors import HandoffError
from handoff.terminal import moment, plain


@policy_app.command("show")
def policy_show(
    order: Annotated[str | None, typer.Option(help="Order id or ORDER@vN (default: the one in force).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the order in force: dates, permitted fields, population rule, scope, hearings.

    Example: handoff policy show --json
    """
    from handoff.policy.order import PolicySet

    policies = PolicySet(settings().policy_dir)
    o = policies.current(order)
    if as_json:
        emit_json({**o.model_dump(mode="json", by_alias=True), "ref": o.ref, "policy_hash": o.policy_hash,
                   "columns": o.columns, "file": str(policies.file_for(o))})  # fmt: skip
        return
    out.print(f"[bold]{o.ref}[/]  {plain(o.case.caption)}, {plain(o.case.court)} {plain(o.case.number)}")
    out.print(
        f"signed {o.signed_date}; effective {moment(o.effective_instant, o.court_time_zone)} "
        f"({plain(o.court_time_zone)})"
    )
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
            plain(
                f"hearing {h.id} at {moment(h.at.replace(tzinfo=o.zone) if h.at.tzinfo is None else h.at, o.court_time_zone)} "
                f"({o.court_time_zone}): {h.title} — outcome {h.outcome or 'not recorded'}"
            )
        )


@policy_app.command("build")
def policy_build(
    check: Annotated[bool, typer.Option(help="Only check that checked-in suites match their orders.")] = False,
) -> None:
    """Write the Great Expectations suite JSON for every order into expectations/suites.

    Example: handoff policy build --check
    """
    from handoff.policy.order import PolicySet
    from handoff.policy.suite import load_suite, write_suites

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

    from handoff.authority import signoff

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
    from handoff.extract import reader as extract
    from handoff.policy.order import PolicySet
    from handoff.policy.population import INCLUDED, reason_labels
    from handoff.staging.pipeline import parse_states

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


@policy_app.command("diff")
def policy_diff(
    old: Annotated[str, typer.Argument(help="The current version: ORDER@vN in the policy folder, or an order file.")],
    new: Annotated[str, typer.Argument(help="The new version: ORDER@vN in the policy folder, or an order file.")],
    as_json: JsonOpt = False,
) -> None:
    """Show what a new order version changes, whether it may be recorded as `narrowed`, and which batches it stops.

    Columns, the name flag, population conditions, plaintiff states and scope, approvals, required
    fields, the effective instant, the hearings and the source, side by side. A version that permits
    anything more needs a new order signed by counsel, never `court record --result narrowed`.
    Batches staged under OLD that wait on the gates would be superseded once NEW is in force.
    Example: handoff policy diff medicaid-ice-sharing@v1 drafts/2026-02-01.v2.yaml
    """
    import sqlalchemy as sa

    from handoff.policy.diff import diff
    from handoff.policy.order import PolicySet, load_order_file
    from handoff.state import schema
    from handoff.state.schema import open_state
    from handoff.state.status import GATED

    conf = settings()
    policies = PolicySet(conf.policy_dir)

    def read(arg: str):  # type: ignore[no-untyped-def]
        return policies.get(arg) if "@" in arg and not Path(arg).exists() else load_order_file(Path(arg))

    d = diff(read(old), read(new))
    stopped: list[str] = []
    if d.new.order_id == d.old.order_id and d.new.version > d.old.version:
        engine = open_state(conf.resolved_state_url)
        with engine.connect() as conn:  # one query: the waiting batches staged under OLD, oldest first
            table = schema.batches
            stopped = list(conn.execute(sa.select(table.c.id).where(table.c.order_ref == d.old.ref,
                                                                    table.c.status.in_(sorted(GATED)))
                                        .order_by(table.c.created_at)).scalars())  # fmt: skip
        engine.dispose()
    if as_json:
        emit_json({**d.as_dict(), "would_supersede": stopped})
        return
    t = Table("what", d.old.ref, d.new.ref, title=f"{d.old.ref} → {d.new.ref}")
    for c in d.changes:
        t.add_row(plain(c.what), plain(c.before), plain(c.after))
    out.print(t if d.changes else "no differences")
    if d.may_narrow:
        out.print(f"[green]{d.new.ref} only narrows {d.old.ref}[/]: counsel may record it as a `narrowed` outcome")
    else:
        out.print(f"[yellow]{d.new.ref} may not be recorded as narrowing {d.old.ref}[/]:")
        for why in d.not_narrowing:
            out.print("  " + plain(why))
    if stopped:
        out.print(f"once {d.new.ref} is in force, {len(stopped)} batch(es) staged under {d.old.ref} are superseded "
                  "(`handoff revalidate` re-checks one): " + plain(", ".join(stopped)))  # fmt: skip


@source_app.command("advise")
def source_advise(
    order: Annotated[str | None, typer.Option(help="Order id or ORDER@vN (default: the one in force).")] = None,
    db: Annotated[
        str | None, typer.Option(help="Source database URL, only for its SQL dialect (nothing is connected).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the index and statistics that make the exclusion count cheaper, for the agency's DBA.

    handoff counts exclusions by reason with a second scan of the source table; on PostgreSQL this
    index lets that scan read the index alone (measured: the count 1.8 times faster at 8M rows, a
    transfer about 17 % faster). Nothing is run: review it, then run it on the source yourself.
    Example: handoff source advise > handoff-index.sql
    """
    from handoff.extract.advice import advise, dialect_for
    from handoff.policy.order import PolicySet

    dialect = dialect_for(db)
    advice = advise(PolicySet(settings().policy_dir).current(order))
    if as_json:
        emit_json({"order_ref": advice.order_ref, "table": advice.table, "index": advice.name, "key": advice.key,
                   "include": advice.include, "statistics": advice.statistics, "sql": advice.ddl(dialect)})  # fmt: skip
        return
    out.print(advice.ddl(dialect), end="", markup=False, highlight=False, soft_wrap=True)
