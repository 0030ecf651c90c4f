"""What an approval, a rejection and an emergency stop leave behind, and what each refuses.

Recorded: the ledger entry the gates read (with the content, policy and destination the approver
signed) and the `approvals` row people query; a stop's id, reason and setter; a clearing's signer,
key and the stops it names. Refused, naming why: a decision on content other than validation
recorded, on files changed on disk, under another policy, on a batch with nothing staged; a stop
without a reason; a clearing that leaves an active stop out, or clears nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import NOW, approve, decide, ledger_kinds, set_stop, sign, transfer

from handoff.authority import approval, hold
from handoff.errors import GateError, HandoffError, SignatureError
from handoff.state import ledger, validated
from handoff.state.schema import approvals, iso


@pytest.fixture
def staged(life: Any, s3: Any, sqlite_source_url: str) -> Any:
    return transfer(life, sqlite_source_url, s3.name).batch


def _entries(life: Any, kind: str, batch_id: str | None = None) -> list[Any]:
    with life.engine.connect() as conn:
        return ledger.entries(conn, batch_id=batch_id, kinds=[kind])


def test_an_approval_is_recorded_in_the_ledger_and_the_approvals_table(life: Any, staged: Any) -> None:
    approve(life, staged.id, "ada", note="counts checked")
    [entry] = _entries(life, "approved", staged.id)
    order = life.ctx.order_for(staged)
    doc = json.loads(entry.payload["statement"])
    assert entry.actor == "Ada Approver" and entry.order_ref == order.ref and entry.at == iso(NOW)
    p = entry.payload
    assert (p["content_hash"], p["policy_hash"], p["note"]) == (
        staged.content_hash,
        order.policy_hash,
        "counts checked",
    )
    assert p["destination"] == doc["destination"] and p["destination"]["bucket"] == staged.bucket
    assert p["key"].startswith("SHA256:") and p["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    with life.engine.connect() as conn:
        [row] = conn.execute(sa.select(approvals).where(approvals.c.batch_id == staged.id)).mappings().all()
    assert (row["decision"], row["approver"], row["note"]) == ("approve", "Ada Approver", "counts checked")
    assert (row["content_hash"], row["policy_hash"], row["order_ref"]) == (staged.content_hash, order.policy_hash,
                                                                           order.ref)  # fmt: skip
    assert row["key_fingerprint"] == p["key"] and row["signature"] == p["signature"]
    assert json.loads(row["statement"]) == doc and row["expires_at"] == doc["expires_at"]


def test_a_rejection_is_recorded_as_one_and_ends_the_batch(life: Any, staged: Any) -> None:
    out = decide(life, staged.id, "bo", "reject", note="scope too broad")
    assert out.batch.status == "rejected" and out.batch.status_reason == "rejected by Bo Approver: scope too broad"
    assert ledger_kinds(life, staged.id).count("rejected") == 1 and not _entries(life, "approved", staged.id)
    [entry] = _entries(life, "rejected", staged.id)
    assert entry.payload["note"] == "scope too broad" and entry.actor == "Bo Approver"


def _verified(life: Any, batch: Any) -> Any:
    doc = life.decision_statement(batch.id, "approve", None, NOW)
    order = life.ctx.order_for(batch)
    with life.engine.connect() as conn:
        record = validated.record_for(conn, batch.id)
    decided = approval.judge(sign("ada", doc), life.trust(), batch, order, life.ctx.destination(batch), None, NOW)
    return order, decided, record


def test_check_refuses_what_validation_did_not_pass_naming_why(life: Any, staged: Any) -> None:
    order, decided, record = _verified(life, staged)
    approval.check(staged, order, decided, record)  # the batch as validated: accepted

    cases = {
        "other policy": (dataclasses.replace(staged, policy_hash="0" * 64),
                         f"batch {staged.id} was validated under {staged.order_ref}, not {order.ref}; re-run transfer"),
        "nothing staged": (dataclasses.replace(staged, staging_path=None), f"batch {staged.id} has no staged content"),
        "no content hash": (dataclasses.replace(staged, content_hash=None), f"batch {staged.id} has no staged content"),
        "more rows than validated": (dataclasses.replace(staged, rows_staged=staged.rows_staged + 5),
                                     f"batch {staged.id} is not the content validation recorded"),
        "a closed batch": (dataclasses.replace(staged, status="delivered"), f"batch {staged.id} is delivered;"),
    }  # fmt: skip
    for name, (batch, why) in cases.items():
        with pytest.raises(GateError) as caught:
            approval.check(batch, order, decided, record)
        assert str(caught.value).startswith(why), (name, str(caught.value))


def test_check_refuses_files_changed_on_disk_since_validation(life: Any, staged: Any) -> None:
    order, decided, record = _verified(life, staged)
    part = Path(staged.staging_path) / staged.files[0].name
    part.write_bytes(part.read_bytes() + b"appended")
    with pytest.raises(GateError, match=re.escape(f"batch {staged.id} changed on disk since validation ({part.name})")):
        approval.check(staged, order, decided, record)


def test_a_refusal_is_one_line_and_says_when_the_signature_is_to_blame() -> None:
    assert approval.refusal(SignatureError("key X is not in the trust file")) == (
        "signature refused: key X is not in the trust file"
    )
    assert approval.refusal(GateError("batch b is delivered")) == "batch b is delivered"


def test_a_decision_as_the_manifest_and_lineage_show_it(life: Any, staged: Any) -> None:
    _, decided, _ = _verified(life, staged)
    shown = decided.as_dict()
    assert {k: shown[k] for k in ("decision", "principal", "note")} == {"decision": "approve",
                                                                       "principal": "Ada Approver", "note": ""}  # fmt: skip
    assert shown["key"] == decided.key and shown["at"] == decided.at and shown["expires_at"] == decided.expires_at
    assert shown["statement"] and shown["signature"].startswith("-----BEGIN SSH SIGNATURE-----")


# ----- the emergency stop --------------------------------------------------------------------------
def test_a_stop_needs_a_reason_and_records_who_why_and_when(life: Any) -> None:
    for blank in ("", "   "):
        with pytest.raises(HandoffError, match="^give a --reason: the ledger records why deliveries were stopped$"):
            set_stop(life, blank)
    stop = set_stop(life, "  TRO motion filed  ", NOW, actor="Ops On-call")
    assert re.fullmatch(r"stop-20260107T180000Z-[0-9a-f]{6}", stop.id), stop.id
    assert stop.as_dict() == {"id": stop.id, "reason": "TRO motion filed", "set_by": "Ops On-call",
                              "set_at": iso(NOW)}  # fmt: skip
    [entry] = _entries(life, "hold-set")
    assert (entry.actor, entry.payload) == ("Ops On-call", {"stop": stop.id, "reason": "TRO motion filed"})
    with life.engine.connect() as conn:
        assert [s.id for s in hold.current(conn, life.trust(), NOW).active] == [stop.id]


def test_a_clearing_names_every_active_stop_and_is_recorded_with_its_signer(life: Any) -> None:
    first, second = set_stop(life, "one", NOW), set_stop(life, "two", NOW)
    with life.engine.connect() as conn:
        active = hold.current(conn, life.trust(), NOW).active
    doc = hold.clear_statement(active, "  TRO denied ", NOW)
    assert doc["stops"] == sorted([first.id, second.id]) and doc["reason"] == "TRO denied"
    assert doc["kind"] == "handoff.hold-clear" and doc["issued_at"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    partial = sign("ops", {**doc, "stops": [first.id]})
    with life.ctx.write() as conn, pytest.raises(GateError, match=f"does not name every active stop \\({second.id}\\)"):
        hold.clear(conn, life.trust(), partial, NOW)
    with life.ctx.write() as conn:
        verified = hold.clear(conn, life.trust(), sign("ops", doc), NOW)
    assert verified.principal == "Ops On-call"
    [entry] = _entries(life, "hold-cleared")
    assert entry.actor == "Ops On-call" and entry.payload["stops"] == doc["stops"]
    assert entry.payload["reason"] == "TRO denied" and entry.payload["key"] == verified.signer.fingerprint
    with life.engine.connect() as conn:
        assert hold.current(conn, life.trust(), NOW).active == []
    with pytest.raises(HandoffError, match="^no emergency stop is active$"):
        hold.clear_statement([], "again", NOW)
    with life.ctx.write() as conn, pytest.raises(HandoffError, match="^no emergency stop is active$"):
        hold.clear(conn, life.trust(), sign("ops", doc), NOW + dt.timedelta(minutes=1))


def test_a_clearing_honours_stops_seen_elsewhere_and_the_time_it_is_checked_at(life: Any) -> None:
    stop = set_stop(life, "one", NOW)
    with life.engine.connect() as conn:
        doc = hold.clear_statement(hold.current(conn, life.trust(), NOW).active, "done", NOW)
    with life.ctx.write() as conn, pytest.raises(GateError, match="stop-from-another-database"):
        hold.clear(conn, life.trust(), sign("ops", doc), NOW, {stop.id, "stop-from-another-database"})
    with pytest.raises(HandoffError, match="^give a --reason"):
        hold.clear_statement([stop], " ", NOW)
    long_after = NOW + dt.timedelta(days=400)  # the statement's issued_at is far in the past: still a clearing
    with life.ctx.write() as conn:
        assert hold.clear(conn, life.trust(), sign("ops", doc), long_after).principal == "Ops On-call"
    early = NOW - dt.timedelta(hours=1)  # checked before it was issued (beyond the allowed skew): refused
    with life.ctx.write() as conn, pytest.raises(SignatureError):
        hold.clear(conn, life.trust(), sign("ops", {**doc, "reason": "again"}), early, {stop.id})


def test_a_clearing_by_a_key_without_the_operator_role_leaves_the_stop_active(life: Any) -> None:
    stop = set_stop(life, "one", NOW)
    with life.engine.connect() as conn:
        doc = hold.clear_statement(hold.current(conn, life.trust(), NOW).active, "I say so", NOW)
    with life.ctx.write() as conn, pytest.raises(SignatureError, match="does not hold the operator role"):
        hold.clear(conn, life.trust(), sign("ada", doc), NOW)
    with life.engine.connect() as conn:
        state = hold.current(conn, life.trust(), NOW)
    assert [s.id for s in state.active] == [stop.id]


def test_a_decision_on_a_batch_that_moved_on_meanwhile_is_refused_under_the_lock(life: Any, staged: Any) -> None:
    """Checked (files hashed) outside the lock, then the batch was rejected by someone else: recording
    re-reads the status under the lock and refuses, naming the batch."""
    order, decided, _ = _verified(life, staged)
    decide(life, staged.id, "bo", "reject", note="scope too broad")
    with life.ctx.write() as conn, pytest.raises(GateError, match=f"^batch {staged.id} is rejected; only a staged"):
        approval.record(conn, staged, order, decided, NOW)


def test_a_decision_on_a_batch_that_is_not_open_names_the_way_out() -> None:
    with pytest.raises(GateError) as caught:
        approval.decidable("b1", "delivering")
    assert str(caught.value) == ("batch b1 is delivering; only a staged, held or awaiting batch can be decided; a "
                                 "delivery that cannot complete is taken back with `handoff withdraw`")  # fmt: skip
    with pytest.raises(GateError) as caught:
        approval.decidable("b1", "delivered")
    assert str(caught.value) == "batch b1 is delivered; only a staged, held or awaiting batch can be decided"
    for status in ("staged", "held", "awaiting-approval", "approved"):
        approval.decidable("b1", status)


def test_stops_and_clearings_are_recorded_at_the_time_they_were_made(life: Any) -> None:
    stop = set_stop(life, "one", NOW)
    later = NOW + dt.timedelta(minutes=3)
    with life.engine.connect() as conn:
        doc = hold.clear_statement(hold.current(conn, life.trust(), NOW).active, "done", NOW)
    with life.ctx.write() as conn:
        hold.clear(conn, life.trust(), sign("ops", doc), later)
    assert [e.at for e in _entries(life, "hold-set")] == [iso(NOW)]
    assert [e.at for e in _entries(life, "hold-cleared")] == [iso(later)]
    # A second stop, cleared without saying which stops are active: the earlier clearing is re-verified.
    again = set_stop(life, "two", later)
    with life.engine.connect() as conn:
        doc = hold.clear_statement(hold.current(conn, life.trust(), later).active, "done again", later)
    assert doc["stops"] == [again.id] and stop.id not in doc["stops"]
    with life.ctx.write() as conn:
        assert hold.clear(conn, life.trust(), sign("ops", doc), later).doc["stops"] == [again.id]


def test_a_clearing_dated_in_the_future_clears_nothing_until_its_time(life: Any) -> None:
    """An insider plants a clearing signed for tomorrow into the ledger: the stop holds until then."""
    stop = set_stop(life, "one", NOW)
    tomorrow = NOW + dt.timedelta(days=1)
    planted = sign("ops", hold.clear_statement([stop], "early", tomorrow))
    with life.ctx.write() as conn:
        ledger.append(conn, "hold-cleared", "Ops On-call", at=NOW, payload={**planted.as_dict(), "stops": [stop.id]})
    with life.engine.connect() as conn:
        now_state = hold.current(conn, life.trust(), NOW)
        then_state = hold.current(conn, life.trust(), tomorrow)
    assert [s.id for s in now_state.active] == [stop.id] and len(now_state.ignored) == 1
    assert then_state.active == [] and then_state.ignored == []
    # Cleared properly now: the planted clearing is judged at now too, so the stop is still there to clear.
    with life.ctx.write() as conn:
        hold.clear(conn, life.trust(), sign("ops", hold.clear_statement([stop], "reviewed", NOW)), NOW)


def test_what_an_approver_signs_expires_within_its_limits(life: Any, staged: Any) -> None:
    order, destination = life.ctx.order_for(staged), life.ctx.destination(staged)
    five, thirty = dt.timedelta(minutes=5), dt.timedelta(days=30)
    for ttl in (five, thirty):
        doc = approval.statement_for(staged, order, destination, "approve", None, NOW, ttl)
        assert doc["expires_at"] == (NOW + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    for ttl in (five - dt.timedelta(seconds=1), thirty + dt.timedelta(seconds=1)):
        with pytest.raises(GateError) as caught:
            approval.statement_for(staged, order, destination, "approve", None, NOW, ttl)
        assert str(caught.value) == "an approval expires between 5 minutes and 30 days after it is signed"
    with pytest.raises(GateError) as caught:
        approval.statement_for(staged, order, destination, "maybe", None, NOW)
    assert str(caught.value) == "decision must be approve or reject, not 'maybe'"


def test_a_decision_about_another_destination_names_the_field_whatever_its_shape(life: Any, staged: Any) -> None:
    order, destination = life.ctx.order_for(staged), life.ctx.destination(staged)
    doc = approval.statement_for(staged, order, destination, "approve", None, NOW)
    want = destination.as_dict()
    older = {k: v for k, v in want.items() if k != "audit_bucket"}  # signed before audit buckets were bound
    said = approval.mismatch({**doc, "destination": older}, staged, order, destination)
    assert said is not None and said.startswith("it names destination audit_bucket None, but this batch")
    for shape in ("s3://elsewhere", None, ["bucket"]):
        assert approval.mismatch({**doc, "destination": shape}, staged, order, destination) == (
            "it names another destination than this batch is to be delivered with"
        )
    assert approval.mismatch(doc, staged, order, destination) is None


def test_the_decisions_read_for_a_batch_are_its_own_and_only_decisions(life: Any, s3: Any,
                                                                        sqlite_source_url: str) -> None:  # fmt: skip
    first = transfer(life, sqlite_source_url, s3.name).batch
    second = transfer(life, sqlite_source_url, s3.name).batch
    approve(life, first.id, "ada")
    decide(life, second.id, "bo", "reject", note="no")
    with life.engine.connect() as conn:
        mine = approval.signed_decisions(conn, first.id)
        theirs = approval.signed_decisions(conn, second.id)
    assert [json.loads(s.statement)["decision"] for s in mine] == ["approve"]
    assert [json.loads(s.statement)["batch_id"] for s in theirs] == [second.id]
