"""Throwaway SSH keys and a trust file for the demo, the benchmark and the tests. DEMO ONLY.

Generates ed25519 keys with ``ssh-keygen`` (no passphrase) into a private folder, writes an
``allowed_signers`` file whose principals say ``DEMO ONLY``, copies a policy folder and signs its
order files as the demo counsel. Never enrol these keys anywhere real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoff.authority.signoff import sign_file
from handoff.errors import HandoffError
from handoff.signing.statement import NAMESPACE, Signed, canonical, sign_with_key
from handoff.signing.trust import APPROVE, COUNSEL, OPERATOR, TRUST_FILE

# label: (principal, roles)
DEMO_PEOPLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "counsel": ("Demo Counsel (DEMO ONLY)", (COUNSEL,)),
    "operator": ("Demo Operator (DEMO ONLY)", (OPERATOR,)),
    "approver": ("Demo Approver (DEMO ONLY)", (APPROVE,)),
}


@dataclass(frozen=True)
class Keyring:
    folder: Path
    people: dict[str, tuple[str, tuple[str, ...]]]

    def key(self, label: str) -> Path:
        """The private key file of ``label``."""
        return self.folder / label

    def principal(self, label: str) -> str:
        return self.people[label][0]

    def sign(self, label: str, doc: dict[str, Any]) -> Signed:
        """``doc`` as canonical bytes, signed by ``label``'s key in the namespace of its kind."""
        data = canonical(doc)
        return Signed(data, sign_with_key(data, self.key(label), NAMESPACE[doc["kind"]]))

    def trust_line(self, label: str) -> str:
        principal, roles = self.people[label]
        kind, blob = (self.folder / f"{label}.pub").read_text().split()[:2]
        return f'"{principal}" namespaces="{",".join(roles)}" {kind} {blob} {label}\n'


def make_keyring(folder: Path, people: dict[str, tuple[str, tuple[str, ...]]] | None = None) -> Keyring:
    """Generate one ed25519 key per person into ``folder`` (created private); reuse keys already there."""
    people = dict(people or DEMO_PEOPLE)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    tool = shutil.which("ssh-keygen")
    if tool is None:
        raise HandoffError("ssh-keygen is not installed; install OpenSSH (Debian: openssh-client)")
    for label, (principal, _) in people.items():
        if (folder / label).is_file():
            continue
        subprocess.run([tool, "-q", "-t", "ed25519", "-N", "", "-C", f"{principal} (throwaway)", "-f",
                        str(folder / label)], check=True, capture_output=True, timeout=60)  # fmt: skip
    return Keyring(folder, people)


def write_trust(keyring: Keyring, path: Path, labels: list[str] | None = None) -> Path:
    """An allowed_signers file enrolling ``labels`` (default: everyone in the keyring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# DEMO ONLY: throwaway keys written by handoff for a demo or a test. Never enrol them anywhere real.\n"
    path.write_text(header + "".join(keyring.trust_line(x) for x in (labels or list(keyring.people))))
    return path


def signed_policy_dir(source: Path, target: Path, keyring: Keyring, counsel: str = "counsel",
                      labels: list[str] | None = None) -> Path:  # fmt: skip
    """Copy a policy folder, enrol the keyring in its trust file and sign every order file as ``counsel``."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.sig"))
    write_trust(keyring, target / TRUST_FILE, labels)
    for order_file in sorted((target / "orders").glob("*.yaml")):
        sign_file(order_file, keyring.key(counsel))
    return target
