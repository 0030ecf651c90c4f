"""An insider with shell access to the sender's host tries to get records out, or to hide that they left.

Each test plays one attack from "Proof that travels with the data" with the tools an insider has:
a database client on the state database, the staging and policy folders, the host's S3
credentials (boto3), and the CLI; never anyone else's private key. Each attack must either
deliver nothing, or be named by ``handoff audit verify`` and by the recipient's ``handoff verify``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from support import NOW, approve, decide, ledger_kinds, record_upheld, sign, transfer

from handoff.errors import GateError
from handoff.state import ledger
from handoff.state.schema import batch_files, batches

LATER = NOW + dt.timedelta(hours=1)


def _swap_in_rows(batch: Any, engine: sa.Engine) -> str:
    """Add rows to the first staged file and make the batch's rows agree: the insider's swap."""
    folder = Path(batch.staging_path)
    first = batch.files[0]
    path = folder / first.name
    table = pq.read_table(path)
    extra = table.slice(0, 3)
    ids = pa.array([f"ZZ{i:010d}" for i in range(extra.num_rows)], type=table.schema.field(0).type)
    extra = extra.set_column(0, table.schema.field(0).name, ids)
    pq.write_table(pa.concat_tables([table, extra]), path)
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    rows = table.num_rows + extra.num_rows
    files = [(f.name, rows if f.name == first.name else f.rows, digest if f.name == first.name else f.sha256)
             for f in batch.files]  # fmt: skip
    new_hash = hashlib.sha256("".join(f"{n}\t{r}\t{s}\n" for n, r, s in sorted(files)).encode()).hexdigest()
    with engine.begin() as conn:
        conn.execute(batch_files.update().where(batch_files.c.batch_id == batch.id)
                     .where(batch_files.c.name == first.name).values(sha256=digest, rows=rows, bytes=len(body)))  # fmt: skip
        conn.execute(batches.update().where(batches.c.id == batch.id)
                     .values(content_hash=new_hash, rows_staged=batch.rows_staged + extra.num_rows))  # fmt: skip
    return new_hash


def test_content_swapped_after_validation_is_never_approved_or_delivered(life, sqlite_source_url, s3) -> None:
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_upheld(life)
    swapped = _swap_in_rows(batch, life.engine)
    assert life.get(batch.id).content_hash == swapped

    # A real approver signs exactly what `approve --statement` shows: handoff refuses to record it.
    with pytest.raises(GateError, match="not the content validation recorded"):
        approve(life, batch.id, "ada")
    assert "approval-refused" in ledger_kinds(life, batch.id)

    # The insider records the approver's signature behind handoff's back (a valid ledger append).
    doc = life.decision_statement(batch.id, "approve", None, NOW)
    signed = sign("ada", doc)
    with life.ctx.write() as conn:
        ledger.append(conn, "approved", "Ada Approver", batch_id=batch.id, order_ref=batch.order_ref, at=NOW,
                      payload={**signed.as_dict(), "content_hash": swapped})  # fmt: skip
    [out] = life.release(LATER)
    assert out.batch.status == "held"
    gate = next(g for g in out.gates if g.gate == "validated_content")
    assert not gate.open and "differs from the file validation recorded" in gate.reason
    assert s3.object_keys() == [], "nothing may leave once the content differs from what was validated"


def test_an_untouched_batch_passes_the_validated_content_gate(life, sqlite_source_url, s3) -> None:
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_upheld(life)
    decide(life, batch.id, "ada")
    [out] = life.release(LATER)
    assert out.batch.status == "delivered", out.batch.status_reason
    gate = next(g for g in out.gates if g.gate == "validated_content")
    assert gate.open
    with life.engine.connect() as conn:
        staged = ledger.entries(conn, batch_id=batch.id, kinds=["staged"])[0]
    assert [f["name"] for f in staged.payload["files"]] == sorted(f.name for f in batch.files)
    assert json.dumps(staged.payload["files"])  # recorded as plain JSON


def test_a_stop_is_not_bypassed_with_a_copied_ledger_and_another_audit_bucket(life, sqlite_source_url, s3, s3_server,
                                                                             tmp_path) -> None:  # fmt: skip
    import shutil
    import uuid

    from support import build_settings, set_stop

    from handoff.transfer import Lifecycle
    from handoff_tools import emulator

    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada")
    set_stop(life, "counsel says wait")
    [held] = life.release(LATER)
    assert held.batch.status == "held" and s3.object_keys() == []

    # The insider copies the state database, cuts the ledger before the stop, and points the host at
    # an Object Lock bucket of their own, which holds no stop marker.
    copy = tmp_path / "copy.db"
    shutil.copyfile(Path(life.settings.home) / "state.db", copy)
    engine = sa.create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        cut = conn.execute(sa.select(ledger.ledger.c.seq).where(ledger.ledger.c.kind == "hold-set")).scalar_one()
        conn.execute(ledger.ledger.delete().where(ledger.ledger.c.seq >= cut))
    engine.dispose()
    own = f"handoff-own-{uuid.uuid4().hex[:10]}"
    emulator.create_bucket(s3_server, own, object_lock=True)
    rogue = Lifecycle(build_settings(tmp_path / "rogue", bucket=s3.name, kms_key_id=s3.kms_key_id,
                                     audit_bucket=own, state_url=f"sqlite:///{copy}"))  # fmt: skip
    try:
        [out] = rogue.release(LATER)
    finally:
        rogue.engine.dispose()
    assert out.batch.status != "delivered"
    gate = next(g for g in out.gates if g.gate == "approval")
    assert not gate.open and f"destination audit_bucket {life.settings.audit_bucket!r}" in gate.reason
    assert s3.object_keys() == [], "the approval binds the audit bucket whose stops it honours"


def test_an_order_version_rolled_back_by_deleting_its_files_holds_everything(tmp_path, sqlite_source_url, s3,
                                                                            audit_bucket) -> None:  # fmt: skip
    import shutil

    from support import HEARING_ID, POLICY_DIR, build_settings, narrowed_file, record_outcome

    from handoff.errors import PolicyError
    from handoff.transfer import Lifecycle

    policy_dir = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, policy_dir)
    settings = build_settings(tmp_path / "home", policy_dir=policy_dir, bucket=s3.name, kms_key_id=s3.kms_key_id,
                              audit_bucket=audit_bucket)  # fmt: skip
    life = Lifecycle(settings)
    wide = transfer(life, sqlite_source_url, s3.name, NOW).batch
    assert wide.order_ref.endswith("@v1")
    record_outcome(life, HEARING_ID, "narrowed", order_file=narrowed_file(tmp_path))

    # The insider deletes v2's files: v1 is the newest file again, and the hearing reads "narrowed" (open).
    for path in (policy_dir / "orders").glob("*.v2.yaml*"):
        path.unlink()
    life = Lifecycle(settings)
    assert life.policies.current().ref.endswith("@v1")
    approve(life, wide.id, "ada")
    [out] = life.release(LATER)
    assert out.batch.status == "held", "a rolled-back policy folder holds; it never supersedes or delivers"
    gate = next(g for g in out.gates if g.gate == "order_in_force")
    assert not gate.open and "@v2" in gate.reason and "file is missing" in gate.reason
    assert s3.object_keys() == []
    with pytest.raises(PolicyError, match="file is missing"):
        transfer(life, sqlite_source_url, s3.name, LATER)


def _recipient_verify(url: str, published: Path, tmp_path: Path) -> tuple[int, list[str]]:
    from support import cli_env, run_cli

    env = cli_env(tmp_path / "recipient-home")  # the recipient has no state database of the sender's
    res = run_cli("verify", url, "--trust", str(published), "--json", env=env, cwd=tmp_path)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, [p["problem"] for p in json.loads(res.stdout)["problems"]]


@pytest.fixture
def own_policy(tmp_path, s3, audit_bucket) -> Any:
    """A lifecycle over its own copy of the signed policy folder, and the agency's published trust file."""
    import shutil

    from support import POLICY_DIR, build_settings

    from handoff.signing.trust import trust_path
    from handoff.transfer import Lifecycle

    policy_dir = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, policy_dir)
    published = tmp_path / "published_allowed_signers"
    shutil.copyfile(trust_path(policy_dir), published)
    life = Lifecycle(build_settings(tmp_path / "home", policy_dir=policy_dir, bucket=s3.name,
                                    kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket))  # fmt: skip
    yield life, published
    life.engine.dispose()


