"""The emergency stop: anyone may pull it; only a signed operator statement clears it.

``hold set`` needs no authority: it appends a ``hold-set`` ledger entry with a new stop id.
``hold clear`` needs a ``handoff.hold-clear`` statement signed by a key holding the
``handoff-operator`` role, naming the stops it clears. The gate derives which stops are active
from the ledger and re-verifies every clearing signature, so editing a table cannot lift a stop.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from handoff.errors import GateError, HandoffError, SignatureError
from handoff.signing import statement as st
from handoff.signing.trust import Trust
from handoff.state import ledger
from handoff.state.schema import iso


@dataclass(frozen=True)
class Stop:
    id: str
    reason: str
    set_by: str
    set_at: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StopState:
    """Which stops hold deliveries now, and which clearings were ignored (with why)."""

    active: list[Stop]
    ignored: list[str]


def history(conn: sa.Connection) -> tuple[list[Stop], list[st.Signed]]:
    """Every stop ever set, and every clearing statement, from the ledger."""
    stops, clears = [], []
    for e in ledger.entries(conn, kinds=["hold-set", "hold-cleared"]):
        if e.kind == "hold-set":
            stops.append(Stop(str(e.payload.get("stop") or f"seq-{e.seq}"), str(e.payload.get("reason", "")),
                              e.actor, e.at))  # fmt: skip
        elif "statement" in e.payload:
            clears.append(st.Signed.from_dict(e.payload))
    return stops, clears


def state(stops: list[Stop], clears: list[st.Signed], trust: Trust, now: dt.datetime) -> StopState:
    """Pure: a stop is active unless a clearing that verifies now names it."""
    cleared: set[str] = set()
    ignored: list[str] = []
    for signed in clears:
        try:
            cleared.update(str(s) for s in st.verify(trust, signed, st.HOLD_CLEAR, now).doc.get("stops", []))
        except SignatureError as exc:
            ignored.append(f"a clearing that does not verify ({exc})")
    return StopState([s for s in stops if s.id not in cleared], ignored)


def current(conn: sa.Connection, trust: Trust, now: dt.datetime) -> StopState:
    stops, clears = history(conn)
    return state(stops, clears, trust, now)


def set_stop(conn: sa.Connection, reason: str, actor: str, now: dt.datetime) -> Stop:
    """Stop every delivery not yet uploading; no authority needed to pull the alarm."""
    if not reason.strip():
        raise HandoffError("give a --reason: the ledger records why deliveries were stopped")
    stop = Stop(f"stop-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}", reason.strip(), actor, iso(now))
    ledger.append(conn, "hold-set", actor, at=now, payload={"stop": stop.id, "reason": stop.reason})
    return stop


def clear_statement(active: list[Stop], reason: str, now: dt.datetime) -> dict[str, Any]:
    """What an operator signs to clear the stops active now."""
    if not active:
        raise HandoffError("no emergency stop is active")
    if not reason.strip():
        raise HandoffError("give a --reason: the ledger records why deliveries may resume")
    return {"kind": st.HOLD_CLEAR, "version": 1, "stops": sorted(s.id for s in active), "reason": reason.strip(),
            "issued_at": st.stamp(now)}  # fmt: skip


def clear(conn: sa.Connection, trust: Trust, signed: st.Signed, now: dt.datetime,
          active_ids: set[str] | None = None) -> st.Verified:  # fmt: skip
    """Record a signed clearing of every active stop it names; refuse one that clears nothing active.

    ``active_ids``: the stops active now, from the ledger and the audit bucket (default: the ledger's).
    """
    verified = st.verify(trust, signed, st.HOLD_CLEAR, now)
    active = active_ids if active_ids is not None else {s.id for s in current(conn, trust, now).active}
    named = {str(s) for s in verified.doc.get("stops", [])}
    if not active:
        raise HandoffError("no emergency stop is active")
    if not active <= named:
        missing = ", ".join(sorted(active - named))
        raise GateError(f"the signed clearing does not name every active stop ({missing}); "
                        "sign the statement `handoff hold clear --statement` prints now")  # fmt: skip
    ledger.append(conn, "hold-cleared", verified.principal, at=now,
                  payload={**signed.as_dict(), "key": verified.signer.fingerprint, "stops": sorted(named),
                           "reason": str(verified.doc.get("reason", ""))})  # fmt: skip
    return verified
