"""Gates are pure decisions over (batch, order, runtime view, now): each open, or held with a reason."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support import APPROVERS, COUNSEL, HEARING_ID, INITIATOR, NOW, POLICY_DIR

from handoff import gates
from handoff.approval import Decision, authorise
from handoff.batch import Batch
from handoff.court import HearingRecord, calendar, record_outcome
from handoff.errors import GateError, HandoffError
from handoff.hold import StopState
from handoff.order import PolicySet
from handoff.state import open_state

LA = ZoneInfo("America/Los_Angeles")
ORDER = PolicySet(POLICY_DIR).current()


def make_batch(**changes) -> Batch:  # type: ignore[no-untyped-def]
    base = Batch(
        id="20260107T180000Z-abc123", order_ref=ORDER.ref, order_id=ORDER.order_id,
        order_version=ORDER.version, policy_hash=ORDER.policy_hash, suite_hash="s" * 64, status="staged",
        status_reason=None,
        initiator=INITIATOR, created_at=NOW.isoformat(), updated_at=NOW.isoformat(), jurisdictions=["CA"],
        source_url="sqlite:///x.db", source_tables=["enrollees"], query_sql="SELECT 1", query_hash="q" * 64,
        snapshot_at=NOW.isoformat(), since=None, watermark=None, rows_extracted=10, rows_quarantined=0,
        rows_staged=10, excluded={}, quarantined_by_rule={}, validation={}, content_hash="c" * 64,
        staging_path="/nowhere", flow_run_id=None,
    )  # fmt: skip
    return replace(base, **changes)


def hearing(outcome: str | None, hid: str = HEARING_ID, outcome_at: str | None = None) -> HearingRecord:
    return HearingRecord(hid, ORDER.order_id, "2026-01-02T18:00:00+00:00", "Hearing", "order file", outcome,
                         COUNSEL if outcome else None, outcome_at, None)  # fmt: skip


def approved_by(name: str, batch: Batch, **changes) -> Decision:  # type: ignore[no-untyped-def]
    d = Decision(batch.id, "approve", name, batch.content_hash or "", ORDER.policy_hash, ORDER.ref, None,
                 NOW.isoformat())  # fmt: skip
    return replace(d, **changes)


def all_clear(batch: Batch) -> gates.RuntimeView:
    return gates.RuntimeView(
        hearings=[hearing("upheld")],
        stop=None,
        decisions=[approved_by(APPROVERS[0], batch)],
        approvers=list(APPROVERS),
    )


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
                                           "policy_version", "approval"]  # fmt: skip
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
    view = replace(all_clear(batch), hearings=[hearing("enjoined")])
    status, reason = gates.status_for(gates.evaluate(batch, ORDER, view, NOW))
    assert status == "held" and "enjoined" in reason


@pytest.fixture
def court(tmp_path: Path):  # type: ignore[no-untyped-def]
    policy_dir = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, policy_dir)
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    yield engine, PolicySet(policy_dir), policy_dir
    engine.dispose()


def test_narrowed_outcome_requires_an_order_file(court) -> None:  # type: ignore[no-untyped-def]
    engine, policies, _ = court
    with engine.begin() as conn, pytest.raises(HandoffError, match="--order-file"):
        record_outcome(conn, policies, HEARING_ID, "narrowed", COUNSEL, NOW)
    with engine.connect() as conn:
        assert next(h for h in calendar(conn, policies) if h.id == HEARING_ID).outcome is None


def test_narrowed_outcome_installs_new_version_and_holds_old_batches(court, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine, policies, policy_dir = court
    text = (policy_dir / "orders" / "2025-12-29.yaml").read_text()
    narrowed = tmp_path / "narrowed.yaml"
    narrowed.write_text(
        text.replace("version: 1", "version: 2", 1)
        .replace("supersedes: null", f"supersedes: {ORDER.ref}")
        .replace("  phone: [elgbl_phne_num_home]\n", "")
    )
    with engine.begin() as conn:
        h = record_outcome(conn, policies, HEARING_ID, "narrowed", COUNSEL, NOW, narrowed)
    assert h.outcome == "narrowed" and h.outcome_order_ref == f"{ORDER.order_id}@v2"

    after = PolicySet(policy_dir)
    v2 = after.current()
    assert v2.version == 2 and "elgbl_phne_num_home" not in v2.columns
    old_batch = make_batch()
    decision = gates.policy_version(old_batch, v2)
    assert not decision.open and ORDER.ref in decision.reason and v2.ref in decision.reason


def test_unknown_hearing_and_second_outcome_are_refused(court) -> None:  # type: ignore[no-untyped-def]
    engine, policies, _ = court
    with engine.begin() as conn:
        with pytest.raises(HandoffError, match="no hearing"):
            record_outcome(conn, policies, "no-such-hearing", "upheld", COUNSEL, NOW)
        record_outcome(conn, policies, HEARING_ID, "upheld", COUNSEL, NOW)
        with pytest.raises(HandoffError, match="already has outcome"):
            record_outcome(conn, policies, HEARING_ID, "enjoined", COUNSEL, NOW)


# ----- emergency stop, policy version ---------------------------------------------------------------
def test_emergency_stop_holds_and_a_cleared_one_does_not() -> None:
    batch = make_batch()
    stop = StopState(True, "TRO motion filed", "Ops", NOW.isoformat())
    view = replace(all_clear(batch), stop=stop)
    status, reason = gates.status_for(gates.evaluate(batch, ORDER, view, NOW))
    assert status == "held" and "TRO motion filed" in reason
    cleared = replace(stop, active=False)
    assert gates.emergency_stop(cleared).open
    assert gates.emergency_stop(None).open


def test_policy_version_change_holds() -> None:
    batch = make_batch()
    assert gates.policy_version(batch, ORDER).open
    newer = ORDER.model_copy(update={"version": 2})
    assert not gates.policy_version(batch, newer).open
    edited = make_batch(policy_hash="0" * 64)
    decision = gates.policy_version(edited, ORDER)
    assert not decision.open and "re-run the transfer" in decision.reason
    status, reason = gates.status_for(gates.evaluate(edited, ORDER, all_clear(edited), NOW))
    assert status == "superseded" and "handoff revalidate" in (reason or "")


# ----- approval ------------------------------------------------------------------------------------
def test_unauthorised_approver_is_refused() -> None:
    with pytest.raises(GateError, match="'Mallory' is not an authorised approver"):
        authorise("Mallory", make_batch(), list(APPROVERS))
    with pytest.raises(GateError, match="HANDOFF_APPROVERS"):
        authorise(APPROVERS[0], make_batch(), [])
    authorise(APPROVERS[0], make_batch(), list(APPROVERS))


def test_initiator_cannot_approve_their_own_batch() -> None:
    batch = make_batch(initiator=APPROVERS[0])
    with pytest.raises(GateError, match="cannot approve"):
        authorise(APPROVERS[0], batch, list(APPROVERS))
    view = gates.RuntimeView(decisions=[approved_by(APPROVERS[0], batch)], approvers=list(APPROVERS))
    assert not gates.approval(batch, ORDER, view).open


def test_changed_content_voids_the_approval() -> None:
    batch = make_batch()
    view = gates.RuntimeView(decisions=[approved_by(APPROVERS[0], batch)], approvers=list(APPROVERS))
    assert gates.approval(batch, ORDER, view).open
    changed = make_batch(content_hash="d" * 64)
    decision = gates.approval(changed, ORDER, view)
    assert not decision.open and "void" in decision.reason


def test_changed_policy_or_approver_list_voids_the_approval() -> None:
    batch = make_batch()
    stale = gates.RuntimeView(decisions=[approved_by(APPROVERS[0], batch, policy_hash="0" * 64)],
                              approvers=list(APPROVERS))  # fmt: skip
    assert not gates.approval(batch, ORDER, stale).open
    removed = gates.RuntimeView(decisions=[approved_by(APPROVERS[0], batch)], approvers=[APPROVERS[1]])
    assert not gates.approval(batch, ORDER, removed).open


def test_no_decision_awaits_approval_and_rejection_wins() -> None:
    batch = make_batch()
    waiting = gates.approval(batch, ORDER, gates.RuntimeView(approvers=list(APPROVERS)))
    assert not waiting.open and "awaiting approval" in waiting.reason
    both = gates.RuntimeView(
        decisions=[
            approved_by(APPROVERS[0], batch),
            approved_by(APPROVERS[1], batch, decision="reject", note="no"),
        ],
        approvers=list(APPROVERS),
    )
    decision = gates.approval(batch, ORDER, both)
    assert not decision.open and decision.reason.startswith("rejected by Bo Approver")
    view = replace(all_clear(batch), decisions=both.decisions)
    assert gates.status_for(gates.evaluate(batch, ORDER, view, NOW))[0] == "rejected"


def test_re_evaluating_an_unchanged_hold_adds_no_ledger_entries(life, sqlite_source_url: str, s3) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from support import INITIATOR, ledger_kinds

    from handoff.pipeline import StageRequest

    before_effective = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)
    batch = life.transfer(StageRequest(sqlite_source_url, initiator=INITIATOR), s3.name, before_effective).batch
    assert batch.status == "held"
    count = len(ledger_kinds(life, batch.id))
    for minutes in (1, 2, 3):
        assert life.refresh(batch.id, before_effective + dt.timedelta(minutes=minutes)).batch.status == "held"
    assert len(ledger_kinds(life, batch.id)) == count
