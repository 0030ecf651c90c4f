"""The emergency stop: one switch that holds every delivery not yet uploading.

Set and cleared from the CLI without a deploy; the release path re-reads it in the same
transaction that starts an upload, so it takes effect within seconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from handoff import ledger
from handoff.errors import HandoffError
from handoff.state import controls, iso

STOP = "emergency_stop"


@dataclass(frozen=True)
class StopState:
    active: bool
    reason: str
    set_by: str
    set_at: str


def current(conn: sa.Connection) -> StopState | None:
    row = conn.execute(sa.select(controls).where(controls.c.name == STOP)).first()
    if row is None:
        return None
    return StopState(bool(row.active), row.reason, row.set_by, row.set_at)


def set_stop(conn: sa.Connection, active: bool, reason: str, actor: str, now: dt.datetime) -> StopState:
    if not reason.strip():
        raise HandoffError("give a --reason: the ledger records why deliveries were stopped or resumed")
    values = {"active": active, "reason": reason, "set_by": actor, "set_at": iso(now)}
    if conn.execute(sa.select(controls.c.name).where(controls.c.name == STOP)).first():
        conn.execute(controls.update().where(controls.c.name == STOP).values(**values))
    else:
        conn.execute(controls.insert().values(name=STOP, **values))
    ledger.append(conn, "hold-set" if active else "hold-cleared", actor, at=now, payload={"reason": reason})
    return StopState(active, reason, actor, iso(now))
