"""The court calendar at run time: hearings on an order and their recorded outcomes.

Hearings come from the order file (the shipped calendar) and from ``handoff court hearing
add``; outcomes are recorded by counsel with ``handoff court outcome``. Every entry records
who made it and when, in the state database and in the ledger.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from handoff import ledger
from handoff.errors import HandoffError, NotFound, PolicyError
from handoff.order import Order, PolicySet, load_order_file
from handoff.state import hearings, iso
from handoff.suite import write_suites

OUTCOMES = ("upheld", "narrowed", "enjoined", "vacated")


@dataclass(frozen=True)
class HearingRecord:
    id: str
    order_id: str
    at: str
    title: str
    source: str  # "order file" or "added by NAME"
    outcome: str | None
    outcome_by: str | None
    outcome_at: str | None
    outcome_order_ref: str | None

    def as_dict(self) -> dict[str, str | None]:
        return dict(self.__dict__)


def calendar(conn: sa.Connection, policies: PolicySet) -> list[HearingRecord]:
    """Every hearing: order-file entries overlaid by what was recorded at run time."""
    rows = {r.id: r for r in conn.execute(sa.select(hearings))}
    out: dict[str, HearingRecord] = {}
    for order in policies.orders.values():
        for h in order.hearings:
            at = h.at.replace(tzinfo=order.zone) if h.at.tzinfo is None else h.at
            out[h.id] = HearingRecord(h.id, order.order_id, iso(at), h.title, f"order file {order.ref}",
                                      h.outcome, "order file" if h.outcome else None, None, None)  # fmt: skip
    for r in rows.values():
        base = out.get(r.id)
        out[r.id] = HearingRecord(
            r.id, r.order_id, r.at, r.title, base.source if base else f"added by {r.added_by} at {r.added_at}",
            r.outcome or (base.outcome if base else None), r.outcome_by, r.outcome_at, r.outcome_order_ref,
        )  # fmt: skip
    return sorted(out.values(), key=lambda h: (h.at, h.id))


def add_hearing(
    conn: sa.Connection, policies: PolicySet, order_id: str, at: dt.datetime, title: str, actor: str, now: dt.datetime
) -> HearingRecord:
    order = policies.current(order_id)
    if at.tzinfo is None:
        at = at.replace(tzinfo=order.zone)
    hid = f"{order.order_id[:40]}-{at.astimezone(order.zone):%Y%m%dT%H%M}"
    if any(h.id == hid for h in calendar(conn, policies)):
        raise HandoffError(f"a hearing {hid} already exists; `handoff court hearing list` shows it")
    conn.execute(hearings.insert().values(id=hid, order_id=order.order_id, at=iso(at), title=title,
                                          added_by=actor, added_at=iso(now)))  # fmt: skip
    ledger.append(conn, "hearing-added", actor, order_ref=order.ref, at=now,
                  payload={"hearing": hid, "at": iso(at), "title": title})  # fmt: skip
    return next(h for h in calendar(conn, policies) if h.id == hid)


def install_order_version(policies: PolicySet, current: Order, path: Path) -> Order:
    """Check a narrowed order version and copy it (and its suite) into the policy folder."""
    new = load_order_file(path)
    if new.order_id != current.order_id:
        raise PolicyError(f"{path}: order_id {new.order_id!r} is not {current.order_id!r}")
    if new.version <= current.version:
        raise PolicyError(f"{path}: version {new.version} must be greater than {current.version}")
    if new.supersedes != current.ref:
        raise PolicyError(f"{path}: supersedes must be {current.ref!r} (found {new.supersedes!r})")
    target = policies.orders_dir / f"{new.signed_date.isoformat()}.v{new.version}.yaml"
    if target.exists():
        raise PolicyError(f"{target} already exists; choose a new version number")
    shutil.copyfile(path, target)
    write_suites(PolicySet(policies.policy_dir))
    return new


def record_outcome(
    conn: sa.Connection,
    policies: PolicySet,
    hearing_id: str,
    result: str,
    actor: str,
    now: dt.datetime,
    order_file: Path | None = None,
) -> HearingRecord:
    if result not in OUTCOMES:
        raise HandoffError(f"unknown result {result!r}; choose one of {', '.join(OUTCOMES)}")
    known = {h.id: h for h in calendar(conn, policies)}
    if hearing_id not in known:
        raise NotFound(f"no hearing {hearing_id!r}; `handoff court hearing list` shows hearings")
    h = known[hearing_id]
    if h.outcome:
        raise HandoffError(f"hearing {hearing_id} already has outcome {h.outcome!r} (by {h.outcome_by})")
    current = policies.current(h.order_id)
    new_ref = None
    if result == "narrowed":
        if order_file is None:
            raise HandoffError("a narrowed order needs its new version: pass --order-file FILE")
        new_ref = install_order_version(policies, current, order_file).ref
    elif order_file is not None:
        raise HandoffError("--order-file goes with --result narrowed only")
    values = {"outcome": result, "outcome_by": actor, "outcome_at": iso(now), "outcome_order_ref": new_ref}
    exists = conn.execute(sa.select(hearings.c.id).where(hearings.c.id == hearing_id)).first()
    if exists:
        conn.execute(hearings.update().where(hearings.c.id == hearing_id).values(**values))
    else:
        conn.execute(hearings.insert().values(id=h.id, order_id=h.order_id, at=h.at, title=h.title,
                                              added_by="order file", added_at=iso(now), **values))  # fmt: skip
    ledger.append(conn, "hearing-outcome", actor, order_ref=current.ref, at=now,
                  payload={"hearing": hearing_id, "result": result, "new_order_ref": new_ref})  # fmt: skip
    return next(x for x in calendar(conn, policies) if x.id == hearing_id)
