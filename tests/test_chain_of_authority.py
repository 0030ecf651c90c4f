"""The recipient's check of the chain of authority: each broken link is named, an intact chain passes.

The manifest is built from real pieces (the shipped order file and counsel's signature over it,
outcomes and requests signed with ssh-keygen) and checked with ``chain.check`` against the trust
file the agency publishes.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from typing import Any

import pytest
from support import APPROVERS, HEARING_ID, INITIATOR, KEYS, NOW, POLICY_DIR, sign
from support import COUNSEL as COUNSEL_NAME

from handoff.authority import chain, signoff
from handoff.authority import request as requests
from handoff.policy.order import PolicySet
from handoff.signing import statement as st
from handoff.signing.trust import COUNSEL, load_trust, trust_path

POLICIES = PolicySet(POLICY_DIR)
ORDER = POLICIES.current()
TRUST = load_trust(trust_path(POLICY_DIR))
BATCH = "20260107T180000Z-abc123"
DELIVERED = NOW + dt.timedelta(hours=1)


def outcome(result: str, label: str = "counsel", at: dt.datetime = NOW, **extra: Any) -> dict[str, str]:
    doc = {"kind": st.HEARING_OUTCOME, "version": 1, "hearing_id": HEARING_ID, "order_id": ORDER.order_id,
           "result": result, "issued_at": st.stamp(at), **extra}  # fmt: skip
    return {"hearing": HEARING_ID, **sign(label, doc).as_dict()}


def good() -> dict[str, Any]:
    path = POLICIES.file_for(ORDER)
    body = path.read_bytes()
    request = requests.statement_for(BATCH, None, ["06"], "sqlite:///src.db", "agency", False, NOW)
    return {
        "batch_id": BATCH,
        "content_hash": "c" * 64,
        "rows": 10,
        "order": {"ref": ORDER.ref, "policy_hash": ORDER.policy_hash, "columns": ORDER.columns},
        "proof": {
            "order_file": {
                "name": path.name,
                "sha256": hashlib.sha256(body).hexdigest(),
                "text": body.decode(),
                "signature": signoff.signature_path(path).read_text(),
            },  # fmt: skip
            "hearing_outcomes": [outcome("upheld")],
            "hearings_added": [],
            "request": sign("operator", request).as_dict(),
            "validation": {"result": "passed", "content_hash": "c" * 64, "rows": 10},
        },
    }


GOOD = good()


def test_an_intact_chain_holds() -> None:
    assert chain.check(copy.deepcopy(GOOD), TRUST, DELIVERED, [APPROVERS[0]]) == []


def _edit(path: str, value: Any) -> Any:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value

    return apply


WIDER = GOOD["proof"]["order_file"]["text"].replace("name_flag: false", "name_flag: true")
# The shipped order's exact bytes, signed in counsel's namespace by a key the agency never enrolled.
MALLORY_ON_ORDER = st.sign_with_key(GOOD["proof"]["order_file"]["text"].encode(), KEYS.key("mallory"), COUNSEL)


@pytest.mark.parametrize(
    ("edit", "approvers", "when", "expect"),
    [
        pytest.param(_edit("proof", None), [APPROVERS[0]], DELIVERED, "carries no proof", id="no-proof"),
        pytest.param(_edit("proof.order_file.text", WIDER), [APPROVERS[0]], DELIVERED,
                     "order: the order text does not hash", id="order-text-swapped"),
        pytest.param(_edit("proof.order_file.signature", MALLORY_ON_ORDER), [APPROVERS[0]],
                     DELIVERED, "not signed by counsel", id="order-signed-by-an-unlisted-key"),
        pytest.param(_edit("order.columns", [*ORDER.columns, "ssn_num"]), [APPROVERS[0]], DELIVERED,
                     "delivered columns are not the columns", id="columns-beyond-the-order"),
        pytest.param(_edit("order.columns", ORDER.columns[:-1]), [APPROVERS[0]], DELIVERED,
                     "delivered columns are not the columns", id="columns-other-than-the-order"),
        pytest.param(_edit("order.ref", f"{ORDER.order_id}@v9"), [APPROVERS[0]], DELIVERED,
                     "the manifest names", id="another-version-named"),
        pytest.param(lambda d: None, [APPROVERS[0]], dt.datetime(2026, 1, 6, 7, 59, tzinfo=dt.UTC),
                     "before", id="delivered-before-the-effective-instant"),
        pytest.param(_edit("proof.hearing_outcomes", []), [APPROVERS[0]], DELIVERED,
                     f"court: hearing {HEARING_ID}", id="hearing-due-without-outcome"),
        pytest.param(_edit("proof.hearing_outcomes", [outcome("upheld", "mallory")]), [APPROVERS[0]], DELIVERED,
                     f"court: hearing {HEARING_ID}", id="outcome-signed-by-an-unlisted-key"),
        pytest.param(_edit("proof.hearing_outcomes", [outcome("upheld", at=DELIVERED + dt.timedelta(days=1))]),
                     [APPROVERS[0]], DELIVERED, f"court: hearing {HEARING_ID}", id="outcome-signed-after-delivery"),
        pytest.param(_edit("proof.hearing_outcomes", [outcome("enjoined")]), [APPROVERS[0]], DELIVERED,
                     "enjoined", id="enjoined"),
        pytest.param(_edit("proof.hearing_outcomes", [outcome("vacated")]), [APPROVERS[0]], DELIVERED,
                     "vacated", id="vacated"),
        pytest.param(_edit("proof.hearing_outcomes", [outcome("narrowed", new_order_ref=f"{ORDER.order_id}@v2",
                                                              order_file_sha256="a" * 64)]),
                     [APPROVERS[0]], DELIVERED, "was no longer permitted", id="narrowed-to-a-newer-version"),
        pytest.param(_edit("proof.request", sign("ada", {"kind": st.TRANSFER_REQUEST, "batch_id": BATCH}).as_dict()),
                     [APPROVERS[0]], DELIVERED, "request: ", id="request-by-a-non-operator"),
        pytest.param(_edit("batch_id", "20260107T180000Z-other"), [APPROVERS[0]], DELIVERED,
                     "request: the signed transfer request names batch", id="request-for-another-batch"),
        pytest.param(lambda d: None, [], DELIVERED, "needs 1 approval", id="no-approver"),
        pytest.param(lambda d: None, [INITIATOR], DELIVERED, "asked for this transfer and cannot also approve",
                     id="initiator-approves"),
        pytest.param(_edit("proof.validation.result", "failed"), [APPROVERS[0]], DELIVERED,
                     "validation: the checks did not pass", id="validation-failed"),
        pytest.param(_edit("proof.validation.content_hash", "d" * 64), [APPROVERS[0]], DELIVERED,
                     "validation: the validation summary is about other content", id="validation-of-other-content"),
        pytest.param(_edit("proof.validation", None), [APPROVERS[0]], DELIVERED, "no validation summary",
                     id="no-validation"),
    ],
)  # fmt: skip
def test_each_broken_link_is_named(edit: Any, approvers: list[str], when: dt.datetime, expect: str) -> None:
    doc = copy.deepcopy(GOOD)
    edit(doc)
    problems = chain.check(doc, TRUST, when, approvers)
    assert any(expect in p for p in problems), problems


def test_approvals_required_counts_people_other_than_the_one_who_asked() -> None:
    two = POLICIES.file_for(ORDER).read_text().replace("approvals_required: 1", "approvals_required: 2")
    assert two != POLICIES.file_for(ORDER).read_text(), "the shipped order names approvals_required"
    doc = copy.deepcopy(GOOD)
    doc["proof"]["order_file"]["text"] = two  # (also breaks the hash and the signature: named separately)
    problems = chain.check(doc, TRUST, DELIVERED, [APPROVERS[0]])
    assert any("needs 2 approval(s)" in p for p in problems), problems
    assert not any("needs 2" in p for p in chain.check(doc, TRUST, DELIVERED, APPROVERS))


def test_delivered_at_the_effective_instant_is_in_effect() -> None:
    at = ORDER.effective_instant
    assert not any(
        "before" in p and "took effect" in p for p in chain.check(copy.deepcopy(GOOD), TRUST, at, [APPROVERS[0]])
    )
    early = at - dt.timedelta(seconds=1)
    assert any("took effect" in p for p in chain.check(copy.deepcopy(GOOD), TRUST, early, [APPROVERS[0]]))


def _with(doc: dict[str, Any], **proof: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["proof"].update(proof)
    return doc


ADDED = {"hearing": "added-1", "order_id": ORDER.order_id, "at": "2026-01-05T17:00:00+00:00", "title": "TRO"}


def _added_outcome(result: str, at: dt.datetime = NOW, **extra: Any) -> dict[str, str]:
    doc = {"kind": st.HEARING_OUTCOME, "version": 1, "hearing_id": "added-1", "order_id": ORDER.order_id,
           "result": result, "issued_at": st.stamp(at), **extra}  # fmt: skip
    return {"hearing": "added-1", **sign("counsel", doc).as_dict()}


def test_a_hearing_added_at_run_time_needs_its_signed_outcome_too() -> None:
    pending = _with(GOOD, hearings_added=[ADDED])
    assert any("court: hearing added-1 (2026-01-05T17:00:00+00:00)" in p
               for p in chain.check(pending, TRUST, DELIVERED, [APPROVERS[0]]))  # fmt: skip
    decided = _with(GOOD, hearings_added=[ADDED], hearing_outcomes=[outcome("upheld"), _added_outcome("upheld")])
    assert chain.check(decided, TRUST, DELIVERED, [APPROVERS[0]]) == []
    later = _with(GOOD, hearings_added=[{**ADDED, "at": "2026-03-01T17:00:00+00:00"}])
    assert chain.check(later, TRUST, DELIVERED, [APPROVERS[0]]) == [], "a hearing after the delivery is not due"
    at_delivery = _with(GOOD, hearings_added=[{**ADDED, "at": DELIVERED.isoformat()}])
    assert any("added-1" in p for p in chain.check(at_delivery, TRUST, DELIVERED, [APPROVERS[0]]))


def test_the_newest_outcome_decides_and_outcomes_of_other_orders_do_not_count() -> None:
    enjoined_then_upheld = _with(GOOD, hearings_added=[ADDED], hearing_outcomes=[
        outcome("enjoined", at=NOW - dt.timedelta(hours=2)), _added_outcome("upheld", at=NOW)])  # fmt: skip
    assert chain.check(enjoined_then_upheld, TRUST, DELIVERED, [APPROVERS[0]]) == []
    upheld_then_enjoined = _with(GOOD, hearings_added=[ADDED], hearing_outcomes=[
        outcome("upheld", at=NOW - dt.timedelta(hours=2)), _added_outcome("enjoined", at=NOW)])  # fmt: skip
    assert any("enjoined" in p for p in chain.check(upheld_then_enjoined, TRUST, DELIVERED, [APPROVERS[0]]))
    other = {"kind": st.HEARING_OUTCOME, "version": 1, "hearing_id": HEARING_ID, "order_id": "another-order",
             "result": "upheld", "issued_at": st.stamp(NOW)}  # fmt: skip
    foreign = _with(GOOD, hearing_outcomes=[{"hearing": HEARING_ID, **sign("counsel", other).as_dict()}])
    assert any(f"court: hearing {HEARING_ID}" in p for p in chain.check(foreign, TRUST, DELIVERED, [APPROVERS[0]]))
    exactly = _with(GOOD, hearing_outcomes=[outcome("upheld", at=DELIVERED)])
    assert chain.check(exactly, TRUST, DELIVERED, [APPROVERS[0]]) == [], "signed at the delivery instant counts"


def test_a_narrowed_outcome_naming_the_delivered_version_is_no_rollback() -> None:
    same = _with(GOOD, hearing_outcomes=[outcome("narrowed", new_order_ref=ORDER.ref, order_file_sha256="a" * 64)])
    assert chain.check(same, TRUST, DELIVERED, [APPROVERS[0]]) == []


def test_an_order_missing_or_unreadable_in_the_proof_is_named() -> None:
    no_text = _with(GOOD, order_file={"name": "x.yaml"})
    assert "order: the proof does not carry the order version's text" in chain.check(no_text, TRUST, DELIVERED, [])
    garbled = copy.deepcopy(GOOD)
    garbled["proof"]["order_file"]["text"] = "order_id: [unclosed"
    problems = chain.check(garbled, TRUST, DELIVERED, [APPROVERS[0]])
    assert any(p.startswith("order: order file 2025-12-29.yaml") and "not valid YAML" in p for p in problems), problems


def _retired(tmp_path: Any, principal: str, role: str) -> Any:
    """The published trust file with ``principal``'s ``role`` key retired the day the order took effect."""
    text = trust_path(POLICY_DIR).read_text()
    retired = "".join(
        line.replace(f'namespaces="{role}"', f'namespaces="{role}",valid-before="20260106"', 1)
        if line.startswith(f'"{principal}"') else line for line in text.splitlines(keepends=True))  # fmt: skip
    assert retired != text
    path = tmp_path / "allowed_signers"
    path.write_text(retired)
    return load_trust(path)