def test_a_swapped_sender_trust_file_is_named_by_the_recipient(own_policy, sqlite_source_url, s3, tmp_path) -> None:
    from support import HEARING_ID, KEYS, record_outcome

    from handoff.authority import signoff
    from handoff.signing.trust import COUNSEL, trust_path

    life, published = own_policy
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    # The insider enrols a key of their own as counsel on the host, re-signs the order and records the outcome.
    kind, blob = (KEYS.folder / "mallory.pub").read_text().split()[:2]
    with trust_path(life.settings.policy_dir).open("a") as fh:
        fh.write(f'"Mallory" namespaces="{COUNSEL}" {kind} {blob}\n')
    order_file = life.policies.file_for(life.policies.current())
    signoff.sign_file(order_file, KEYS.key("mallory"))
    record_outcome(life, HEARING_ID, "upheld", label="mallory")
    approve(life, batch.id, "ada")  # a real approver approves what approve shows
    [done] = life.release(LATER)
    assert done.batch.status == "delivered"

    url = f"s3://{s3.name}/{done.manifest_key.rsplit('/', 1)[0]}/"
    code, problems = _recipient_verify(url, published, tmp_path)
    assert code == 1
    assert any(p.startswith("order: ") and "not signed by counsel under this trust file" in p for p in problems)
    assert any(p.startswith(f"court: hearing {HEARING_ID}") and "no outcome signed by counsel" in p for p in problems)
    # Against the host's own (swapped) trust file the chain holds: the published file is what decides.
    code, problems = _recipient_verify(url, trust_path(life.settings.policy_dir), tmp_path)
    assert code == 0, problems
    code, findings = _audit_verify(life, tmp_path)
    assert code == 0, findings
    code, findings = _audit_verify(life, tmp_path, "--trust", str(published))
    assert code == 1
    assert any("hearing-outcome recorded for Mallory does not verify" in f for f in findings), findings


