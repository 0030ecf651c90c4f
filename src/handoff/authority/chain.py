"""The recipient's check of the chain of authority a manifest carries, against the published trust file.

Pure: from the manifest's ``proof`` and ``approvals``, the trust file and the delivery time it
decides, link by link, whether the delivery was permitted:

* the order version: its text hashes as stated, counsel (``handoff-counsel``) signed exactly
  those bytes, it is the version and policy hash the manifest names, its permitted columns are
  the delivered columns, and it had taken effect;
* the court: every hearing of that order due before the delivery has an outcome signed by
  counsel, the newest decided hearing did not enjoin or vacate it, and no signed ``narrowed``
  outcome had replaced the delivered version by a newer one;
* who asked: the transfer request is signed by an operator key and names this batch;
* what was checked: the validation summary passed and is bound to this content hash;
* who said yes: ``approvals_required`` different people with the approver role, none of them
  the person who asked.

Each failure names the link; a chain that does not verify under the given trust file is a failure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from handoff.authority.court import OUTCOMES
from handoff.errors import HandoffError, SignatureError
from handoff.policy.order import Order, parse_order
from handoff.signing import statement as st
from handoff.signing.trust import COUNSEL, Trust


def check(doc: dict[str, Any], trust: Trust, delivered: dt.datetime, approvers: list[str]) -> list[str]:
    """Every broken link of the chain (empty when it holds). ``approvers``: the principals whose
    approvals verified and bind this delivery (checked by ``verify``)."""
    proof = doc.get("proof")
    if not isinstance(proof, dict):
        return ["carries no proof of the chain of authority (delivered by hand, or by a handoff before manifest "
                "version 3): nothing shows the order, the court's outcomes or who asked"]  # fmt: skip
    problems: list[str] = []
    order = _order(proof.get("order_file"), doc, trust, delivered, problems)
    if order is not None:
        problems += _court(proof, order, trust, delivered)
        problems += _people(proof, doc, order, trust, delivered, approvers)
    problems += _validation(proof.get("validation"), doc)
    return problems


def _order(entry: Any, doc: dict[str, Any], trust: Trust, delivered: dt.datetime, problems: list[str]) -> Order | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
        problems.append("order: the proof does not carry the order version's text")
        return None
    body = entry["text"].encode("utf-8")
    if hashlib.sha256(body).hexdigest() != entry.get("sha256"):
        problems.append("order: the order text does not hash to the SHA-256 the proof names")
    try:
        trust.verify(body, str(entry.get("signature", "")), COUNSEL, delivered)
    except SignatureError as exc:
        problems.append(f"order: {entry.get('name')} is not signed by counsel under this trust file ({exc})")
    try:
        order = parse_order(entry["text"], f"order file {entry.get('name')}")
    except HandoffError as exc:
        problems.append(f"order: {exc}")
        return None
    named = doc.get("order") or {}
    if (named.get("ref"), named.get("policy_hash")) != (order.ref, order.policy_hash):
        problems.append(f"order: the manifest names {named.get('ref')}, but the signed order file is {order.ref} "
                        "(or its policy hash differs)")  # fmt: skip
    if list(named.get("columns") or []) != order.columns:
        problems.append(f"order: the delivered columns are not the columns {order.ref} permits")
    if delivered < order.effective_instant:
        problems.append(f"order: delivered {delivered.isoformat()}, before {order.ref} took effect "
                        f"({order.effective_instant.isoformat()})")  # fmt: skip
    return order


def _outcomes(proof: dict[str, Any], order: Order, trust: Trust, delivered: dt.datetime) -> dict[str, dict[str, Any]]:
    """The first verified outcome of each hearing of ``order``, signed by counsel no later than the delivery."""
    found: dict[str, dict[str, Any]] = {}
    for item in proof.get("hearing_outcomes") or []:
        if not isinstance(item, dict):
            continue
        try:
            out = st.verify(trust, st.Signed.from_dict(item), st.HEARING_OUTCOME, delivered).doc
            issued = st.parse_stamp(str(out.get("issued_at")))
        except (SignatureError, ValueError):
            continue
        hid = str(out.get("hearing_id"))
        if out.get("order_id") == order.order_id and out.get("result") in OUTCOMES and issued <= delivered:
            found.setdefault(hid, {**out, "_issued": issued})
    return found


def _court(proof: dict[str, Any], order: Order, trust: Trust, delivered: dt.datetime) -> list[str]:
    hearings: dict[str, dt.datetime] = {}
    for h in order.hearings:
        hearings[h.id] = h.at.replace(tzinfo=order.zone) if h.at.tzinfo is None else h.at
    for added in proof.get("hearings_added") or []:
        try:
            hearings.setdefault(str(added["hearing"]), dt.datetime.fromisoformat(str(added["at"])))
        except (KeyError, TypeError, ValueError):
            continue
    outcomes = _outcomes(proof, order, trust, delivered)
    problems = [f"court: hearing {hid} ({at.isoformat()}) was due before the delivery, but no outcome signed by "
                "counsel under this trust file is in the proof"
                for hid, at in sorted(hearings.items(), key=lambda kv: kv[1])
                if at <= delivered and hid not in outcomes]  # fmt: skip
    if outcomes:
        last = max(outcomes.values(), key=lambda o: o["_issued"])
        if last["result"] in ("enjoined", "vacated"):
            problems.append(
                f"court: hearing {last['hearing_id']} {last['result']} {order.order_id} before the delivery"
            )
    for out in outcomes.values():
        ref = str(out.get("new_order_ref") or "")
        newer = out["result"] == "narrowed" and ref.rpartition("@v")[2].isdigit()
        if newer and int(ref.rpartition("@v")[2]) > order.version:
            problems.append(f"court: counsel's narrowed outcome of hearing {out['hearing_id']} put {ref} in force "
                            f"before the delivery; {order.ref} (wider) was no longer permitted")  # fmt: skip
    return problems


def _people(proof: dict[str, Any], doc: dict[str, Any], order: Order, trust: Trust, delivered: dt.datetime,
            approvers: list[str]) -> list[str]:  # fmt: skip
    problems: list[str] = []
    initiator = None
    request = proof.get("request")
    try:
        verified = st.verify(trust, st.Signed.from_dict(request if isinstance(request, dict) else {}),
                             st.TRANSFER_REQUEST, delivered)  # fmt: skip
        initiator = verified.principal
        if verified.doc.get("batch_id") != doc.get("batch_id"):
            problems.append(f"request: the signed transfer request names batch {verified.doc.get('batch_id')}, "
                            f"not {doc.get('batch_id')}")  # fmt: skip
    except SignatureError as exc:
        problems.append(f"request: the transfer request is not signed by an operator under this trust file ({exc})")
    people = [a for a in approvers if a != initiator]
    if initiator is not None and initiator in approvers:
        problems.append(f"approvals: {initiator} asked for this transfer and cannot also approve it")
    if len(people) < order.approvals_required:
        problems.append(f"approvals: {order.ref} needs {order.approvals_required} approval(s) by different people "
                        f"other than the one who asked; {len(people)} verified")  # fmt: skip
    return problems


def _validation(summary: Any, doc: dict[str, Any]) -> list[str]:
    if not isinstance(summary, dict):
        return ["validation: the proof carries no validation summary"]
    problems = []
    if summary.get("result") != "passed":
        problems.append(f"validation: the checks did not pass (result {summary.get('result')!r})")
    if summary.get("content_hash") != doc.get("content_hash") or summary.get("rows") != doc.get("rows"):
        problems.append("validation: the validation summary is about other content than the delivered files")
    return problems
