"""Keys on hardware tokens and ECDSA keys are welcome in the trust file, and verified.

- ECDSA (nistp256/384/521) and RSA keys are made by ``ssh-keygen`` here and sign with ``ssh-keygen -Y sign``.
- Hardware keys (``sk-ecdsa-sha2-nistp256@openssh.com``, ``sk-ssh-ed25519@openssh.com``) are checked
  against OpenSSH's own published test vectors (``tests/vectors/openssh-sshsig``, from
  openssh-portable's ``regress/unittests/sshsig/testdata``), and against a software authenticator
  built here for what the vectors do not cover (a signature made without the user's touch).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pytest
from support import KEYS, POLICY_DIR, cli_env, run_cli

from handoff.errors import SignatureError
from handoff.signing.statement import canonical
from handoff.signing.trust import APPROVE, OPERATOR, load_trust

T = dt.datetime(2026, 1, 6, 8, 0, tzinfo=dt.UTC)
SK_ED25519 = b"sk-ssh-ed25519@openssh.com"
VECTORS = Path(__file__).parent / "vectors" / "openssh-sshsig"
VECTOR_DATA = (VECTORS / "signed-data").read_bytes()
VECTOR_NAMESPACE = (VECTORS / "namespace").read_text().strip()
DATA = canonical({"kind": "x", "n": 1})


def _file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text("".join(x + "\n" for x in lines))
    return path


def _pub(path: Path) -> str:
    return " ".join(path.read_text().split()[:2])


@pytest.mark.parametrize(("kind", "bits"), [("ecdsa", "256"), ("ecdsa", "384"), ("ecdsa", "521"), ("rsa", "3072")])
def test_ecdsa_and_rsa_keys_made_by_ssh_keygen_sign_and_verify(tmp_path: Path, kind: str, bits: str) -> None:
    key = tmp_path / f"id_{kind}{bits}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-b", bits, "-N", "", "-C", "", "-f", str(key)], check=True)
    statement = tmp_path / "statement.json"
    statement.write_bytes(DATA)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", APPROVE, "-f", str(key), str(statement)], check=True,
                   capture_output=True)  # fmt: skip
    signature = (tmp_path / "statement.json.sig").read_text()
    trust = load_trust(_file(tmp_path, f'"Eve Ecdsa" namespaces="{APPROVE}" {_pub(key.with_suffix(".pub"))}'))
    assert trust.warnings == ()
    signer = trust.verify(DATA, signature, APPROVE, T)
    fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], check=True, capture_output=True, text=True)
    assert signer.principal == "Eve Ecdsa" and signer.fingerprint == fingerprint.stdout.split()[1]
    with pytest.raises(SignatureError, match="does not match this statement"):
        trust.verify(DATA + b" ", signature, APPROVE, T)


def test_a_webauthn_signature_is_refused_in_one_line(tmp_path: Path) -> None:
    """A web-browser (webauthn) signature by a hardware key is not what ssh-keygen makes: refused, named."""
    trust = load_trust(_file(tmp_path, f'"Wendy Web" namespaces="{VECTOR_NAMESPACE}" '
                                       f'{_pub(VECTORS / "ecdsa_sk_webauthn.pub")}'))  # fmt: skip
    with pytest.raises(SignatureError, match="^the signature does not match"):
        trust.verify(VECTOR_DATA, (VECTORS / "ecdsa_sk_webauthn.sig").read_text(), VECTOR_NAMESPACE, T)


@pytest.mark.parametrize("name", ["ecdsa_sk", "ed25519_sk", "ecdsa"])
def test_hardware_keys_verify_openssh_published_vectors(tmp_path: Path, name: str) -> None:
    trust = load_trust(_file(tmp_path, f'"Tok Holder" namespaces="{VECTOR_NAMESPACE}" {_pub(VECTORS / f"{name}.pub")}'))
    assert trust.warnings == ()
    signature = (VECTORS / f"{name}.sig").read_text()
    assert trust.verify(VECTOR_DATA, signature, VECTOR_NAMESPACE, T).principal == "Tok Holder"
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(VECTORS / f"{name}.pub")], check=True,
                                 capture_output=True, text=True).stdout.split()[1]  # fmt: skip
    assert trust.signers[0].fingerprint == fingerprint
    with pytest.raises(SignatureError, match="does not match this statement"):
        trust.verify(VECTOR_DATA + b"!", signature, VECTOR_NAMESPACE, T)


# ----- a software authenticator: what a FIDO token does, in a few lines of cryptography -------------------
def _string(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def _sshsig(public_blob: bytes, namespace: str, data: bytes, sign: object, sig_algo: bytes, flags: int,
            hash_name: str = "sha512") -> str:  # fmt: skip
    """An armored SSHSIG made the way ssh-keygen makes one with an sk-ssh-ed25519 key."""
    import base64

    digest = hashlib.new(hash_name, data).digest()
    wrapped = b"SSHSIG" + _string(namespace.encode()) + _string(b"") + _string(hash_name.encode()) + _string(digest)
    counter = (7).to_bytes(4, "big")
    signed = hashlib.sha256(b"ssh:").digest() + bytes([flags]) + counter + hashlib.sha256(wrapped).digest()
    raw = sign(signed)  # type: ignore[operator]
    sig = _string(sig_algo) + _string(raw) + bytes([flags]) + counter
    blob = (b"SSHSIG" + (1).to_bytes(4, "big") + _string(public_blob) + _string(namespace.encode()) + _string(b"")
            + _string(hash_name.encode()) + _string(sig))  # fmt: skip
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----", ""])


def _software_token(tmp_path: Path) -> tuple[Path, object, bytes]:
    import base64

    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    algo = SK_ED25519
    blob = _string(algo) + _string(raw) + _string(b"ssh:")
    path = _file(tmp_path, f'"Tok Holder" namespaces="{APPROVE}" {algo.decode()} {base64.b64encode(blob).decode()}')
    return path, private.sign, blob


def test_a_hardware_signature_without_the_users_touch_is_refused(tmp_path: Path) -> None:
    path, sign, blob = _software_token(tmp_path)
    trust = load_trust(path)
    touched = _sshsig(blob, APPROVE, DATA, sign, SK_ED25519, flags=0x01)
    assert trust.verify(DATA, touched, APPROVE, T).principal == "Tok Holder"
    untouched = _sshsig(blob, APPROVE, DATA, sign, SK_ED25519, flags=0x00)
    with pytest.raises(SignatureError, match="does not match"):
        trust.verify(DATA, untouched, APPROVE, T)


@pytest.mark.parametrize("hash_name", ["sha1", "md5", "sha3_256", "shake_128"])
def test_a_signature_over_any_digest_but_sha256_or_sha512_is_refused_without_a_crash(tmp_path: Path,
                                                                                     hash_name: str) -> None:  # fmt: skip
    """The key holder signed it, so the signature itself is good; ssh-keygen would still refuse the digest."""
    path, sign, blob = _software_token(tmp_path)
    trust = load_trust(path)
    made = _sshsig(blob, APPROVE, DATA, sign, SK_ED25519, flags=0x01,
                   hash_name="sha512" if hash_name == "shake_128" else hash_name)  # fmt: skip
    if hash_name == "shake_128":  # hashlib cannot digest shake without a length: rename the digest by hand
        made = _rename_hash(made, b"sha512", b"shake_128")
    with pytest.raises(SignatureError, match=f"^not a valid signature: it hashes with '{hash_name}'"):
        trust.verify(DATA, made, APPROVE, T)


def _rename_hash(armored: str, old: bytes, new: bytes) -> str:
    import base64

    body = "".join(armored.strip().splitlines()[1:-1])
    raw = base64.b64decode(body).replace(_string(old), _string(new))
    text = base64.b64encode(raw).decode()
    return "\n".join(["-----BEGIN SSH SIGNATURE-----", text, "-----END SSH SIGNATURE-----", ""])


def test_a_line_it_cannot_use_is_skipped_with_a_warning_and_the_rest_still_count(tmp_path: Path) -> None:
    """A truncated key and a DSA key (not supported) do not take anyone else's authority away."""
    ada = _pub(KEYS.folder / "ada.pub")
    truncated = _pub(VECTORS / "ecdsa.pub")[:60]
    path = _file(
        tmp_path,
        f'"Tess Trunc" namespaces="{APPROVE}" {truncated}',
        f'"Dee Dsa" namespaces="{APPROVE}" ssh-dss {__import__("base64").b64encode(_string(b"ssh-dss") + bytes(8)).decode()}',
        f'"Ada Approver" namespaces="{APPROVE}" {ada}',
        f'"Tok Holder" namespaces="{APPROVE}" {_pub(VECTORS / "ed25519_sk.pub")}',
    )
    trust = load_trust(path)
    assert [s.principal for s in trust.signers] == ["Ada Approver", "Tok Holder"]
    assert [w.split(": ", 1)[0] for w in trust.warnings] == [f"skipped {path}:1", f"skipped {path}:2"]
    assert "the public key cannot be read" in trust.warnings[0] and "is not supported" in trust.warnings[1]
    env = cli_env(tmp_path / "home", HANDOFF_POLICY_DIR=str(_policy_with(tmp_path, path)))
    res = run_cli("trust", "show", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Ada Approver" in res.stdout and "Tok Holder" in res.stdout
    assert res.stderr.count(":1: the public key") == 1 and res.stderr.count(":2: key type 'ssh-dss'") == 1, res.stderr
    assert "Traceback" not in res.stderr


def _policy_with(tmp_path: Path, trust_file: Path) -> Path:
    import shutil

    folder = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, folder)
    (folder / "trust" / "allowed_signers").write_bytes(trust_file.read_bytes())
    return folder


