"""The court calendar at run time: hearings on an order and their signed outcomes.

Hearings come from the order file (the shipped calendar) and from ``handoff court hearing add``
(anyone may add one: a hearing only holds). An outcome exists only as a ``hearing-outcome``
ledger event carrying a ``handoff.hearing-outcome`` statement signed by a key with the
``handoff-counsel`` role; the calendar re-verifies each one against the trust file, so a typed
name, an edited table row or text in the order file opens nothing. A ``narrowed`` outcome names
the SHA-256 of the new order file, which must itself be signed by counsel and only narrow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from handoff.authority import signoff
from handoff.errors import HandoffError, NotFound, PolicyError, SignatureError
from handoff.policy import narrowing
from handoff.policy.order import Order, PolicySet, load_order_file
from handoff.policy.suite import write_suites
from handoff.signing import statement as st
from handoff.signing.trust import Trust
from handoff.state import ledger
from handoff.state.schema import hearings, iso

OUTCOMES = ("upheld", "narrowed", "enjoined", "vacated")


@dataclass(frozen=True)
class HearingRecord:
    id: str
    order_id: str
    at: str
    title: str
    source: str  # "order file ORDER@vN" or "added by NAME at TIME"
    outcome: str | None = None
    outcome_by: str | None = None  # the trust file's principal for counsel's key
    outcome_at: str | None = None
    outcome_order_ref: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return dict(self.__dict__)


def scheduled(conn: sa.Connection, policies: PolicySet) -> dict[str, HearingRecord]:
    """Every hearing, without outcomes: order-file entries and those added at run time."""
    out: dict[str, HearingRecord] = {}
    for order in policies.orders.values():
        for h in order.hearings:
            at = h.at.replace(tzinfo=order.zone) if h.at.tzinfo is None else h.at
            out[h.id] = HearingRecord(h.id, order.order_id, iso(at), h.title, f"order file {order.ref}")
    for e in ledger.entries(conn, kinds=["hearing-added"]):
        p = e.payload
        hid = str(p.get("hearing"))
        if hid not in out:
            out[hid] = HearingRecord(hid, str(p.get("order_id") or (e.order_ref or "").split("@")[0]),
                                     str(p.get("at")), str(p.get("title")), f"added by {e.actor} at {e.at}")  # fmt: skip
    return out


def calendar(conn: sa.Connection, policies: PolicySet, trust: Trust, now: dt.datetime) -> list[HearingRecord]:
    """Every hearing with the first outcome whose counsel signature verifies now."""
    known = scheduled(conn, policies)
    for e in ledger.entries(conn, kinds=["hearing-outcome"]):
        if "statement" not in e.payload:
            continue
        try:
            doc = st.verify(trust, st.Signed.from_dict(e.payload), st.HEARING_OUTCOME, now).doc
        except SignatureError:
            continue  # unsigned or no longer trusted: the hearing stays pending (fail closed)
        h = known.get(str(doc.get("hearing_id")))
        if h is None or h.outcome or doc.get("order_id") != h.order_id or doc.get("result") not in OUTCOMES:
            continue
        known[h.id] = replace(h, outcome=str(doc["result"]), outcome_by=e.actor, outcome_at=e.at,
                              outcome_order_ref=doc.get("new_order_ref"))  # fmt: skip
    return sorted(known.values(), key=lambda h: (h.at, h.id))


def add_hearing(
    conn: sa.Connection, policies: PolicySet, order_id: str, at: dt.datetime, title: str, actor: str, now: dt.datetime
) -> HearingRecord:
    """Add a hearing; it holds every batch of its order until a signed outcome is recorded."""
    order = policies.current(order_id)
    if at.tzinfo is None:
        at = at.replace(tzinfo=order.zone)
    hid = f"{order.order_id[:40]}-{at.astimezone(order.zone):%Y%m%dT%H%M}"
    if hid in scheduled(conn, policies):
        raise HandoffError(f"a hearing {hid} already exists; `handoff court hearing list` shows it")
    conn.execute(hearings.insert().values(id=hid, order_id=order.order_id, at=iso(at), title=title,
                                          added_by=actor, added_at=iso(now)))  # fmt: skip
    ledger.append(conn, "hearing-added", actor, order_ref=order.ref, at=now,
                  payload={"hearing": hid, "order_id": order.order_id, "at": iso(at), "title": title})  # fmt: skip
    return scheduled(conn, policies)[hid]


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such order file") from None


def outcome_statement(hearing: HearingRecord, result: str, order_file: Path | None, now: dt.datetime) -> dict[str, Any]:
    """What counsel signs to record a hearing's outcome (``narrowed`` names the new order file's SHA-256)."""
    if result not in OUTCOMES:
        raise HandoffError(f"unknown result {result!r}; choose one of {', '.join(OUTCOMES)}")
    if hearing.outcome:
        raise HandoffError(f"hearing {hearing.id} already has outcome {hearing.outcome!r} (by {hearing.outcome_by})")
    if result == "narrowed" and order_file is None:
        raise HandoffError("a narrowed order needs its new version: pass --order-file FILE")
    if result != "narrowed" and order_file is not None:
        raise HandoffError("--order-file goes with --result narrowed only")
    doc: dict[str, Any] = {"kind": st.HEARING_OUTCOME, "version": 1, "hearing_id": hearing.id,
                           "order_id": hearing.order_id, "result": result, "issued_at": st.stamp(now)}  # fmt: skip
    if order_file is not None:
        doc["order_file_sha256"] = file_sha256(order_file)
        doc["new_order_ref"] = load_order_file(order_file).ref
    return doc


def check_narrower(current: Order, path: Path) -> Order:
    """The order version in ``path``, once it is shown to only narrow ``current``; ``PolicyError`` says how not.

    Runs before counsel's key signs the file, so a refused file is never left signed beside it.
    """
    new = load_order_file(path)
    problems = narrowing.successor_problems(current, new)
    if problems:
        raise PolicyError(f"{path}: {problems[0]}")
    wider = narrowing.widened(current, new)
    if wider:
        raise PolicyError(f"{path} is not narrower than {current.ref}: it {'; '.join(wider)}. "
                          "A wider order needs a new order id and counsel's signature, never `--result narrowed`")  # fmt: skip
    return new


def install_order_version(policies: PolicySet, trust: Trust, current: Order, path: Path, now: dt.datetime) -> Order:
    """Check a narrowed order version (narrower, signed by counsel) and copy it, its signature and suite in."""
    new = check_narrower(current, path)
    signoff.verify_file(trust, path, now)
    target = policies.orders_dir / f"{new.signed_date.isoformat()}.v{new.version}.yaml"
    if target.exists():
        raise PolicyError(f"{target} already exists; choose a new version number")
    shutil.copyfile(path, target)
    shutil.copyfile(signoff.signature_path(path), signoff.signature_path(target))
    write_suites(PolicySet(policies.policy_dir))
    return new


def record_outcome(conn: sa.Connection, policies: PolicySet, trust: Trust, signed: st.Signed, now: dt.datetime,
                   order_file: Path | None = None) -> HearingRecord:  # fmt: skip
    """Record counsel's signed outcome; ``narrowed`` installs the new order version it names."""
    verified = st.verify(trust, signed, st.HEARING_OUTCOME, now)
    doc = verified.doc
    known = {h.id: h for h in calendar(conn, policies, trust, now)}
    h = known.get(str(doc.get("hearing_id")))
    if h is None:
        raise NotFound(f"no hearing {doc.get('hearing_id')!r}; `handoff court hearing list` shows hearings")
    expected = outcome_statement(h, str(doc.get("result")), order_file, now)
    differs = st.same_request(expected, doc, ("issued_at",))
    if differs:
        raise SignatureError(f"the signed outcome differs from this command in {', '.join(differs)}; "
                             "sign what `handoff court outcome ... --statement` prints")  # fmt: skip
    new_ref = None
    if order_file is not None:
        new_ref = install_order_version(policies, trust, policies.current(h.order_id), order_file, now).ref
    values = {"outcome": doc["result"], "outcome_by": verified.principal, "outcome_at": iso(now),
              "outcome_order_ref": new_ref}  # fmt: skip
    if conn.execute(sa.select(hearings.c.id).where(hearings.c.id == h.id)).first():
        conn.execute(hearings.update().where(hearings.c.id == h.id).values(**values))
    else:
        conn.execute(hearings.insert().values(id=h.id, order_id=h.order_id, at=h.at, title=h.title,
                                              added_by="order file", added_at=iso(now), **values))  # fmt: skip
    ledger.append(conn, "hearing-outcome", verified.principal, order_ref=policies.current(h.order_id).ref, at=now,
                  payload={**signed.as_dict(), "key": verified.signer.fingerprint, "hearing": h.id,
                           "result": doc["result"], "new_order_ref": new_ref})  # fmt: skip
    return next(x for x in calendar(conn, policies, trust, now) if x.id == h.id)
