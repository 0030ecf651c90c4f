"""A batch validated under a superseded order version is never released as is.

It is re-validated into a new batch when the new version permits the same fields for the same
population, and refused (re-extract) when the permitted fields changed.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import KEYS, NOW, POLICY_DIR, approve, build_settings, record_upheld, revalidate, transfer

from handoff.authority.signoff import sign_file
from handoff.errors import GateError
from handoff.policy.order import PolicySet
from handoff.policy.suite import write_suites
from handoff.transfer import Lifecycle

LATER = NOW + dt.timedelta(hours=1)


def _policy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, target)
    return target


def _install_v2(policy_dir: Path, edit: Any) -> str:
    v1 = PolicySet(policy_dir).current()
    text = (policy_dir / "orders" / "2025-12-29.yaml").read_text()
    text = text.replace("version: 1\n", "version: 2\n").replace("supersedes: null", f"supersedes: {v1.ref}")
    (policy_dir / "orders" / "2025-12-29.v2.yaml").write_text(edit(text))
    sign_file(policy_dir / "orders" / "2025-12-29.v2.yaml", KEYS.key("counsel"))
    write_suites(PolicySet(policy_dir))
    return PolicySet(policy_dir).current().ref


def _life(tmp_path: Path, policy_dir: Path, s3: Any, audit_bucket: str) -> Lifecycle:
    return Lifecycle(build_settings(tmp_path / "home", policy_dir=policy_dir, bucket=s3.name,
                                    kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket))  # fmt: skip


def _awaiting(tmp_path: Path, source_url: str, s3: Any, audit_bucket: str) -> tuple[Path, Any]:
    policy_dir = _policy_copy(tmp_path)
    life = _life(tmp_path, policy_dir, s3, audit_bucket)
    batch = transfer(life, source_url, s3.name, NOW).batch
    record_upheld(life)
    assert life.refresh(batch.id, NOW).batch.status == "awaiting-approval"
    return policy_dir, batch


def test_superseded_batch_is_held_then_revalidated_into_a_new_batch(
    tmp_path: Path, sqlite_source_url: str, s3: Any, audit_bucket
) -> None:
    policy_dir, old = _awaiting(tmp_path, sqlite_source_url, s3, audit_bucket)
    # Counsel confirms DC as a plaintiff: same fields and population, a new policy hash.
    v2 = _install_v2(policy_dir, lambda t: t.replace("{state: DC, verified: false", "{state: DC, verified: true"))
    life = _life(tmp_path, policy_dir, s3, audit_bucket)

    held = life.refresh(old.id, NOW)
    assert held.batch.status == "superseded"
    assert {g.gate: g.open for g in held.gates}["policy_version"] is False
    with pytest.raises(GateError, match="superseded"):
        approve(life, old.id, "ada", NOW)
    assert life.release(LATER) == []
    assert s3.object_keys() == [], "a batch of a superseded order version was uploaded"

    fresh = revalidate(life, old.id, NOW)
    assert fresh.batch.id != old.id and fresh.batch.order_ref == v2
    assert fresh.batch.status == "awaiting-approval", fresh.batch.status_reason
    assert fresh.batch.content_hash == old.content_hash  # same rows, same bytes
    assert life.get(old.id).status == "superseded"
    approve(life, fresh.batch.id, "ada", NOW, "re-validated")
    [done] = life.release(LATER)
    assert done.batch.id == fresh.batch.id and done.batch.status == "delivered"
    assert all(f"/{old.id}/" not in k for k in s3.object_keys())


def test_changed_permitted_fields_refuse_revalidation(
    tmp_path: Path, sqlite_source_url: str, s3: Any, audit_bucket
) -> None:
    policy_dir, old = _awaiting(tmp_path, sqlite_source_url, s3, audit_bucket)
    _install_v2(policy_dir, lambda t: t.replace("  phone: [elgbl_phne_num_home]\n", ""))
    life = _life(tmp_path, policy_dir, s3, audit_bucket)
    assert life.refresh(old.id, NOW).batch.status == "superseded"
    with pytest.raises(GateError, match="permitted fields changed.*re-extract"):
        revalidate(life, old.id, NOW)
    assert life.release(LATER) == [] and s3.object_keys() == []