def test_one_key_on_several_lines_holds_every_role_they_give(tmp_path: Path) -> None:
    """Roles added on a later line of the same principal count, each with its own validity."""
    from handoff.signing.statement import sign_with_key

    ada = _pub(KEYS.folder / "ada.pub")
    trust = load_trust(_file(tmp_path, f'"Ada Approver" namespaces="{APPROVE}" {ada}',
                             f'"Ada Approver" namespaces="{OPERATOR}",valid-before="20260106080000Z" {ada}'))  # fmt: skip
    signature = sign_with_key(DATA, KEYS.key("ada"), OPERATOR)
    assert trust.verify(DATA, signature, OPERATOR, T - dt.timedelta(seconds=1)).line == 2
    with pytest.raises(SignatureError, match=r"not valid at .* line 2\)"):
        trust.verify(DATA, signature, OPERATOR, T)
    assert trust.verify(DATA, sign_with_key(DATA, KEYS.key("ada"), APPROVE), APPROVE, T).line == 1


def test_fuzzed_key_blobs_never_crash(tmp_path: Path) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as hs

    from handoff.errors import PolicyError

    base = (VECTORS / "ecdsa_sk.pub").read_text().split()

    @settings(max_examples=200, deadline=None)
    @given(hs.binary(max_size=200), hs.sampled_from(["sk-ecdsa-sha2-nistp256@openssh.com", "sk-ssh-ed25519@openssh.com",
                                                     "ecdsa-sha2-nistp384", "ssh-ed25519"]))  # fmt: skip
    def one(blob: bytes, algo: str) -> None:
        import base64

        body = _string(algo.encode()) + blob
        trust_file = _file(tmp_path, f'"F Z" namespaces="{APPROVE}" {algo} {base64.b64encode(body).decode()}',
                           f'"Tok Holder" namespaces="{APPROVE}" {base[0]} {base[1]}')  # fmt: skip
        try:
            trust = load_trust(trust_file)
        except PolicyError:
            return
        assert trust.signers[-1].principal == "Tok Holder"

    one()


