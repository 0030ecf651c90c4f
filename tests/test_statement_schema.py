"""Signed statements in their schema, at the edges: times to the second, lifetimes, nested fields."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from handoff.errors import SignatureError
from handoff.signing import statement_schema as schema
from handoff.state.status import Lease

NOW = dt.datetime(2026, 1, 7, 18, 0, tzinfo=dt.UTC)


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def request(issued: dt.datetime = NOW, life: dt.timedelta = dt.timedelta(minutes=30), **extra: Any) -> dict[str, Any]:
    return {"kind": schema.TRANSFER_REQUEST, "version": 1, "batch_id": "b1", "order": "o@v1",
            "issued_at": stamp(issued), "expires_at": stamp(issued + life), **extra}  # fmt: skip


def decision(**extra: Any) -> dict[str, Any]:
    return {"kind": schema.DECISION, "version": 1, "decision": "approve", "batch_id": "b1", "content_hash": "c" * 64,
            "rows": 1, "order_ref": "o@v1", "policy_hash": "f" * 64, "destination": {"bucket": "b"}, "note": "",
            "issued_at": stamp(NOW), "expires_at": stamp(NOW + dt.timedelta(days=30)), **extra}  # fmt: skip


def refusal(doc: dict[str, Any], kind: str = schema.TRANSFER_REQUEST, at: dt.datetime | None = NOW) -> str:
    with pytest.raises(SignatureError) as caught:
        schema.check(doc, kind, at)
    return str(caught.value)


def test_issued_at_may_lead_the_clock_by_the_skew_and_no_more() -> None:
    schema.check(request(NOW + schema.SKEW), schema.TRANSFER_REQUEST, NOW)
    assert "is in the future" in refusal(request(NOW + schema.SKEW + dt.timedelta(seconds=1)))
    schema.check(request(NOW + dt.timedelta(days=9)), schema.TRANSFER_REQUEST, None)  # read later, not used now


def test_a_lifetime_must_be_positive_and_within_the_kinds_limit() -> None:
    assert refusal(request(life=dt.timedelta(0))) == "the signed statement's expires_at is not after its issued_at"
    schema.check(request(life=dt.timedelta(hours=1)), schema.TRANSFER_REQUEST, NOW)
    assert "claims to last longer than 60 minutes" in refusal(request(life=dt.timedelta(hours=1, seconds=1)))
    schema.check(decision(), schema.DECISION, NOW)
    late = decision(expires_at=stamp(NOW + dt.timedelta(days=30, seconds=1)))
    assert "claims to last longer than 30 days" in refusal(late, schema.DECISION)


def test_a_time_in_the_right_shape_that_is_no_real_time_is_named() -> None:
    assert refusal(request() | {"issued_at": "2026-13-45T25:00:00Z"}) == (
        "the signed statement's issued_at is not a real time"
    )
    assert refusal(request() | {"expires_at": "2026-02-30T00:00:00Z"}) == (
        "the signed statement's expires_at is not a real time"
    )


def test_a_nested_field_is_named_by_its_path() -> None:
    assert "destination.bucket is not acceptable" in refusal(decision(destination={"bucket": 7}), schema.DECISION)


def test_a_lease_is_live_until_its_instant_and_held_only_by_its_owner() -> None:
    lease = Lease("host:1", NOW + dt.timedelta(seconds=1))
    assert lease.live(NOW) and not lease.live(NOW + dt.timedelta(seconds=1))
    assert lease.held_by("host:1", NOW) and not lease.held_by("host:2", NOW)
    assert not lease.held_by("host:1", NOW + dt.timedelta(seconds=2))
    assert not Lease(None, NOW + dt.timedelta(hours=1)).live(NOW)
    assert not Lease("host:1", None).live(NOW)


def test_the_kinds_people_sign_keep_their_names() -> None:
    """A kind is part of the signed bytes: renaming one (as a module move once did to hold-clear) would void
    every statement already signed, anchored or published under the old name."""
    from handoff.signing import statement_schema as kinds

    assert (kinds.DECISION, kinds.HEARING_OUTCOME, kinds.HOLD_CLEAR, kinds.TRANSFER_REQUEST) == (
        "handoff.decision", "handoff.hearing-outcome", "handoff.hold-clear", "handoff.transfer-request")  # fmt: skip
