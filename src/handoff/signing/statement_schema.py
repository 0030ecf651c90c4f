"""The shape of every signed statement: a schema, never a dict read with ``.get``.

A statement is refused, naming the field, when it carries a field its kind does not have, a
decision or result outside the fixed set, a time not in ``YYYY-MM-DDTHH:MM:SSZ``, an ``issued_at``
in the future (beyond a small clock skew), or a lifetime longer than its kind allows. This module
decides only whether a statement is well formed; whether it binds is its consumer's decision.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handoff.errors import SignatureError

STAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
HEX64 = r"^[0-9a-f]{64}$"
SKEW = dt.timedelta(minutes=5)
DECISION = "handoff.decision"
HEARING_OUTCOME = "handoff.hearing-outcome"
HOLD_CLEAR = "handoff.hold-clear"
TRANSFER_REQUEST = "handoff.transfer-request"
# The longest a statement of each kind may claim to last (from issued_at to expires_at).
LIFETIME = {DECISION: dt.timedelta(days=30), TRANSFER_REQUEST: dt.timedelta(hours=1)}

Text = Field(min_length=1, max_length=200)


class _Statement(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: Literal[1]
    issued_at: str = Field(pattern=STAMP)


class DecisionStatement(_Statement):
    kind: Literal["handoff.decision"]
    decision: Literal["approve", "reject"]
    batch_id: str = Text
    content_hash: str = Field(pattern=HEX64)
    rows: int = Field(ge=0)
    order_ref: str = Text
    policy_hash: str = Field(pattern=HEX64)
    destination: dict[str, str | None]
    note: str = Field(max_length=2000)
    expires_at: str = Field(pattern=STAMP)


class OutcomeStatement(_Statement):
    kind: Literal["handoff.hearing-outcome"]
    hearing_id: str = Text
    order_id: str = Text
    result: Literal["upheld", "narrowed", "enjoined", "vacated"]
    order_file_sha256: str | None = Field(default=None, pattern=HEX64)
    new_order_ref: str | None = None


class HoldClearStatement(_Statement):
    kind: Literal["handoff.hold-clear"]
    stops: list[str] = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=2000)


class RequestStatement(_Statement):
    kind: Literal["handoff.transfer-request"]
    batch_id: str = Text
    order: str = Text
    expires_at: str = Field(pattern=STAMP)
    states: list[str] | None = None
    source_sha256: str | None = Field(default=None, pattern=HEX64)
    bucket: str | None = None
    incremental: bool | None = None
    revalidates: str | None = None
    scheduled: bool | None = None


SCHEMA: dict[str, type[_Statement]] = {DECISION: DecisionStatement, HEARING_OUTCOME: OutcomeStatement,
                                       HOLD_CLEAR: HoldClearStatement, TRANSFER_REQUEST: RequestStatement}  # fmt: skip


def _stamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def check(doc: dict[str, Any], kind: str, at: dt.datetime | None) -> None:
    """Refuse a statement of ``kind`` that is not well formed, naming the field; ``at``: when it is used."""
    try:
        SCHEMA[kind].model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(statement)"
        raise SignatureError(f"the signed statement's {field} is not acceptable ({err['msg']}); "
                             "sign exactly what `--statement` prints") from None  # fmt: skip
    try:
        issued = _stamp(doc["issued_at"])
    except ValueError:
        raise SignatureError("the signed statement's issued_at is not a real time") from None
    if at is not None and issued > at + SKEW:
        raise SignatureError(f"the signed statement's issued_at {doc['issued_at']} is in the future "
                             f"(now {at.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}); check the signer's clock")  # fmt: skip
    if "expires_at" in doc:
        try:
            lifetime = _stamp(doc["expires_at"]) - issued
        except ValueError:
            raise SignatureError("the signed statement's expires_at is not a real time") from None
        longest = LIFETIME[kind]
        if lifetime <= dt.timedelta(0):
            raise SignatureError("the signed statement's expires_at is not after its issued_at")
        if lifetime > longest:
            human = f"{longest.days} days" if longest.days else f"{int(longest.total_seconds() // 60)} minutes"
            raise SignatureError(f"the signed statement claims to last longer than {human} (expires_at); "
                                 "sign a new one")  # fmt: skip
