"""Who may say yes: the reviewed trust file, in OpenSSH's ``allowed_signers`` format.

One line per key and set of roles; a principal may have several keys, and one key several lines. Keys may
be Ed25519, RSA (SHA-2 signatures), ECDSA (nistp256/384/521) or on a hardware token
(``sk-ssh-ed25519@openssh.com``, ``sk-ecdsa-sha2-nistp256@openssh.com``: ``handoff.signing.ssh_keys``). A line
handoff cannot use (an unknown key type, a malformed option) is skipped with a warning naming it, so
one bad line never takes every other person's authority away. The ``namespaces="..."`` option names the roles a key
holds: ``handoff-approve`` (approvers), ``handoff-counsel`` (hearing outcomes and order versions)
``handoff-operator`` (starting transfers, clearing an emergency stop) and ``handoff-service`` (a
scheduled deployment's key: it signs the transfer requests of scheduled runs and nothing else, so
anyone on the host who can read it can neither clear a stop nor sign as a person). A signature verifies
only against a key listed for its namespace, and the principal recorded is the one written in
this file, never a name someone typed. Nothing in the environment grants authority: the file is
reviewed and merged like the court order next to it.

This module decides whether a signature is valid; it never signs and never shells out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from handoff.errors import PolicyError, SignatureError

_log = logging.getLogger(__name__)
_warned: set[str] = set()
APPROVE = "handoff-approve"
COUNSEL = "handoff-counsel"
OPERATOR = "handoff-operator"
SERVICE = "handoff-service"  # a scheduled deployment's key: signs its own transfer requests, nothing else
ROLES = {APPROVE: "approver", COUNSEL: "counsel", OPERATOR: "operator", SERVICE: "service"}
TRUST_FILE = Path("trust") / "allowed_signers"

HASHES = (b"sha256", b"sha512")  # what ssh-keygen signs with and accepts
_PRINCIPAL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9 ._@+'()-]{0,118}[A-Za-z0-9.)])?$")


@dataclass(frozen=True)
class Signer:
    """One key of one principal, with the roles (namespaces) it holds."""

    principal: str
    fingerprint: str  # SHA256:… as `ssh-keygen -lf` prints it
    namespaces: frozenset[str]
    key: object  # sshsig.PublicKey
    valid_after: dt.datetime | None = None
    valid_before: dt.datetime | None = None
    line: int = 0

    def valid_at(self, moment: dt.datetime) -> bool:
        if self.valid_after and moment < self.valid_after:
            return False
        return not (self.valid_before and moment >= self.valid_before)


@dataclass(frozen=True)
class Trust:
    """The parsed trust file: every signer, and the file's SHA-256 (recorded with each decision)."""

    path: Path
    sha256: str
    signers: tuple[Signer, ...]
    warnings: tuple[str, ...] = ()

    def holders(self, namespace: str) -> list[Signer]:
        return [s for s in self.signers if namespace in s.namespaces]

    def verify(self, message: bytes, signature: str, namespace: str, at: dt.datetime) -> Signer:
        """The signer whose key made ``signature`` over ``message`` in ``namespace``, valid at ``at``.

        Raises ``SignatureError`` with a one-line reason: malformed, wrong namespace, tampered
        message, or a key that is not (or no longer) listed for this role.
        """
        import sshsig

        import handoff.signing.ssh_keys  # noqa: F401 - registers ECDSA and hardware keys with sshsig

        _check_hash(signature)
        try:
            key = sshsig.check_signature(message, signature, namespace=namespace)
        except sshsig.InvalidSignature as exc:
            raise SignatureError(_why_invalid(exc, namespace)) from None
        except Exception as exc:  # noqa: BLE001 - sshsig raises TypeError/AssertionError on some malformed blobs
            raise SignatureError(f"not a valid signature: it cannot be read ({type(exc).__name__}); "
                                 "paste the whole -----BEGIN SSH SIGNATURE----- block") from None  # fmt: skip
        listed = [s for s in self.signers if s.key == key]
        fingerprint = key.sha256_str()
        if not listed:
            raise SignatureError(f"key {fingerprint} is not in the trust file {self.path}; "
                                 "enrol it through a reviewed change to allowed_signers")  # fmt: skip
        # The key may be on several lines (roles added with their own validity): any line that holds
        # the role and is valid now will do.
        holding = [s for s in listed if namespace in s.namespaces]
        if not holding:
            signer = listed[0]
            raise SignatureError(f"{signer.principal} (key {fingerprint}) does not hold the {ROLES.get(namespace, namespace)} "
                                 f"role ({namespace}) in {self.path}")  # fmt: skip
        valid = [s for s in holding if s.valid_at(at)]
        if not valid:
            lines = ", ".join(str(s.line) for s in holding)
            raise SignatureError(f"{holding[0].principal}'s key {fingerprint} is not valid at {at.isoformat()} "
                                 f"(valid-after/valid-before in {self.path} line {lines})")  # fmt: skip
        return valid[0]


