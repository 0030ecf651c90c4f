"""Who may say yes, tried as an insider with shell access to the state database and the environment.

Every attempt from the issue that used to deliver must now deliver nothing (or be refused with
one line), while a valid signed approval still delivers. Real ed25519 keys, real S3 over HTTP.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from support import (
    APPROVERS,
    INITIATOR,
    KEYS,
    NOW,
    approve,
    build_settings,
    ledger_kinds,
    record_upheld,
    set_stop,
    sign,
    transfer,
)

from handoff.errors import GateError, SignatureError
from handoff.state import ledger
from handoff.transfer import Lifecycle

LATER = NOW + dt.timedelta(hours=1)


def _awaiting(life: Any, source_url: str, bucket: str, signer: str = "operator") -> Any:
    batch = transfer(life, source_url, bucket, NOW, signer=signer).batch
    record_upheld(life)
    assert life.refresh(batch.id, NOW).batch.status == "awaiting-approval"
    return life.get(batch.id)


def _released(life: Any, s3: Any, when: dt.datetime = LATER) -> list[Any]:
    out = life.release(when)
    return [o for o in out if o.batch.status == "delivered"]


KEYS_FINGERPRINT: dict[str, str] = {}  # as `ssh-keygen -lf` prints them


@pytest.fixture(autouse=True, scope="module")
def _fingerprints() -> None:
    import subprocess

    for label in ("ada", "bo", "operator", "dual"):
        out = subprocess.run(["ssh-keygen", "-lf", str(KEYS.key(label))], capture_output=True, text=True, check=True)
        KEYS_FINGERPRINT[label] = out.stdout.split()[1]


def test_a_valid_signed_approval_delivers_and_names_the_principal(life, sqlite_source_url: str, s3) -> None:
    batch = _awaiting(life, sqlite_source_url, s3.name)
    approve(life, batch.id, "ada")
    [done] = _released(life, s3)
    assert done.batch.id == batch.id
    with life.engine.connect() as conn:
        [delivered] = ledger.entries(conn, batch_id=batch.id, kinds=["delivered"])
        [approved] = ledger.entries(conn, batch_id=batch.id, kinds=["approved"])
    assert delivered.payload["approvers"] == [APPROVERS[0]] and delivered.payload["initiator"] == INITIATOR
    assert approved.actor == APPROVERS[0] and approved.payload["key"] == KEYS_FINGERPRINT["ada"]


def test_an_approvals_row_inserted_into_the_database_delivers_nothing(life, sqlite_source_url: str, s3) -> None:
    batch = _awaiting(life, sqlite_source_url, s3.name)
    order = life.order_for(batch)
    with life.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO approvals (batch_id, decision, approver, content_hash, policy_hash, order_ref, note, at) "
            "VALUES (:b, 'approve', :a, :c, :p, :o, 'looks fine', :t)"
        ), {"b": batch.id, "a": APPROVERS[0], "c": batch.content_hash, "p": order.policy_hash, "o": order.ref,
            "t": NOW.isoformat()})  # fmt: skip
    [out] = life.release(LATER)
    assert out.batch.status == "awaiting-approval" and s3.object_keys() == []
    assert "approvals row 1 is not backed by a signed ledger entry" in out.batch.status_reason


def test_a_ledger_entry_with_a_forged_or_borrowed_signature_delivers_nothing(life, sqlite_source_url: str, s3) -> None:
    batch = _awaiting(life, sqlite_source_url, s3.name)
    statement = life.decision_statement(batch.id, "approve", None, NOW)
    forged = sign("mallory", statement)  # a real signature, by a key nobody enrolled
    borrowed = sign("ada", {**statement, "batch_id": "20260101T000000Z-000000"})  # ada's, for another batch
    with life.engine.begin() as conn:
        for s in (forged, borrowed):
            ledger.append(conn, "approved", APPROVERS[0], batch_id=batch.id, payload=s.as_dict(), at=NOW)
    [out] = life.release(LATER)
    assert out.batch.status == "awaiting-approval" and s3.object_keys() == []
    assert "ignored" in out.batch.status_reason


def test_changing_the_bucket_or_prefix_after_approval_delivers_nothing(tmp_path, sqlite_source_url: str, s3,
                                                                      s3_server, audit_bucket) -> None:  # fmt: skip
    from handoff_tools import emulator

    other = "handoff-test-elsewhere"
    emulator.create_bucket(s3_server, other)
    life = Lifecycle(
        build_settings(tmp_path / "home", bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket)
    )
    batch = _awaiting(life, sqlite_source_url, s3.name)
    approve(life, batch.id, "ada")
    with life.engine.begin() as conn:
        conn.execute(sa.text("UPDATE batches SET bucket = :o WHERE id = :b"), {"o": other, "b": batch.id})
    [out] = life.release(LATER)
    assert out.batch.status != "delivered" and "destination" in (out.batch.status_reason or "")
    with life.engine.begin() as conn:
        conn.execute(sa.text("UPDATE batches SET bucket = :o WHERE id = :b"), {"o": s3.name, "b": batch.id})
    moved = Lifecycle(
        build_settings(
            tmp_path / "home", bucket=s3.name, kms_key_id=s3.kms_key_id, prefix="exfil", audit_bucket=audit_bucket
        )
    )
    [out] = moved.release(LATER)
    assert out.batch.status != "delivered"
    import boto3

    assert s3.object_keys() == [] and "Contents" not in boto3.client("s3").list_objects_v2(Bucket=other)
    [done] = _released(life, s3)  # the destination that was approved still works
    assert done.batch.id == batch.id


def test_the_key_and_the_person_that_started_a_transfer_cannot_approve_it(life, sqlite_source_url: str, s3) -> None:
    batch = _awaiting(life, sqlite_source_url, s3.name, signer="dual")  # holds operator and approver roles
    with pytest.raises(GateError, match="started batch .* cannot approve it"):
        approve(life, batch.id, "dual")
    assert "approval-refused" in ledger_kinds(life, batch.id)
    assert life.release(LATER)[0].batch.status == "awaiting-approval" and s3.object_keys() == []
    approve(life, batch.id, "bo")
    assert _released(life, s3)[0].batch.id == batch.id


def test_an_approval_signed_for_another_batch_or_already_lapsed_delivers_nothing(life, sqlite_source_url: str,
                                                                                 s3) -> None:  # fmt: skip
    first = _awaiting(life, sqlite_source_url, s3.name)
    second = transfer(life, sqlite_source_url, s3.name, NOW + dt.timedelta(minutes=1)).batch
    for_first = sign("ada", life.decision_statement(first.id, "approve", None, NOW))
    with pytest.raises(GateError, match="does not bind"):
        life.decide(second.id, for_first, NOW)
    short = sign("ada", {**life.decision_statement(first.id, "approve", None, NOW),
                         "expires_at": (NOW + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")})  # fmt: skip
    life.decide(first.id, short, NOW)
    [out] = [o for o in life.release(NOW + dt.timedelta(minutes=20)) if o.batch.id == first.id]
    assert out.batch.status == "awaiting-approval" and "expired" in out.batch.status_reason
    assert s3.object_keys() == []


def test_removing_a_key_from_the_trust_file_voids_its_pending_approval(life, sqlite_source_url: str, s3) -> None:
    batch = _awaiting(life, sqlite_source_url, s3.name)
    approve(life, batch.id, "ada")
    trust_file = life.trust().path
    original = trust_file.read_text()
    try:
        trust_file.write_text("".join(x for x in original.splitlines(keepends=True) if APPROVERS[0] not in x))
        [out] = life.release(LATER)
        assert out.batch.status == "awaiting-approval" and "not in the trust file" in out.batch.status_reason
        assert s3.object_keys() == []
    finally:
        trust_file.write_text(original)


def test_an_order_that_needs_two_approvals_delivers_only_after_two_people_signed(tmp_path, sqlite_source_url: str,
                                                                                s3, audit_bucket) -> None:  # fmt: skip
    import shutil

    from support import POLICY_DIR

    from handoff.authority.signoff import sign_file
    from handoff.policy.suite import write_suites

    policy_dir = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, policy_dir)
    for suite in (policy_dir / "suites").glob("*.json"):
        suite.unlink()  # a different order file: its suite is built anew
    order_file = policy_dir / "orders" / "2025-12-29.yaml"
    order_file.write_text(order_file.read_text().replace("approvals_required: 1", "approvals_required: 2"))
    sign_file(order_file, KEYS.key("counsel"))
    from handoff.policy.order import PolicySet

    write_suites(PolicySet(policy_dir))
    life = Lifecycle(
        build_settings(
            tmp_path / "home",
            policy_dir=policy_dir,
            bucket=s3.name,
            kms_key_id=s3.kms_key_id,
            audit_bucket=audit_bucket,
        )
    )
    batch = _awaiting(life, sqlite_source_url, s3.name)
    approve(life, batch.id, "ada")
    [out] = life.release(LATER)
    assert out.batch.status == "awaiting-approval" and "needs 2 approvals" in out.batch.status_reason
    approve(life, batch.id, "bo")
    [done] = _released(life, s3)
    manifest = json.loads(s3.client.get_object(Bucket=s3.name, Key=done.manifest_key)["Body"].read())
    assert sorted(a["principal"] for a in manifest["approvals"]) == sorted(APPROVERS)


def test_a_stop_stays_set_against_a_typed_name_or_an_unsigned_ledger_row(life, sqlite_source_url: str, s3) -> None:
    batch = _awaiting(life, sqlite_source_url, s3.name)
    approve(life, batch.id, "ada")
    stop = set_stop(life, "TRO motion filed")
    with life.engine.begin() as conn:
        ledger.append(conn, "hold-cleared", "Random Intern", payload={"stops": [stop.id], "reason": "typed"}, at=NOW)
        ledger.append(conn, "hold-cleared", "Random Intern",
                      payload=sign("ada", {"kind": "handoff.hold-clear", "version": 1, "stops": [stop.id],
                                           "reason": "approver, not operator", "issued_at": "2026-01-07T18:00:00Z"})
                      .as_dict(), at=NOW)  # fmt: skip
    [out] = life.release(LATER)
    assert out.batch.status == "held" and "TRO motion filed" in out.batch.status_reason
    assert s3.object_keys() == []


def test_a_transfer_request_must_be_signed_by_an_operator(life, sqlite_source_url: str, s3) -> None:
    from support import request

    with pytest.raises(SignatureError, match="does not hold the operator role"):
        life.transfer(request(life, sqlite_source_url, s3.name, signer="ada"), s3.name, NOW)
    signed = request(life, sqlite_source_url, s3.name)
    with pytest.raises(SignatureError, match="asks for another transfer"):
        life.transfer(signed, "another-bucket", NOW)
    with pytest.raises(SignatureError, match="expired"):
        life.transfer(signed, s3.name, NOW + dt.timedelta(hours=2))
    import dataclasses

    from handoff.signing.statement import parse

    doc = parse(signed.signed.statement, "handoff.transfer-request")
    forever = dataclasses.replace(signed, signed=sign("operator", {**doc, "expires_at": "2099-01-01T00:00:00Z"}))
    with pytest.raises(SignatureError, match="claims to last longer"):
        life.transfer(forever, s3.name, NOW)


def test_the_service_key_starts_scheduled_transfers_and_nothing_else(tmp_path, sqlite_source_url: str, s3,
                                                                     audit_bucket: str) -> None:  # fmt: skip
    import dataclasses

    from handoff.authority import hold
    from handoff.signing import statement as st
    from handoff.signing.trust import SERVICE
    from handoff.staging.pipeline import StageRequest

    life = Lifecycle(build_settings(tmp_path / "home", bucket=s3.name, kms_key_id=s3.kms_key_id,
                                    audit_bucket=audit_bucket, signing_key=KEYS.key("scheduler")))  # fmt: skip
    try:
        scheduled = life.service_request(StageRequest(sqlite_source_url), s3.name, NOW)
        assert json.loads(scheduled.signed.statement)["scheduled"] is True
        batch = life.transfer(scheduled, s3.name, NOW).batch
        assert batch.initiator == "handoff-scheduler"

        # The same key cannot sign as a person: a request without the scheduled flag, or in the operator's role.
        plain = life.request_statement(StageRequest(sqlite_source_url), s3.name, NOW)
        data = st.canonical(plain)
        unscheduled = dataclasses.replace(StageRequest(sqlite_source_url, bucket=s3.name),
                                          signed=st.Signed(data, st.sign_with_key(data, KEYS.key("scheduler"), SERVICE)))  # fmt: skip
        with pytest.raises(SignatureError, match="signs only scheduled transfer requests"):
            life.transfer(unscheduled, s3.name, NOW)
        as_operator = dataclasses.replace(
            StageRequest(sqlite_source_url, bucket=s3.name), signed=sign("scheduler", plain)
        )
        with pytest.raises(SignatureError, match="does not hold the operator role"):
            life.transfer(as_operator, s3.name, NOW)

        # Nor can it clear an emergency stop: that needs a person with the operator role.
        stop = set_stop(life, "counsel asked")
        with life.ctx.write() as conn, pytest.raises(SignatureError, match="does not hold the operator role"):
            hold.clear(conn, life.trust(), sign("scheduler", hold.clear_statement([stop], "resume", NOW)), NOW)
    finally:
        life.engine.dispose()
