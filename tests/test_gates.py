"""Gates are pure decisions over (batch, order, runtime view, now): each open, or held with a reason.

Approvals, outcomes and stop clearings are real SSH signatures (keys made with ssh-keygen in
``support``), verified in Python against the trust file in the view.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support import APPROVERS, COUNSEL, HEARING_ID, INITIATOR, NOW, POLICY_DIR, sign

from handoff.authority import approval, hold, request
from handoff.authority.hold import Stop, StopState
from handoff.extract.stage import StagedFile, content_hash
from handoff.gates import decide as gates
from handoff.policy.order import PolicySet
from handoff.signing.statement import Signed
from handoff.signing.trust import Signer, load_trust, trust_path
from handoff.state import validated
from handoff.state.batch import Batch
from handoff.storage.deliver import Destination

LA = ZoneInfo("America/Los_Angeles")
ORDER = PolicySet(POLICY_DIR).current()
TRUST = load_trust(trust_path(POLICY_DIR))
BATCH_ID = "20260107T180000Z-abc123"
DEST = Destination("agency-handoff", f"{ORDER.order_id}.v1/{BATCH_ID}/", "key-1", "https://s3.example", "agency-audit")
FILES = [StagedFile("part-00000.parquet", 6, 100, "a" * 64), StagedFile("part-00001.parquet", 4, 90, "b" * 64)]
VALIDATED = validated.Validated(3, "e" * 64, content_hash(FILES), 10, validated.files_payload(FILES))


def signer(principal: str) -> Signer:
    return next(s for s in TRUST.signers if s.principal == principal)


INITIATOR_KEY = signer(INITIATOR)
COUNSEL_KEY = signer(COUNSEL)


def make_batch(**changes) -> Batch:  # type: ignore[no-untyped-def]
    base = Batch(
        id=BATCH_ID, order_ref=ORDER.ref, order_id=ORDER.order_id,
        order_version=ORDER.version, policy_hash=ORDER.policy_hash, suite_hash="s" * 64, status="staged",
        status_reason=None,
        initiator=INITIATOR, created_at=NOW.isoformat(), updated_at=NOW.isoformat(), jurisdictions=["CA"],
        source_url="sqlite:///x.db", source_tables=["enrollees"], query_sql="SELECT 1", query_hash="q" * 64,
        snapshot_at=NOW.isoformat(), since=None, watermark=None, rows_extracted=10, rows_quarantined=0,
        rows_staged=10, excluded={}, quarantined_by_rule={}, validation={}, content_hash=content_hash(FILES),
        staging_path="/nowhere", flow_run_id=None, bucket="agency-handoff", files=list(FILES),
    )  # fmt: skip
    return replace(base, **changes)


def hearing(outcome: str | None, hid: str = HEARING_ID, outcome_at: str | None = None) -> Any:
    from handoff.authority.court import HearingRecord

    return HearingRecord(hid, ORDER.order_id, "2026-01-02T18:00:00+00:00", "Hearing", "order file", outcome,
                         COUNSEL if outcome else None, outcome_at, None)  # fmt: skip


def decision(label: str, batch: Batch, decision: str = "approve", note: str | None = None, order: Any = ORDER,
             dest: Destination = DEST, now: dt.datetime = NOW, **changes: Any) -> Signed:  # fmt: skip
    """A decision statement about ``batch`` signed by ``label``; ``changes`` edit it before signing."""
    doc = approval.statement_for(batch, order, dest, decision, note, now)
    doc.update(changes)
    return sign(label, doc)


def view(batch: Batch, decisions: list[Signed] | None = None, **changes: Any) -> gates.RuntimeView:
    base = gates.RuntimeView(
        trust=TRUST, hearings=[hearing("upheld")], stops=StopState([], []),
        decisions=[decision("ada", batch)] if decisions is None else decisions,
        destination=DEST, initiator=INITIATOR_KEY, order_signoff=COUNSEL_KEY, validated=VALIDATED,
    )  # fmt: skip
    return replace(base, **changes)


def all_clear(batch: Batch) -> gates.RuntimeView:
    return view(batch)


def approval_gate(batch: Batch, v: gates.RuntimeView, order: Any = ORDER, now: dt.datetime = NOW) -> gates.GateDecision:
    return gates.approval(batch, order, v, now)


# ----- effective instant ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        pytest.param(dt.datetime(2026, 1, 5, 23, 59, tzinfo=LA), False, id="LA-one-minute-before"),
        pytest.param(dt.datetime(2026, 1, 6, 7, 59, tzinfo=dt.UTC), False, id="UTC-07:59Z"),
        pytest.param(dt.datetime(2026, 1, 6, 2, 59, tzinfo=ZoneInfo("America/New_York")), False, id="NY-02:59"),
        pytest.param(dt.datetime(2026, 1, 6, 0, 0, tzinfo=LA), True, id="LA-midnight"),
        pytest.param(dt.datetime(2026, 1, 6, 8, 0, tzinfo=dt.UTC), True, id="UTC-08:00Z"),
        pytest.param(dt.datetime(2026, 1, 6, 0, 0, tzinfo=dt.UTC), False, id="UTC-midnight-is-still-Jan-5-in-LA"),
    ],
)
def test_order_takes_effect_at_midnight_court_time(now: dt.datetime, is_open: bool) -> None:
    decision = gates.effective_date(ORDER, now)
    assert decision.gate == "effective_date"
    assert decision.open is is_open
    if not is_open:
        assert "2026-01-06T00:00:00-08:00" in decision.reason and "America/Los_Angeles" in decision.reason


def test_everything_open_means_approved() -> None:
    batch = make_batch()
    decisions = gates.evaluate(batch, ORDER, all_clear(batch), NOW)
    assert [d.gate for d in decisions] == ["effective_date", "pending_hearing", "emergency_stop",
                                           "order_signature", "order_in_force", "policy_version",
                                           "validated_content", "approval"]  # fmt: skip
    assert gates.all_open(decisions)
    assert gates.status_for(decisions) == ("approved", None)


def test_before_effective_instant_batch_is_held() -> None:
    batch = make_batch()
    decisions = gates.evaluate(batch, ORDER, all_clear(batch), dt.datetime(2026, 1, 6, 7, 59, tzinfo=dt.UTC))
    status, reason = gates.status_for(decisions)
    assert status == "held" and reason.startswith("effective_date:")


# ----- hearings ----------------------------------------------------------------------------------------
def test_pending_hearing_holds() -> None:
    decision = gates.pending_hearing(ORDER, [hearing(None)])
    assert not decision.open
    assert HEARING_ID in decision.reason and "handoff court outcome" in decision.reason


@pytest.mark.parametrize(("outcome", "is_open"), [("upheld", True), ("narrowed", True), ("enjoined", False),
                                                  ("vacated", False)])  # fmt: skip
def test_hearing_outcome_decides(outcome: str, is_open: bool) -> None:
    decision = gates.pending_hearing(ORDER, [hearing(outcome)])
    assert decision.open is is_open
    assert outcome in decision.reason


def test_one_pending_hearing_holds_even_after_another_was_decided() -> None:
    decided, pending = hearing("upheld"), hearing(None, hid="cand-2026-02-10")
    assert not gates.pending_hearing(ORDER, [decided, pending]).open


def test_latest_outcome_wins() -> None:
    early = hearing("upheld", outcome_at="2026-01-03T00:00:00+00:00")
    late = hearing("enjoined", hid="cand-2026-02-10", outcome_at="2026-02-11T00:00:00+00:00")
    assert not gates.pending_hearing(ORDER, [early, late]).open


def test_hearing_on_another_order_does_not_hold() -> None:
    other = replace(hearing(None), order_id="some-other-order")
    assert gates.pending_hearing(ORDER, [other]).open


def test_enjoined_batch_is_held() -> None:
    batch = make_batch()
    status, reason = gates.status_for(gates.evaluate(batch, ORDER, view(batch, hearings=[hearing("enjoined")]), NOW))
    assert status == "held" and "enjoined" in reason


# ----- emergency stop, order signature, policy version ---------------------------------------------
def test_emergency_stop_holds_until_a_signed_clearing() -> None:
    batch = make_batch()
    stop = Stop("stop-1", "TRO motion filed", "Ops", NOW.isoformat())
    status, reason = gates.status_for(gates.evaluate(batch, ORDER, view(batch, stops=StopState([stop], [])), NOW))
    assert status == "held" and "TRO motion filed" in reason

    clearing = hold.clear_statement([stop], "TRO denied", NOW)
    assert hold.state([stop], [sign("ops", clearing)], TRUST, NOW).active == []
    # An approver's key, an unenrolled key or an edited statement clears nothing.
    for signed in (
        sign("ada", clearing),
        sign("mallory", clearing),
        Signed(sign("ops", clearing).statement.replace(b"stop-1", b"stop-2"), sign("ops", clearing).signature),
    ):
        state = hold.state([stop], [signed], TRUST, NOW)
        assert [s.id for s in state.active] == ["stop-1"] and state.ignored
    other = hold.clear_statement([replace(stop, id="stop-2")], "wrong stop", NOW)
    assert [s.id for s in hold.state([stop], [sign("ops", other)], TRUST, NOW).active] == ["stop-1"]
    assert gates.emergency_stop(StopState([], [])).open


def test_unsigned_order_version_holds() -> None:
    batch = make_batch()
    why = "2025-12-29.yaml has no counsel signature"
    status, reason = gates.status_for(gates.evaluate(batch, ORDER, view(batch, order_signoff=why), NOW))
    assert status == "held" and "order_signature" in reason and why in reason


def test_policy_version_change_holds() -> None:
    batch = make_batch()
    assert gates.policy_version(batch, ORDER).open
    newer = ORDER.model_copy(update={"version": 2})
    assert not gates.policy_version(batch, newer).open
    edited = make_batch(policy_hash="0" * 64)
    decision_ = gates.policy_version(edited, ORDER)
    assert not decision_.open and "re-run the transfer" in decision_.reason
    status, reason = gates.status_for(gates.evaluate(edited, ORDER, all_clear(edited), NOW))
    assert status == "superseded" and "handoff revalidate" in (reason or "")


# ----- approval: signatures, not names -------------------------------------------------------------
def test_a_valid_signed_approval_opens_the_gate_and_names_the_trust_files_principal() -> None:
    batch = make_batch()
    g = approval_gate(batch, view(batch))
    assert g.open and g.reason.startswith(f"approved by {APPROVERS[0]}")


@pytest.mark.parametrize(
    ("label", "why"),
    [("mallory", "not in the trust file"), ("ops", "does not hold the approver role"),
     ("counsel", "does not hold the approver role")],
)  # fmt: skip
def test_a_key_without_the_approver_role_approves_nothing(label: str, why: str) -> None:
    batch = make_batch()
    g = approval_gate(batch, view(batch, [decision(label, batch)]))
    assert not g.open and why in g.reason


def test_the_initiators_key_and_person_cannot_approve() -> None:
    batch = make_batch()
    dual = signer("Di Dual")  # holds both operator and approver roles
    g = approval_gate(batch, view(batch, [decision("dual", batch)], initiator=dual))
    assert not g.open and "started batch" in g.reason
    # Not knowing who started it is not an open door either.
    g = approval_gate(batch, view(batch, initiator="the transfer request no longer verifies"))
    assert not g.open and "cannot tell who started" in g.reason


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"content_hash": "d" * 64}, id="other-content"),
        pytest.param({"batch_id": "20260107T180000Z-ffffff"}, id="other-batch"),
        pytest.param({"rows": 11}, id="other-row-count"),
        pytest.param({"policy_hash": "0" * 64}, id="other-policy"),
        pytest.param({"destination": {**DEST.as_dict(), "bucket": "other-bucket"}}, id="other-bucket"),
        pytest.param({"destination": {**DEST.as_dict(), "prefix": "elsewhere/"}}, id="other-prefix"),
        pytest.param({"destination": {**DEST.as_dict(), "kms_key_id": None}}, id="other-kms-key"),
    ],
)
def test_an_approval_binds_content_order_and_destination(changes: dict[str, Any]) -> None:
    batch = make_batch()
    g = approval_gate(batch, view(batch, [decision("ada", batch, **changes)]))
    assert not g.open and "does not bind" in g.reason


def test_a_changed_destination_voids_an_approval() -> None:
    batch = make_batch()
    moved = Destination("other-bucket", DEST.prefix, DEST.kms_key_id)
    g = approval_gate(batch, view(batch, destination=moved))
    assert not g.open and "destination" in g.reason


def test_an_approval_claiming_a_lifetime_beyond_the_limit_approves_nothing() -> None:
    batch = make_batch()
    forever = decision("ada", batch, expires_at="2099-01-01T00:00:00Z")
    g = approval_gate(batch, view(batch, [forever]))
    assert not g.open and "claims to last longer than" in g.reason


def test_an_expired_approval_and_a_removed_key_approve_nothing(tmp_path: Path) -> None:
    batch = make_batch()
    late = NOW + approval.DEFAULT_TTL + dt.timedelta(seconds=1)
    g = approval_gate(batch, view(batch), now=late)
    assert not g.open and "expired" in g.reason

    lines = TRUST.path.read_text().splitlines(keepends=True)
    revoked = tmp_path / "allowed_signers"
    revoked.write_text("".join(x for x in lines if APPROVERS[0] not in x))
    g = approval_gate(batch, view(batch, trust=load_trust(revoked)))
    assert not g.open and "not in the trust file" in g.reason


def test_an_altered_statement_or_other_namespace_is_ignored() -> None:
    batch = make_batch()
    good = decision("ada", batch)
    tampered = Signed(good.statement.replace(b'"rows":10', b'"rows":9'), good.signature)
    g = approval_gate(batch, view(batch, [tampered]))
    assert not g.open and "does not match" in g.reason
    from support import KEYS

    from handoff.signing.statement import canonical, sign_with_key

    doc = approval.statement_for(batch, ORDER, DEST, "approve", None, NOW)
    wrong_ns = Signed(canonical(doc), sign_with_key(canonical(doc), KEYS.key("ada"), "git"))
    g = approval_gate(batch, view(batch, [wrong_ns]))
    assert not g.open and "another namespace" in g.reason


def test_two_approvals_from_two_people_when_the_order_requires_them() -> None:
    two = ORDER.model_copy(update={"approvals_required": 2})
    batch = make_batch(policy_hash=two.policy_hash)
    ada, bo = decision("ada", batch, order=two), decision("bo", batch, order=two)
    g = approval_gate(batch, view(batch, [ada]), order=two)
    assert not g.open and "needs 2 approvals" in g.reason
    g = approval_gate(batch, view(batch, [ada, decision("ada", batch, order=two, note="again")]), order=two)
    assert not g.open, "one person's two signatures are one approval"
    g = approval_gate(batch, view(batch, [ada, bo]), order=two)
    assert g.open and APPROVERS[0] in g.reason and APPROVERS[1] in g.reason


def test_no_decision_awaits_approval_and_a_signed_rejection_wins() -> None:
    batch = make_batch()
    waiting = approval_gate(batch, view(batch, []))
    assert not waiting.open and "awaiting approval" in waiting.reason
    both = [decision("ada", batch), decision("bo", batch, "reject", "scope too broad")]
    g = approval_gate(batch, view(batch, both))
    assert not g.open and g.reason.startswith(f"rejected by {APPROVERS[1]}") and "scope too broad" in g.reason
    assert gates.status_for(gates.evaluate(batch, ORDER, view(batch, both), NOW))[0] == "rejected"
    # A rejection without a reason is refused, so it cannot block silently either.
    g = approval_gate(batch, view(batch, [decision("bo", batch, "reject", "")]))
    assert not g.open and "needs a note" in g.reason


def test_a_transfer_request_names_its_batch() -> None:
    doc = request.statement_for(BATCH_ID, None, ["06"], "sqlite:///x.db", "agency-handoff", False, NOW)
    signed = sign("operator", doc)
    batch = make_batch(request_statement=signed.statement.decode(), request_signature=signed.signature)
    assert request.initiator(TRUST, batch, NOW).principal == INITIATOR
    other = dataclasses.replace(batch, id="20260107T180000Z-0000aa")
    with pytest.raises(Exception, match="was made for batch"):
        request.initiator(TRUST, other, NOW)


def test_re_evaluating_an_unchanged_hold_adds_no_ledger_entries(life, sqlite_source_url: str, s3) -> None:  # type: ignore[no-untyped-def]
    from support import ledger_kinds, transfer

    before_effective = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)
    batch = transfer(life, sqlite_source_url, s3.name, before_effective).batch
    assert batch.status == "held"
    count = len(ledger_kinds(life, batch.id))
    for minutes in (1, 2, 3):
        assert life.refresh(batch.id, before_effective + dt.timedelta(minutes=minutes)).batch.status == "held"
    assert len(ledger_kinds(life, batch.id)) == count


# ----- validated content (read from the ledger, never from the batch row) ----------------------------
@pytest.mark.parametrize(
    ("files", "batch_hash", "rows", "expect"),
    [
        pytest.param(
            [replace(FILES[0], sha256="9" * 64), FILES[1]], None, 10, "part-00000.parquet differs", id="a-file-swapped"
        ),
        pytest.param([replace(FILES[0], rows=9), FILES[1]], None, 9, "part-00000.parquet differs", id="rows-cut"),
        pytest.param(
            [*FILES, StagedFile("part-00002.parquet", 1, 5, "c" * 64)],
            None,
            11,
            "part-00002.parquet was not among",
            id="a-file-added",
        ),
        pytest.param(FILES[:1], None, 6, "part-00001.parquet, recorded by validation", id="a-file-dropped"),
        pytest.param(FILES, "d" * 64, 10, "content hash differs", id="only-the-hash-edited"),
        pytest.param(FILES, None, 11, "11 rows, but validation recorded 10", id="only-the-row-count-edited"),
    ],
)
def test_content_other_than_validation_recorded_holds(files: list[StagedFile], batch_hash: str | None, rows: int,
                                                       expect: str) -> None:  # fmt: skip
    batch = make_batch(files=files, content_hash=batch_hash or content_hash(files), rows_staged=rows)
    gate = gates.validated_content(batch, VALIDATED)
    assert not gate.open and expect in gate.reason and "ledger entry 3" in gate.reason
    status, reason = gates.status_for(gates.evaluate(batch, ORDER, view(batch), NOW))
    assert status == "held" and "validated_content" in reason


def test_no_validation_entry_or_a_failed_one_holds() -> None:
    batch = make_batch()
    assert not gates.validated_content(batch, None).open
    failed = dataclasses.replace(VALIDATED, content_hash=None)
    assert "failed its checks" in gates.validated_content(batch, failed).reason
    legacy = dataclasses.replace(VALIDATED, files=None)  # an entry written before files were recorded
    assert gates.validated_content(batch, legacy).open
    assert not gates.validated_content(make_batch(content_hash="d" * 64), legacy).open


@pytest.mark.parametrize("field", ["bucket", "prefix", "kms_key_id", "endpoint", "audit_bucket"])
def test_an_approval_binds_every_part_of_the_destination(field: str) -> None:
    batch = make_batch()
    other = replace(DEST, **{field: "something-else"})
    gate = approval_gate(batch, view(batch, [decision("ada", batch, dest=other)]))
    assert not gate.open
    assert f"destination {field} 'something-else'" in gate.reason, gate.reason


# ----- the order version in force comes from the ledger ------------------------------------------------
def accepted(version: int, sha: str | None = "f" * 64) -> Any:
    from handoff.authority.in_force import Accepted

    return Accepted(f"{ORDER.order_id}@v{version}", version, sha, 7, "first used")


def test_a_policy_folder_behind_the_ledger_holds_and_never_supersedes() -> None:
    batch = make_batch(order_ref=f"{ORDER.order_id}@v2", policy_hash="p" * 64)  # validated under v2
    v = view(batch, accepted=accepted(2), order_file_sha256="f" * 64)
    decisions = gates.evaluate(batch, ORDER, v, NOW)
    gate = next(d for d in decisions if d.gate == "order_in_force")
    assert not gate.open and f"{ORDER.order_id}@v2's file is missing" in gate.reason and "entry 7" in gate.reason
    status, reason = gates.status_for(decisions)
    assert status == "held" and reason.startswith("order_in_force:") and "policy_version:" not in reason


@pytest.mark.parametrize(
    ("record", "file_sha", "is_open"),
    [
        pytest.param(None, "a" * 64, True, id="nothing-accepted-yet"),
        pytest.param(accepted(1), "f" * 64, True, id="the-accepted-file"),
        pytest.param(accepted(1), "a" * 64, False, id="the-accepted-version-edited"),
        pytest.param(accepted(1, None), "a" * 64, True, id="accepted-without-a-file-hash"),
        pytest.param(accepted(0), "a" * 64, True, id="a-newer-file-not-used-yet"),
        pytest.param(accepted(2), "f" * 64, False, id="the-newest-accepted-file-missing"),
    ],
)
def test_the_order_in_force_is_the_newest_the_ledger_accepted(record: Any, file_sha: str, is_open: bool) -> None:
    batch = make_batch()
    gate = gates.order_in_force(ORDER, view(batch, accepted=record, order_file_sha256=file_sha))
    assert gate.open is is_open, gate.reason


# ----- people, not keys; statements in their schema ---------------------------------------------------
def test_the_initiators_second_key_cannot_approve_and_one_person_counts_once() -> None:
    batch = make_batch()
    first, second = (s for s in TRUST.signers if s.principal == "Di Dual")
    assert first.fingerprint != second.fingerprint
    g = approval_gate(batch, view(batch, [decision("dual-second", batch)], initiator=first))
    assert not g.open and "Di Dual started batch" in g.reason
    two = ORDER.model_copy(update={"approvals_required": 2})
    both = [decision("dual", batch, order=two), decision("dual-second", batch, order=two)]
    g = approval_gate(batch, view(batch, both), order=two)
    assert not g.open and "needs 2 approvals by different people" in g.reason
    g = approval_gate(batch, view(batch, [decision("dual", batch, order=two), decision("ada", batch, order=two)]),
                      order=two)  # fmt: skip
    assert g.open, g.reason


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        pytest.param({"decision": "yes"}, "decision is not acceptable", id="a-decision-outside-the-set"),
        pytest.param({"issued_at": "2027-01-07T18:00:00Z", "expires_at": "2027-01-08T18:00:00Z"},
                     "is in the future", id="issued-a-year-ahead"),
        pytest.param({"approved_by": "Ada"}, "approved_by is not acceptable", id="a-field-the-kind-lacks"),
        pytest.param({"rows": "10"}, "rows is not acceptable", id="a-number-as-text"),
        pytest.param({"expires_at": "2026-01-07T17:00:00Z"}, "not after its issued_at", id="expires-before-issued"),
    ],
)  # fmt: skip
def test_a_statement_outside_its_schema_approves_nothing(changes: dict[str, Any], why: str) -> None:
    batch = make_batch()
    doc = {**approval.statement_for(batch, ORDER, DEST, "approve", None, NOW), **changes}
    g = approval_gate(batch, view(batch, [sign("ada", doc)]))
    assert not g.open and why in g.reason, g.reason


# ----- what mutation testing showed no test caught ----------------------------------------------------
def test_no_destination_means_no_approval() -> None:
    batch = make_batch()
    g = approval_gate(batch, view(batch, destination=None))
    assert g.open is False and "no destination bucket" in g.reason


def test_only_approval_closed_awaits_and_the_held_reason_leaves_approval_out() -> None:
    batch = make_batch()
    waiting = gates.evaluate(batch, ORDER, view(batch, []), NOW)
    status, reason = gates.status_for(waiting)
    assert status == "awaiting-approval" and reason.startswith("awaiting approval")
    held = gates.evaluate(batch, ORDER, view(batch, [], hearings=[hearing(None)]), NOW)
    status, reason = gates.status_for(held)
    assert status == "held" and reason.startswith("pending_hearing:") and "approval:" not in reason


@pytest.mark.parametrize(("count", "more"), [(1, ""), (2, " (and 1 more)"), (3, " (and 2 more)")])
def test_every_active_stop_is_counted(count: int, more: str) -> None:
    stops = [Stop(f"stop-{i}", f"reason {i}", "Ops", NOW.isoformat()) for i in range(count)]
    g = gates.emergency_stop(StopState(stops, []))
    assert g.open is False and g.reason.endswith(f"reason {count - 1}{more}")
    assert gates.emergency_stop(StopState([], [])).open is True


def test_every_decision_is_a_known_gate_with_a_real_yes_or_no_and_a_reason() -> None:
    batch = make_batch()
    scenarios = [view(batch), view(batch, []), view(batch, hearings=[hearing(None)]),
                 view(batch, hearings=[hearing("enjoined")]), view(batch, hearings=[]),
                 view(batch, stops=StopState([Stop("s", "r", "Ops", NOW.isoformat())], [])),
                 view(batch, order_signoff="unsigned"), view(batch, initiator="unknown"),
                 view(batch, destination=None), view(batch, validated=None)]  # fmt: skip
    for v in scenarios:
        for d in gates.evaluate(batch, ORDER, v, NOW):
            assert d.gate in gates.GATES and isinstance(d.open, bool) and d.reason.strip()
    with pytest.raises(TypeError):
        gates.GateDecision("approval", None, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        gates.GateDecision("APPROVAL", True, "x")
    with pytest.raises(TypeError):
        gates.GateDecision("approval", True, "  ")


def test_an_approved_reason_names_the_approvers_and_nothing_else() -> None:
    batch = make_batch()
    g = approval_gate(batch, view(batch))
    assert g.open and g.reason == f"approved by {APPROVERS[0]} at {NOW.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def test_a_decided_hearing_without_an_outcome_time_sorts_before_one_with_it() -> None:
    from handoff.authority.court import HearingRecord

    unknown = HearingRecord("h-a", ORDER.order_id, "2026-01-03T18:00:00+00:00", "A", "x", "enjoined", COUNSEL, None)
    known = HearingRecord("h-b", ORDER.order_id, "2026-01-02T18:00:00+00:00", "B", "x", "upheld", COUNSEL,
                          "2026-01-04T18:00:00+00:00")  # fmt: skip
    assert gates.pending_hearing(ORDER, [unknown, known]).open is True
