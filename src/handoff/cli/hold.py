"""`handoff hold`: the emergency stop."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from handoff.cli.common import (
    JsonOpt,
    KeyOpt,
    SignatureOpt,
    SignedOpt,
    StatementOpt,
    _lifecycle,
    _signed,
    _user,
    emit_json,
    err,
    hold_app,
    now,
    out,
)
from handoff.errors import HandoffError
from handoff.terminal import moment, plain, styled


@hold_app.command("set")
def hold_set(
    reason: Annotated[str, typer.Option(help="Why deliveries stop (recorded in the ledger).")],
    as_: Annotated[str | None, typer.Option("--as", help="Your name, recorded as given (default: OS user).")] = None,
) -> None:
    """Stop every delivery, within seconds, without a deploy. Anyone may pull the alarm.

    Example: handoff hold set --reason "TRO motion filed"
    """
    from handoff.authority.hold import set_stop

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
    from handoff.authority import hold

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
    from handoff.authority import hold

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
        t.add_row(*map(plain, (s.id, s.set_by, moment(s.set_at), s.reason)), state_cell)
    out.print(t if stops else "no emergency stop was ever set")
