"""`handoff court`: hearings and their signed outcomes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

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
    court_app,
    emit_json,
    hearing_app,
    now,
    out,
)
from handoff.errors import HandoffError
from handoff.terminal import moment, plain, styled


def _zone(life: Any, order_id: str) -> str | None:
    """The court's time zone for an order's hearings (None, so UTC, for an order no longer in the folder)."""
    try:
        return str(life.policies.current(order_id).court_time_zone)
    except HandoffError:
        return None


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
    from handoff.authority.court import add_hearing

    life = _lifecycle()
    with life.ctx.write() as conn:
        h = add_hearing(conn, life.policies, order, _parse_at(at), title, as_ or _user(), now())
    emit_json(h.as_dict()) if as_json else out.print(
        f"added hearing [bold]{plain(h.id)}[/] at {moment(h.at, _zone(life, h.order_id))}: {plain(h.title)}"
    )


@hearing_app.command("list")
def hearing_list(as_json: JsonOpt = False) -> None:
    """List every hearing, its source and its outcome.

    Example: handoff court hearing list --json
    """
    from handoff.authority.court import calendar

    life = _lifecycle()
    with life.engine.connect() as conn:
        hs = calendar(conn, life.policies, life.trust(), now())
    if as_json:
        emit_json([h.as_dict() for h in hs])
        return
    t = Table("hearing", "order", "at", "title", "outcome", "recorded by", "source")
    for h in hs:
        t.add_row(*map(plain, (h.id, h.order_id, moment(h.at, _zone(life, h.order_id)), h.title)), plain(h.outcome) if h.outcome else styled("pending", "yellow"),
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
    from handoff.authority import signoff
    from handoff.authority.court import calendar, check_narrower, outcome_statement, record_outcome

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
