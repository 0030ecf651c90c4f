"""Who started a transfer: a request signed by an operator key (or a scheduled deployment's service key).

The request (``statement.TRANSFER_REQUEST``, namespace ``handoff-operator``) names the batch id it
creates, the order, the states, the source (by the SHA-256 of its address without credentials: the
request travels to the recipient in the delivery's proof), the bucket and whether it is
incremental, and expires an hour after it is signed. It is stored with the batch, so the
two-person rule compares keys and principals from signatures, never from an editable column:
the approving key must differ from the initiating key, and its principal from the initiator's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from handoff.errors import GateError, SignatureError
from handoff.policy.source_model import STATES
from handoff.signing import statement as st
from handoff.signing.trust import Signer, Trust
from handoff.state.batch import Batch
from handoff.urls import safe_url

TTL = dt.timedelta(hours=1)
VOLATILE = ("batch_id", "issued_at", "expires_at", "scheduled")  # scheduled: checked against the key's role


def statement_for(batch_id: str, order: str | None, fips: list[str], source_url: str, bucket: str,
                  incremental: bool, now: dt.datetime) -> dict[str, Any]:  # fmt: skip
    """The request an operator signs to start one transfer (``fips``: the requested state codes)."""
    return {
        "kind": st.TRANSFER_REQUEST,
        "version": 1,
        "batch_id": batch_id,
        "order": order or "(the order in force)",
        "states": sorted(STATES[f] for f in fips),
        # A digest, not the address: the request travels to the recipient with the delivery's proof,
        # and where the state keeps its database is none of the recipient's business.
        "source_sha256": hashlib.sha256(safe_url(source_url).encode()).hexdigest(),
        "bucket": bucket,
        "incremental": incremental,
        "issued_at": st.stamp(now),
        "expires_at": st.stamp(now + TTL),
    }


def revalidation_statement(batch_id: str, old_batch_id: str, order_ref: str, now: dt.datetime) -> dict[str, Any]:
    """The request an operator signs to re-check a superseded batch as a new one (``batch_id``)."""
    return {
        "kind": st.TRANSFER_REQUEST,
        "version": 1,
        "batch_id": batch_id,
        "revalidates": old_batch_id,
        "order": order_ref,
        "issued_at": st.stamp(now),
        "expires_at": st.stamp(now + TTL),
    }


def accept(trust: Trust, signed: st.Signed, expected: dict[str, Any], now: dt.datetime) -> st.Verified:
    """Verify a request about to be used: operator key, not expired, asking for exactly this transfer."""
    verified = st.verify(trust, signed, st.TRANSFER_REQUEST, now)
    if st.lifetime_beyond(verified.doc, TTL):
        raise SignatureError(f"the transfer request signed by {verified.principal} claims to last longer than "
                             f"{int(TTL.total_seconds() // 60)} minutes; sign a new one")  # fmt: skip
    if st.expired(verified.doc, now):
        raise SignatureError(f"the transfer request signed by {verified.principal} expired at "
                             f"{verified.doc.get('expires_at')}; sign a new one")  # fmt: skip
    differs = st.same_request(expected, verified.doc, VOLATILE)
    if differs:
        raise SignatureError(f"the signed request asks for another transfer ({', '.join(differs)} differ); "
                             "sign the statement this command prints with --statement")  # fmt: skip
    return verified


def initiator(trust: Trust, batch: Batch, now: dt.datetime) -> Signer:
    """The key that started ``batch``, re-verified against the trust file now; ``GateError`` if it does not hold."""
    if not batch.request_statement or not batch.request_signature:
        raise GateError(f"batch {batch.id} has no signed transfer request; start a new transfer with --key")
    signed = st.Signed(batch.request_statement.encode("utf-8"), batch.request_signature)
    try:
        verified = st.verify(trust, signed, st.TRANSFER_REQUEST, now)
    except SignatureError as exc:
        raise GateError(f"the transfer request of batch {batch.id} no longer verifies ({exc})") from None
    if verified.doc.get("batch_id") != batch.id:
        raise GateError(f"the transfer request stored with batch {batch.id} was made for batch "
                        f"{verified.doc.get('batch_id')}; it does not say who started this one")  # fmt: skip
    return verified.signer