@pytest.mark.parametrize(("principal", "role", "link"), [(COUNSEL_NAME, "handoff-counsel", "order: "),
                                                         (INITIATOR, "handoff-operator", "request: ")])  # fmt: skip
def test_a_signers_key_must_be_valid_when_the_delivery_happened(tmp_path: Any, principal: str, role: str,
                                                                link: str) -> None:  # fmt: skip
    problems = chain.check(copy.deepcopy(GOOD), _retired(tmp_path, principal, role), DELIVERED, [APPROVERS[0]])
    assert any(p.startswith(link) and "not valid at" in p for p in problems), problems


def test_unreadable_outcomes_and_added_hearings_are_skipped_not_the_rest() -> None:
    foreign = {"kind": st.HEARING_OUTCOME, "version": 1, "hearing_id": HEARING_ID, "order_id": "another-order",
               "result": "upheld", "issued_at": st.stamp(NOW)}  # fmt: skip
    doc = _with(GOOD, hearing_outcomes=["not a dict", outcome("upheld", "mallory"),
                                        {"hearing": HEARING_ID, **sign("counsel", foreign).as_dict()},
                                        outcome("upheld")],
                hearings_added=[{"hearing": "broken"}, ADDED])  # fmt: skip
    problems = chain.check(doc, TRUST, DELIVERED, [APPROVERS[0]])
    assert [p for p in problems if p.startswith("court:")] == [
        "court: hearing added-1 (2026-01-05T17:00:00+00:00) was due before the delivery, but no outcome signed by "
        "counsel under this trust file is in the proof"]  # fmt: skip


