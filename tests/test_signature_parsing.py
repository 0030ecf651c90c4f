"""Every malformed signature is one refusal, never a crash: parsed from outside, it must be total.

A signature reaches handoff from `approve --signature`, the Prefect approval form, a stop-clear
marker anyone could plant in the audit bucket, and a recipient's manifest. Crafted blobs (an unknown
hash algorithm, an inner algorithm that does not match the key) and Hypothesis-generated ones must
end in ``SignatureError`` naming the input as not a valid signature, or verify.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import struct

from hypothesis import given, settings
from hypothesis import strategies as hs
from support import KEYS, POLICY_DIR

from handoff.errors import SignatureError
from handoff.signing import statement as st
from handoff.signing.trust import APPROVE, load_trust, trust_path

TRUST = load_trust(trust_path(POLICY_DIR))
NOW = dt.datetime(2026, 1, 7, 18, 0, tzinfo=dt.UTC)
DATA = b"any statement\n"
GOOD = st.sign_with_key(DATA, KEYS.key("ada"), APPROVE)


def _blob(armored: str) -> bytes:
    body = "".join(line for line in armored.strip().splitlines() if "SSH SIGNATURE" not in line)
    return base64.b64decode(body)


def _armor(blob: bytes) -> str:
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return "-----BEGIN SSH SIGNATURE-----\n" + "\n".join(lines) + "\n-----END SSH SIGNATURE-----\n"


def _fields(blob: bytes) -> tuple[bytes, list[bytes]]:
    """SSHSIG: magic, uint32 version, then public key, namespace, reserved, hash algorithm, signature."""
    head, rest, out = blob[:10], blob[10:], []
    while rest:
        (n,) = struct.unpack(">I", rest[:4])
        out.append(rest[4 : 4 + n])
        rest = rest[4 + n :]
    return head, out


def _join(head: bytes, fields: list[bytes]) -> bytes:
    return head + b"".join(struct.pack(">I", len(f)) + f for f in fields)


def _refused(signature: str) -> str:
    try:
        TRUST.verify(DATA, signature, APPROVE, NOW)
    except SignatureError as exc:
        return str(exc)
    raise AssertionError("a malformed signature verified")


def test_the_untouched_signature_verifies() -> None:
    assert TRUST.verify(DATA, GOOD, APPROVE, NOW).principal == "Ada Approver"
    head, fields = _fields(_blob(GOOD))
    assert _join(head, fields) == _blob(GOOD) and fields[3] == b"sha512"


def test_an_unknown_hash_algorithm_is_not_a_valid_signature() -> None:
    head, fields = _fields(_blob(GOOD))
    fields[3] = b"shake_128"
    assert "not a valid signature" in _refused(_armor(_join(head, fields)))


def test_an_inner_algorithm_other_than_the_keys_is_refused() -> None:
    head, fields = _fields(_blob(GOOD))
    _, inner = _fields(b"\0" * 10 + fields[4])
    fields[4] = _join(b"", [b"rsa-sha2-512", inner[1]])
    assert _refused(_armor(_join(head, fields)))


@settings(max_examples=150, deadline=None)
@given(hs.binary(max_size=400))
def test_random_bytes_are_refused_cleanly(blob: bytes) -> None:
    _refused(_armor(blob))


@settings(max_examples=150, deadline=None)
@given(hs.integers(min_value=0), hs.binary(min_size=1, max_size=8))
def test_a_real_signature_with_bytes_overwritten_is_refused_or_verifies(at: int, patch: bytes) -> None:
    blob = bytearray(_blob(GOOD))
    i = at % len(blob)
    blob[i : i + len(patch)] = patch
    with contextlib.suppress(SignatureError):  # refused, or (rarely) still the same signature: never a crash
        TRUST.verify(DATA, _armor(bytes(blob)), APPROVE, NOW)


@settings(max_examples=150, deadline=None)
@given(hs.text(max_size=300))
def test_random_armor_text_is_refused_cleanly(text: str) -> None:
    _refused(text)
