"""The SSH key types a trust file may list beyond Ed25519 and RSA: ECDSA and hardware (FIDO) keys.

``sshsig`` verifies SSH signatures for ``ssh-ed25519`` and ``ssh-rsa`` (``rsa-sha2-256/512``) keys;
importing this module teaches it, through its own algorithm registry:

- ``ecdsa-sha2-nistp256``, ``-nistp384``, ``-nistp521`` (RFC 5656: SHA-256/384/512 by curve);
- ``sk-ecdsa-sha2-nistp256@openssh.com`` and ``sk-ssh-ed25519@openssh.com``, the keys on a hardware
  token (OpenSSH's PROTOCOL.u2f): the token signs ``SHA256(application) || flags || counter ||
  SHA256(message)``. As ``ssh-keygen -Y verify`` does by default, a signature whose token did not
  see the user's touch (flag 0x01) is refused.

Every reader here raises ``ValueError`` on malformed input (which ``sshsig`` turns into "invalid"),
and every verification returns the reason it failed instead of raising.
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct
from typing import Any

import cryptography.exceptions
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sshsig.binary_io import SshReader, SshWriter
from sshsig.ssh_public_key import PublicKey, PublicKeyAlgorithm

USER_PRESENT = 0x01
_CURVES: dict[bytes, tuple[ec.EllipticCurve, hashes.HashAlgorithm]] = {
    b"nistp256": (ec.SECP256R1(), hashes.SHA256()),
    b"nistp384": (ec.SECP384R1(), hashes.SHA384()),
    b"nistp521": (ec.SECP521R1(), hashes.SHA512()),
}
SK_ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"
SK_ED25519 = "sk-ssh-ed25519@openssh.com"


def _blob(*fields: bytes) -> bytes:
    out = SshWriter(io.BytesIO())
    for f in fields:
        out.write_string(f)
    return out.output_fh.getvalue()


def _read(reader: SshReader, what: str) -> bytes:
    """One length-prefixed string, all of it (``SshReader`` would return a short read)."""
    head = reader.input_fh.read(4)
    if len(head) != 4:
        raise ValueError(f"truncated {what}")
    (length,) = struct.unpack("!L", head)
    data = reader.input_fh.read(length)
    if len(data) != length:
        raise ValueError(f"truncated {what}")
    return bytes(data)


def _end(reader: SshReader, what: str) -> None:
    if reader.input_fh.read(1):
        raise ValueError(f"trailing bytes after the {what}")


class _Key(PublicKey):
    """A public key held as its wire blob (equality and the fingerprint come from the blob)."""

    def __init__(self, name: str, blob: bytes) -> None:
        self._name = name
        self._blob = blob

    @property
    def algo_name(self) -> str:
        return self._name

    def openssh_str(self) -> str:
        return f"{self._name} {base64.b64encode(self._blob).decode()}"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Key) and self._blob == other._blob

    def __hash__(self) -> int:
        return hash(self._blob)

    def _signature(self, signature: bytes) -> SshReader:
        reader = SshReader.from_bytes(signature)
        algo = _read(reader, "signature")
        if algo != self._name.encode():
            raise ValueError(f"a {algo[:60]!r} signature cannot be made by a {self._name} key")
        return reader

    def do_verify(self, signature: bytes, message: bytes) -> None | Exception:
        try:
            self._check(signature, message)
        except (ValueError, struct.error, EOFError, cryptography.exceptions.InvalidSignature) as exc:
            return exc
        return None

    def _check(self, signature: bytes, message: bytes) -> None:
        raise NotImplementedError


def _ecdsa_der(raw: bytes) -> bytes:
    inner = SshReader.from_bytes(raw)
    r = int.from_bytes(_read(inner, "ECDSA signature"), "big")
    s = int.from_bytes(_read(inner, "ECDSA signature"), "big")
    _end(inner, "ECDSA signature")
    if r <= 0 or s <= 0:
        raise ValueError("an ECDSA signature's r and s are positive")
    return encode_dss_signature(r, s)


def _sk_tail(reader: SshReader) -> tuple[int, bytes]:
    """The token's flags byte and counter, as the bytes it signed them as."""
    flags, counter = reader.input_fh.read(1), reader.input_fh.read(4)
    if len(flags) != 1 or len(counter) != 4:
        raise ValueError("truncated hardware-key signature (flags and counter)")
    _end(reader, "hardware-key signature")
    if not flags[0] & USER_PRESENT:
        raise ValueError("the hardware key did not confirm the user's touch (user-presence flag unset)")
    return flags[0], flags + counter


class EcdsaKey(_Key):
    def __init__(self, name: str, curve_id: bytes, point: bytes, application: bytes | None = None) -> None:
        curve, digest = _CURVES[curve_id]
        self._impl = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        self._digest = digest
        self._application = application
        fields = [name.encode(), curve_id, point] + ([application] if application is not None else [])
        super().__init__(name, _blob(*fields))

    def _check(self, signature: bytes, message: bytes) -> None:
        reader = self._signature(signature)
        der = _ecdsa_der(_read(reader, "ECDSA signature"))
        if self._application is None:
            _end(reader, "ECDSA signature")
            self._impl.verify(der, message, ec.ECDSA(self._digest))
            return
        _, tail = _sk_tail(reader)
        signed = hashlib.sha256(self._application).digest() + tail + hashlib.sha256(message).digest()
        self._impl.verify(der, signed, ec.ECDSA(hashes.SHA256()))


class SkEd25519Key(_Key):
    def __init__(self, raw: bytes, application: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self._impl = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        self._application = application
        super().__init__(SK_ED25519, _blob(SK_ED25519.encode(), raw, application))

    def _check(self, signature: bytes, message: bytes) -> None:
        reader = self._signature(signature)
        raw = _read(reader, "Ed25519 signature")
        _, tail = _sk_tail(reader)
        self._impl.verify(raw, hashlib.sha256(self._application).digest() + tail + hashlib.sha256(message).digest())


class _Ecdsa(PublicKeyAlgorithm):
    def __init__(self, curve_id: bytes, hardware: bool = False) -> None:
        self._curve_id = curve_id
        self._hardware = hardware

    @property
    def name(self) -> str:
        return SK_ECDSA if self._hardware else f"ecdsa-sha2-{self._curve_id.decode()}"

    def load_public_key(self, pkt: SshReader) -> PublicKey:
        curve_id = _read(pkt, "ECDSA key")
        if curve_id != self._curve_id:
            raise ValueError(f"an {self.name} key names curve {curve_id[:20]!r}")
        point = _read(pkt, "ECDSA key")
        application = _read(pkt, "hardware key") if self._hardware else None
        _end(pkt, "public key")
        return EcdsaKey(self.name, curve_id, point, application)


class _SkEd25519(PublicKeyAlgorithm):
    @property
    def name(self) -> str:
        return SK_ED25519

    def load_public_key(self, pkt: SshReader) -> PublicKey:
        raw, application = _read(pkt, "Ed25519 key"), _read(pkt, "hardware key")
        _end(pkt, "public key")
        return SkEd25519Key(raw, application)


def register() -> None:
    """Add these algorithms to ``sshsig``'s registry (idempotent)."""
    algos = [*PublicKeyAlgorithm.supported_algos(), *(_Ecdsa(c) for c in _CURVES), _Ecdsa(b"nistp256", True),
             _SkEd25519()]  # fmt: skip
    PublicKeyAlgorithm.supported = {a.name: a for a in algos}


register()
