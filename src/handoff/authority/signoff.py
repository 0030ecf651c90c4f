"""An order version is in force only once counsel signed its file, and it never changes after.

Counsel signs the order file's exact bytes in the ``handoff-counsel`` namespace:
``ssh-keygen -Y sign -n handoff-counsel -f KEY expectations/orders/2025-12-29.yaml`` writes
``2025-12-29.yaml.sig`` beside it (``handoff policy sign`` does the same). Editing the file voids
the signature. The first use of each version is recorded in the ledger with its policy hash; a
later use of the same version with another hash is refused, because an order version's content is
fixed once built: a change is a new ``version``, reviewed and signed again.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from handoff.errors import PolicyError, SignatureError
from handoff.policy.order import Order
from handoff.signing import statement as st
from handoff.signing.trust import COUNSEL, Signer, Trust
from handoff.state import ledger


def signature_path(order_file: Path) -> Path:
    return order_file.with_name(order_file.name + ".sig")


def verify_file(trust: Trust, order_file: Path, now: dt.datetime) -> Signer:
    """Counsel's signature over the order file as it is on disk now; ``SignatureError`` says why not."""
    sig = signature_path(order_file)
    if not sig.is_file():
        raise SignatureError(f"{order_file.name} has no counsel signature ({sig.name}); counsel signs it with "
                             f"`handoff policy sign {order_file} --key KEY`")  # fmt: skip
    try:
        return trust.verify(order_file.read_bytes(), sig.read_text(encoding="ascii"), COUNSEL, now)
    except SignatureError as exc:
        raise SignatureError(f"{order_file.name}: {exc} (was the file edited after counsel signed it? "
                             "an order version never changes: bump `version`)") from None  # fmt: skip
    except UnicodeDecodeError:
        raise SignatureError(f"{sig}: not an SSH signature file") from None
    except OSError as exc:
        raise SignatureError(f"{order_file.name}: cannot read it or its signature ({exc.strerror or type(exc).__name__}); "
                             "check the files' permissions") from None  # fmt: skip


def sign_file(order_file: Path, key: Path) -> Path:
    """Sign ``order_file`` with ``key`` (counsel's) and write ``FILE.sig``."""
    signature = st.sign_with_key(order_file.read_bytes(), key, COUNSEL)
    path = signature_path(order_file)
    path.write_text(signature, encoding="ascii")
    return path


def check_fixed(conn: sa.Connection, order: Order) -> None:
    """Refuse an order version whose content differs from the one the ledger saw first."""
    for e in ledger.entries(conn, kinds=["order-version"]):
        if e.payload.get("order_ref") == order.ref and e.payload.get("policy_hash") != order.policy_hash:
            raise PolicyError(f"{order.ref} was first used on {e.at[:10]} with policy hash "
                              f"{str(e.payload.get('policy_hash'))[:16]}…; its file now hashes {order.policy_hash[:16]}…. "
                              "An order version is fixed once built: bump `version` (and `supersedes`) "
                              "and have counsel sign the new file")  # fmt: skip


def record_first_use(conn: sa.Connection, order: Order, signer: Signer, file_sha256: str, now: dt.datetime) -> None:
    """Record the version the first time it is used (checked with ``check_fixed`` before)."""
    if any(e.payload.get("order_ref") == order.ref for e in ledger.entries(conn, kinds=["order-version"])):
        return
    ledger.append(conn, "order-version", signer.principal, order_ref=order.ref, at=now,
                  payload={"order_ref": order.ref, "policy_hash": order.policy_hash, "file_sha256": file_sha256,
                           "signed_by": signer.principal, "key": signer.fingerprint})  # fmt: skip