def test_a_signature_whose_inner_algorithm_is_not_its_keys_is_not_a_valid_signature(tmp_path: Path) -> None:
    """An Ed25519 key's SSHSIG carrying an "ssh-rsa" signature blob: sshsig asserts; handoff says one line."""
    import base64

    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    blob = _string(b"ssh-ed25519") + _string(raw)
    path = _file(tmp_path, f'"Eve Ed" namespaces="{APPROVE}" ssh-ed25519 {base64.b64encode(blob).decode()}')
    digest = hashlib.sha512(DATA).digest()
    wrapped = b"SSHSIG" + _string(APPROVE.encode()) + _string(b"") + _string(b"sha512") + _string(digest)
    sig = _string(b"ssh-rsa") + _string(private.sign(wrapped))
    body = (b"SSHSIG" + (1).to_bytes(4, "big") + _string(blob) + _string(APPROVE.encode()) + _string(b"")
            + _string(b"sha512") + _string(sig))  # fmt: skip
    armored = "-----BEGIN SSH SIGNATURE-----\n" + base64.b64encode(body).decode() + "\n-----END SSH SIGNATURE-----\n"
    with pytest.raises(SignatureError) as caught:
        load_trust(path).verify(DATA, armored, APPROVE, T)
    assert str(caught.value) == (
        "not a valid signature: it cannot be read (AssertionError); paste the whole -----BEGIN SSH SIGNATURE----- block"
    )