def _check_hash(signature: str) -> None:
    """Refuse an SSHSIG over any digest but SHA-256 or SHA-512, as ssh-keygen does."""
    from sshsig.sshsig import SshsigSignature

    try:
        algo = SshsigSignature.from_armored(signature).hash_algo
    except Exception:  # noqa: BLE001 - unreadable: check_signature says so, in one line
        return
    if algo not in HASHES:
        raise SignatureError(f"not a valid signature: it hashes with {algo[:20].decode('ascii', 'replace')!r}; "
                             "ssh-keygen signs with sha512 (or sha256)")  # fmt: skip


def _why_invalid(exc: Exception, namespace: str) -> str:
    text = str(exc)
    if "Namespace" in text:
        return f"the signature was made for another namespace; sign with `ssh-keygen -Y sign -n {namespace}`"
    return "the signature does not match this statement (it was signed over other bytes, or altered)"


def trust_path(policy_dir: Path) -> Path:
    return policy_dir / TRUST_FILE


def load_trust(path: Path) -> Trust:
    """Parse an ``allowed_signers`` file; refuse anything ambiguous, naming the file and line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(
            f"{path}: no trust file; create it (OpenSSH allowed_signers format) and have it reviewed"
        ) from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the trust file ({exc.strerror or type(exc).__name__}); "
                          "check its permissions") from None  # fmt: skip
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: the trust file must be plain ASCII (allowed_signers format)") from None
    signers: list[Signer] = []
    warnings: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            signers.append(_parse_line(path, number, stripped))
        except PolicyError as exc:  # this line grants nothing; every other line still counts
            warnings.append(f"skipped {exc}")
    for w in warnings:
        if w not in _warned:  # once per process, however often the file is read
            _warned.add(w)
            _log.warning("warning: %s", w)
    seen: dict[str, Signer] = {}
    for s in signers:
        other = seen.get(s.fingerprint)
        if other is not None and other.principal != s.principal:
            raise PolicyError(f"{path}:{s.line}: key {s.fingerprint} is also listed for {other.principal!r} "
                              f"(line {other.line}); one key belongs to one person")  # fmt: skip
        seen[s.fingerprint] = s
    return Trust(path, hashlib.sha256(raw).hexdigest(), tuple(signers), tuple(warnings))


def _parse_line(path: Path, number: int, line: str) -> Signer:
    from sshsig import PublicKey
    from sshsig.allowed_signers import AllowedSigner

    import handoff.signing.ssh_keys  # noqa: F401 - registers ECDSA and hardware keys with sshsig

    where = f"{path}:{number}"
    try:
        entry = AllowedSigner.parse(line)
    except Exception as exc:  # noqa: BLE001 - the parser may raise anything on a malformed line
        raise PolicyError(f"{where}: not an allowed_signers line ({str(exc)[:80] or type(exc).__name__})") from None
    principal = entry.principals
    if "," in principal or any(c in principal for c in "*?!"):
        raise PolicyError(f"{where}: give exactly one principal per line, no patterns (found {principal!r})")
    if not _PRINCIPAL.match(principal):
        raise PolicyError(f"{where}: principal {principal!r} must be letters, digits, spaces and . _ @ + ' ( ) -")
    options = entry.options or {}
    if "cert-authority" in options:
        raise PolicyError(f"{where}: cert-authority keys are not supported; list each person's key")
    if "namespaces" not in options:
        raise PolicyError(f'{where}: give the roles as namespaces="{APPROVE},..." '
                          f"(one or more of {', '.join(ROLES)})")  # fmt: skip
    namespaces = frozenset(n.strip() for n in options["namespaces"].split(",") if n.strip())
    unknown = sorted(n for n in namespaces if n.startswith("handoff") and n not in ROLES)
    if unknown:
        raise PolicyError(f"{where}: unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}")
    try:
        key = PublicKey.from_openssh_str(f"{entry.key_type} {entry.base64_key}")
    except NotImplementedError:
        raise PolicyError(f"{where}: key type {entry.key_type[:60]!r} is not supported (use Ed25519, ECDSA, RSA, "
                          "sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@openssh.com)") from None  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a malformed key blob may raise anything from the decoder
        raise PolicyError(f"{where}: the public key cannot be read ({type(exc).__name__}); "
                          "paste the whole line of the .pub file") from None  # fmt: skip
    return Signer(
        principal, key.sha256_str(), namespaces, key,
        _ssh_time(where, options.get("valid-after")), _ssh_time(where, options.get("valid-before")), number,
    )  # fmt: skip


def _ssh_time(where: str, value: str | None) -> dt.datetime | None:
    """``YYYYMMDD[HHMM[SS]][Z]`` as ssh-keygen reads valid-after/valid-before (UTC with Z, else local: we take UTC)."""
    if value is None:
        return None
    text = value.removesuffix("Z")
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    raise PolicyError(f"{where}: time {value!r} must look like 20260106 or 202601060800Z")
