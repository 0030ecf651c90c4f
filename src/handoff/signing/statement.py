"""Signed statements: the exact bytes a person signs to decide something.

Every decision is a canonical JSON document (sorted keys, no spaces, UTF-8, one trailing
newline) with a ``kind``. The person signs those bytes with ``ssh-keygen -Y sign -n NAMESPACE``
(or through ``ssh-agent``), and the bytes and the armored signature are stored together, so
anyone can verify them later with nothing but the trust file. The namespace of each kind is
fixed here, so a signature made for one role never counts for another.

Verification is pure Python (``trust.Trust.verify``); signing for the user (``--key``) is the only
place ``ssh-keygen`` runs.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoff.errors import HandoffError, SignatureError
from handoff.signing import statement_schema as schema
from handoff.signing.statement_schema import DECISION, HEARING_OUTCOME, HOLD_CLEAR, TRANSFER_REQUEST
from handoff.signing.trust import APPROVE, COUNSEL, OPERATOR, SERVICE, Signer, Trust

__all__ = ["DECISION", "HEARING_OUTCOME", "HOLD_CLEAR", "TRANSFER_REQUEST", "NAMESPACE", "Signed", "Verified"]
NAMESPACE = {DECISION: APPROVE, HEARING_OUTCOME: COUNSEL, HOLD_CLEAR: OPERATOR, TRANSFER_REQUEST: OPERATOR}
MAX_STATEMENT_BYTES = 64 * 1024


def canonical(doc: dict[str, Any]) -> bytes:
    """The one serialisation that is signed: sorted keys, no whitespace, UTF-8, trailing newline."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def stamp(moment: dt.datetime) -> str:
    """A time as statements carry it: UTC, seconds, ``Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def parse(data: bytes, kind: str, at: dt.datetime | None = None) -> dict[str, Any]:
    """Read a statement of ``kind``; refuse anything not in canonical form (so nothing hides in it) or not
    in its kind's schema (``statement_schema``; ``at``: when it is used, for ``issued_at``)."""
    if len(data) > MAX_STATEMENT_BYTES:
        raise SignatureError("the statement is too large to be one of handoff's")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SignatureError("the signed text is not a handoff statement (not JSON)") from None
    if not isinstance(doc, dict) or data not in (canonical(doc), canonical(doc)[:-1]):
        raise SignatureError("the signed text is not in canonical form; sign exactly what `--statement` printed")
    if doc.get("kind") != kind:
        raise SignatureError(f"this is a {doc.get('kind')!r} statement, not a {kind!r} one")
    schema.check(doc, kind, at)
    return doc


@dataclass(frozen=True)
class Signed:
    """A statement's exact bytes and its armored SSH signature, as stored and shipped."""

    statement: bytes
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {"statement": self.statement.decode("utf-8"), "signature": self.signature}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Signed:
        return cls(str(doc.get("statement", "")).encode("utf-8"), str(doc.get("signature", "")))


@dataclass(frozen=True)
class Verified:
    """A statement whose signature verified: what it says, who said it (per the trust file)."""

    doc: dict[str, Any]
    signer: Signer
    signed: Signed

    @property
    def principal(self) -> str:
        return self.signer.principal


def verify(trust: Trust, signed: Signed, kind: str, at: dt.datetime) -> Verified:
    """Check the signature (namespace of ``kind``, key listed and valid at ``at``), then the statement."""
    if not signed.signature.strip():
        raise SignatureError("no signature given")
    try:
        signer = trust.verify(signed.statement, signed.signature, NAMESPACE[kind], at)
    except SignatureError as exc:
        if kind != TRANSFER_REQUEST or "another namespace" not in str(exc):
            raise
        # A scheduled deployment's service key signs its requests in its own namespace, and only those.
        signer = trust.verify(signed.statement, signed.signature, SERVICE, at)
        doc = parse(signed.statement, kind, at)
        if doc.get("scheduled") is not True:
            raise SignatureError(f"{signer.principal} holds the service role, which signs only scheduled transfer "
                                 "requests; a person with the operator role must sign this one") from None  # fmt: skip
        return Verified(doc, signer, signed)
    return Verified(parse(signed.statement, kind, at), signer, signed)


def expired(doc: dict[str, Any], at: dt.datetime) -> bool:
    expires = doc.get("expires_at")
    try:
        return expires is None or parse_stamp(str(expires)) <= at
    except ValueError:
        return True


def lifetime_beyond(doc: dict[str, Any], longest: dt.timedelta) -> bool:
    """A statement signed elsewhere may say anything: refuse one that claims to last longer than allowed."""
    try:
        issued, expires = parse_stamp(str(doc.get("issued_at"))), parse_stamp(str(doc.get("expires_at")))
    except ValueError:
        return True
    return expires - issued > longest


# ----- signing and reading signatures (the CLI's side) -------------------------------------------
def sign_with_key(data: bytes, key: Path, namespace: str) -> str:
    """Sign ``data`` with ``ssh-keygen -Y sign`` (a private key file, or a .pub whose key is in ssh-agent)."""
    tool = shutil.which("ssh-keygen")
    if tool is None:
        raise HandoffError("ssh-keygen is not installed; install OpenSSH, or sign elsewhere and pass --signature FILE")
    if not key.is_file():
        raise HandoffError(f"no key at {key}; give your private key (or its .pub with the key loaded in ssh-agent)")
    res = subprocess.run([tool, "-Y", "sign", "-f", str(key), "-n", namespace], input=data,
                         capture_output=True, timeout=120, check=False)  # fmt: skip
    if res.returncode != 0 or b"BEGIN SSH SIGNATURE" not in res.stdout:
        why = res.stderr.decode(errors="replace").strip().splitlines()
        raise HandoffError(f"ssh-keygen could not sign with {key}: {why[-1] if why else 'no output'}")
    return res.stdout.decode("ascii")


def read_signed(signature_file: Path, statement_file: Path | None = None) -> Signed:
    """A signature file and the statement it covers (by default the same path without ``.sig``)."""
    if statement_file is None:
        if signature_file.suffix != ".sig":
            raise HandoffError(f"{signature_file}: name the signed statement with --signed FILE "
                               "(ssh-keygen writes FILE.sig next to FILE)")  # fmt: skip
        statement_file = signature_file.with_suffix("")
    try:
        signature = signature_file.read_text(encoding="ascii")
        statement = statement_file.read_bytes()
    except FileNotFoundError as exc:
        raise HandoffError(f"{exc.filename}: no such file") from None
    except UnicodeDecodeError:
        raise HandoffError(f"{signature_file}: not an SSH signature file") from None
    return Signed(statement, signature)


def obtain(doc: dict[str, Any], key: Path | None, signature: Path | None, signed: Path | None) -> Signed:
    """The statement signed for the user (``--key``) or as signed elsewhere (``--signature``)."""
    if key is not None and signature is not None:
        raise HandoffError("give --key or --signature, not both")
    if key is not None:
        data = canonical(doc)
        return Signed(data, sign_with_key(data, key, NAMESPACE[doc["kind"]]))
    if signature is not None:
        return read_signed(signature, signed)
    raise HandoffError("this needs a signature: pass --key ~/.ssh/id_ed25519 to sign here, or print the statement "
                       "with --statement, sign it elsewhere and pass --signature FILE.sig")  # fmt: skip


def same_request(expected: dict[str, Any], got: dict[str, Any], volatile: tuple[str, ...]) -> list[str]:
    """Fields (other than ``volatile`` ones) where a statement signed elsewhere differs from this command's."""
    keys = (set(expected) | set(got)) - set(volatile)
    return sorted(k for k in keys if expected.get(k) != got.get(k))