def test_due_hearings_without_outcomes_are_named_in_time_order() -> None:
    doc = _with(GOOD, hearing_outcomes=[], hearings_added=[ADDED])
    court = [p for p in chain.check(doc, TRUST, DELIVERED, [APPROVERS[0]]) if p.startswith("court:")]
    assert [p.split()[2] for p in court] == [HEARING_ID, "added-1"], "earliest first, not by name"


def test_only_a_narrowed_outcome_can_replace_the_version() -> None:
    upheld = _with(GOOD, hearing_outcomes=[outcome("upheld", new_order_ref=f"{ORDER.order_id}@v2")])
    assert chain.check(upheld, TRUST, DELIVERED, [APPROVERS[0]]) == []


def test_a_request_that_is_not_a_signed_statement_is_named() -> None:
    doc = _with(GOOD, request="garbage")
    assert any(p.startswith("request: ") for p in chain.check(doc, TRUST, DELIVERED, [APPROVERS[0]]))


def test_a_hearing_time_with_its_own_offset_is_taken_as_written() -> None:
    """17:00Z on Jan 7 is before the delivery (18:00Z); read as court time it would be 01:00Z on Jan 8."""
    doc = copy.deepcopy(GOOD)
    text = doc["proof"]["order_file"]["text"]
    late = text.replace(
        "hearings:\n", "hearings:\n  - id: late-1\n    at: 2026-01-07T17:00:00+00:00\n    title: Late\n", 1
    )
    assert late != text
    doc["proof"]["order_file"]["text"] = late  # (breaks the hash and signature too: named separately)
    assert any(p.startswith("court: hearing late-1") for p in chain.check(doc, TRUST, DELIVERED, [APPROVERS[0]]))