def _audit_verify(life: Any, tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    from support import cli_env, run_cli

    env = cli_env(life.settings.home, HANDOFF_AUDIT_BUCKET=life.settings.audit_bucket,
                  HANDOFF_BUCKET=str(life.settings.bucket), HANDOFF_POLICY_DIR=str(life.settings.policy_dir))  # fmt: skip
    res = run_cli("audit", "verify", "--json", *args, env=env, cwd=tmp_path)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, [f"{f['where']}: {f['problem']}" for f in json.loads(res.stdout)["findings"]]


def test_a_delivery_by_hand_is_named_by_the_audit_and_by_the_recipient(own_policy, sqlite_source_url, s3,
                                                                       tmp_path) -> None:  # fmt: skip
    from handoff.release import manifest, proof

    life, published = own_policy
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    approve(life, batch.id, "ada")  # allowed while the hearing is pending: the batch waits
    [waiting] = life.release(LATER)
    assert waiting.batch.status == "held" and s3.object_keys() == []
    code, _ = _audit_verify(life, tmp_path)
    assert code == 0, "nothing has left yet"

    # The insider uploads the staged files and a manifest with the host's S3 credentials.
    order = life.order_for(batch)
    dest = life.destination(batch)
    objects = []
    for f in batch.files:
        body = (Path(batch.staging_path) / f.name).read_bytes()
        s3.client.put_object(Bucket=s3.name, Key=dest.prefix + f.name, Body=body, ServerSideEncryption="aws:kms",
                             SSEKMSKeyId=s3.kms_key_id)  # fmt: skip
        objects.append(type("O", (), {"key": dest.prefix + f.name, "bytes": len(body), "sha256": f.sha256})())
    with life.engine.connect() as conn:
        from handoff.authority import approval

        signed = approval.signed_decisions(conn, batch.id)
        found = approval.binding(signed, life.trust(), batch, order, dest, None, LATER)
        doc = manifest.build(batch, order, dest, objects, found.approvals, life.trust().sha256, ledger.head(conn),
                             LATER.isoformat(), proof.gather(conn, batch, order, life.policies.file_for(order)))  # fmt: skip
    s3.client.put_object(Bucket=s3.name, Key=dest.prefix + manifest.NAME, Body=manifest.dumps(doc),
                         ServerSideEncryption="aws:kms", SSEKMSKeyId=s3.kms_key_id)  # fmt: skip

    code, findings = _audit_verify(life, tmp_path)
    assert code == 1
    assert any(f.startswith(f"s3://{s3.name}/{dest.prefix}{manifest.NAME}: no recorded delivery") for f in findings)
    code, problems = _recipient_verify(dest.url, published, tmp_path)
    assert code == 1
    assert any("court: hearing" in p and "no outcome signed by counsel" in p for p in problems), problems


def test_anchors_and_objects_hidden_by_delete_markers_are_named(life, sqlite_source_url, s3, tmp_path) -> None:
    import boto3

    from handoff.storage.write_once import ANCHORS

    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada")
    [done] = life.release(LATER)
    assert done.batch.status == "delivered"

    # The insider truncates the ledger at the batch's first entry, deletes the batch's rows, and puts
    # delete markers on the newer anchors and on the delivered objects (Object Lock allows a marker).
    with life.engine.begin() as conn:
        name = ledger.ledger_id(conn)
        cut = conn.execute(sa.select(sa.func.min(ledger.ledger.c.seq)).where(ledger.ledger.c.batch_id == batch.id)
                           ).scalar_one()  # fmt: skip
        conn.execute(ledger.ledger.delete().where(ledger.ledger.c.seq >= cut))
        for table in ("approvals", "deliveries", "batch_files", "row_quarantine"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE batch_id = :b"), {"b": batch.id})
        conn.execute(sa.text("DELETE FROM batches WHERE id = :b"), {"b": batch.id})
    audit = boto3.client("s3", region_name="us-east-1")
    bucket = life.settings.audit_bucket
    hidden = []
    for o in audit.list_objects_v2(Bucket=bucket, Prefix=f"{ANCHORS}{name}/")["Contents"]:
        seq = int(o["Key"].rsplit("/", 1)[-1].split("-")[0])
        if seq >= cut:
            audit.delete_object(Bucket=bucket, Key=o["Key"])
            hidden.append(o["Key"])
    assert hidden and not [o for o in audit.list_objects_v2(Bucket=bucket, Prefix=f"{ANCHORS}{name}/")["Contents"]
                           if o["Key"] in hidden], "plain listings no longer show them"  # fmt: skip
    for key in s3.object_keys():
        s3.client.delete_object(Bucket=s3.name, Key=key)
    assert s3.object_keys() == []

    code, findings = _audit_verify(life, tmp_path)
    assert code == 1
    text = "\n".join(findings)
    assert all(f"{key}: hidden by a delete marker" in text for key in hidden), text
    assert "truncated" in text
    assert f"{done.manifest_key}: no recorded delivery accounts for this object (now hidden by a delete marker)" in text
