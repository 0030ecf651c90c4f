"""Evidence that cannot be rewritten: the ledger head is anchored in an Object Lock bucket after each commit.

Tried as an insider with write access to the state database: rewrite a row and recompute the
whole chain, delete the newest rows, add a row to a table behind the ledger's back. `audit
verify` (the real CLI, over HTTP to the S3 endpoint) names each one and exits 1.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from support import NOW, approve, cli_env, record_upheld, run_cli, transfer

from handoff.state import ledger
from handoff.storage.write_once import ANCHORS

LATER = NOW + dt.timedelta(hours=1)


@pytest.fixture
def delivered(life, sqlite_source_url: str, s3) -> Any:
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada")
    [done] = life.release(LATER)
    assert done.batch.status == "delivered"
    return done


def _audit(life: Any, tmp_path: Any, *args: str) -> Any:
    env = cli_env(life.settings.home, HANDOFF_AUDIT_BUCKET=life.settings.audit_bucket)
    res = run_cli("audit", "verify", *args, env=env, cwd=tmp_path)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def _findings(res: Any) -> list[str]:
    return [f"{f['where']}: {f['problem']}" for f in json.loads(res.stdout)["findings"]]


def test_every_committed_entry_is_anchored_and_the_anchors_cannot_be_erased(life, delivered, tmp_path) -> None:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = life.settings.audit_bucket
    with life.engine.connect() as conn:
        head, name = ledger.head(conn), ledger.ledger_id(conn)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{ANCHORS}{name}/")["Contents"]]
    assert f"{ANCHORS}{name}/{head.seq:012d}-{head.hash}.json" in keys
    assert len(keys) == head.seq - 1, "one anchor per committed entry (ledger-opened commits with the first)"
    res = _audit(life, tmp_path, "--json")
    assert res.returncode == 0, res.stdout
    assert json.loads(res.stdout)["anchors"] == head.seq - 1

    head_obj = s3.head_object(Bucket=bucket, Key=keys[0])
    assert head_obj["ObjectLockMode"] == "COMPLIANCE", "GOVERNANCE can be bypassed by anyone with the permission"
    assert head_obj["ServerSideEncryption"] == "aws:kms"
    version = head_obj["VersionId"]
    with pytest.raises(Exception, match="AccessDenied|locked|retention|WORM"):
        s3.delete_object(Bucket=bucket, Key=keys[0], VersionId=version)
    with pytest.raises(Exception, match="PreconditionFailed|412"):
        s3.put_object(Bucket=bucket, Key=keys[0], Body=b"{}", IfNoneMatch="*")


def test_a_rewritten_and_rechained_ledger_is_named(life, delivered, tmp_path) -> None:
    """Change an actor, then recompute every later hash so the chain itself verifies again."""
    with life.engine.begin() as conn:
        rows = conn.execute(sa.select(ledger.ledger).order_by(ledger.ledger.c.seq)).all()
        target = next(r for r in rows if r.kind == "approved")
        prev = next(r.hash for r in rows if r.seq == target.seq - 1)
        for r in (r for r in rows if r.seq >= target.seq):
            actor = "Someone Else" if r.seq == target.seq else r.actor
            digest = ledger._digest(r.seq, r.at, r.kind, actor, r.batch_id, r.order_ref, r.payload, prev)
            conn.execute(ledger.ledger.update().where(ledger.ledger.c.seq == r.seq)
                         .values(actor=actor, prev_hash=prev, hash=digest))  # fmt: skip
            prev = digest
    with life.engine.connect() as conn:
        assert ledger.verify(conn).ok, "the insider's rewrite keeps the chain itself consistent"
    res = _audit(life, tmp_path, "--json")
    assert res.returncode == 1
    assert f"ledger entry {target.seq}: rewritten: its hash differs from the anchor" in " ".join(_findings(res))


def test_a_truncated_ledger_is_named_and_the_lost_disclosure_too(life, delivered, tmp_path) -> None:
    with life.engine.begin() as conn:
        last = ledger.head(conn).seq
        conn.execute(sa.delete(ledger.ledger).where(ledger.ledger.c.seq >= last - 1))
    env = cli_env(life.settings.home, HANDOFF_AUDIT_BUCKET=life.settings.audit_bucket)
    listed = run_cli("audit", "disclosures", "--json", env=env, cwd=tmp_path)
    assert json.loads(listed.stdout) == [], "the delivered entry is gone from the database"
    res = _audit(life, tmp_path, "--json")
    assert res.returncode == 1
    found = " ".join(_findings(res))
    assert f"ledger entry {last}: missing: the ledger ends at entry {last - 2}" in found and "truncated" in found
    # Its delivery-started entry went with it, so the deliveries row now stands outside the ledger.
    assert f"deliveries row {delivered.batch.id}: written outside the ledger" in found


def test_rows_written_outside_the_ledger_are_named(life, delivered, tmp_path) -> None:
    b = delivered.batch
    with life.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO approvals (batch_id, decision, approver, content_hash, policy_hash, order_ref, note, at) "
            "VALUES (:b, 'approve', 'Bob Approver', :c, 'p', 'o', 'n', 't')"), {"b": b.id, "c": b.content_hash})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO batches (id, order_ref, order_id, order_version, policy_hash, suite_hash, status, initiator, "
            "created_at, updated_at, jurisdictions, source_url, source_tables, query_sql, query_hash, snapshot_at, "
            "rows_extracted, rows_quarantined, rows_staged, excluded, quarantined_by_rule, validation) VALUES "
            "('20260107T180000Z-beefed', 'o', 'o', 1, 'p', 's', 'approved', 'x', 't', 't', '[]', 'u', '[]', 'q', 'h', "
            "'t', 0, 0, 0, '{}', '{}', '{}')"))  # fmt: skip
    res = _audit(life, tmp_path, "--json")
    assert res.returncode == 1
    found = _findings(res)
    assert any(f.startswith("approvals row 2: batch") and "written outside the ledger" in f for f in found), found
    assert any(f.startswith("batches row 20260107T180000Z-beefed") for f in found), found


def test_a_manifest_changed_in_the_bucket_is_named(life, delivered, s3, tmp_path) -> None:
    key = delivered.manifest_key
    doc = json.loads(s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read())
    s3.client.put_object(Bucket=s3.name, Key=key, Body=json.dumps({**doc, "rows": 0}).encode())
    res = _audit(life, tmp_path, "--json")
    assert res.returncode == 1
    assert any(f.startswith(f"s3://{s3.name}/{key}: differs") for f in _findings(res))


@pytest.mark.postgres
def test_concurrent_appends_on_a_server_database_never_collide(server_state_url: str) -> None:
    from handoff.state.schema import open_state

    engine = open_state(server_state_url)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(40):
                with engine.begin() as conn:
                    ledger.append(conn, "test", name, payload={"i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(sa.select(ledger.ledger.c.seq).order_by(ledger.ledger.c.seq))]
        v = ledger.verify(conn)
    engine.dispose()
    assert errors == []
    assert seqs == list(range(1, 162)) and v.ok  # 160 appends after the ledger-opened entry


def test_two_state_databases_share_one_audit_bucket_and_honour_each_others_stops(life, delivered, sqlite_source_url,
                                                                                s3, tmp_path) -> None:  # fmt: skip
    from support import build_settings, set_stop

    from handoff.transfer import Lifecycle

    other = Lifecycle(build_settings(tmp_path / "other", bucket=s3.name, kms_key_id=s3.kms_key_id,
                                     audit_bucket=life.settings.audit_bucket))  # fmt: skip
    try:
        waiting = transfer(other, sqlite_source_url, s3.name, NOW).batch
        record_upheld(other)
        approve(other, waiting.id, "ada")
        stop = set_stop(life, "the first state's counsel says wait")  # pulled on the other database
        life.ctx.store.mark_stop(stop.id, stop.reason, stop.set_by, NOW)  # what `handoff hold set` writes
        [held] = other.release(LATER)
        assert held.batch.status == "held" and "emergency stop" in (held.batch.status_reason or "")
        for lc in (life, other):
            res = _audit(lc, tmp_path, "--json")
            assert res.returncode == 0, res.stdout
            report = json.loads(res.stdout)
            assert report["anchors"] > 0 and any("other ledger" in n for n in report["notes"]), report
    finally:
        other.engine.dispose()


def test_a_ledger_opened_before_namespaced_anchors_still_finds_its_old_anchors(tmp_path, audit_bucket) -> None:
    from handoff.evidence import audit
    from handoff.state.schema import open_state
    from handoff.storage import write_once

    engine = open_state(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # the first entry as an older handoff wrote it: no ledger-opened entry
        digest = ledger._digest(1, NOW.isoformat(), "order-version", "Counsel", None, "o@v1", "{}", ledger.GENESIS)
        conn.execute(ledger.ledger.insert().values(seq=1, at=NOW.isoformat(), kind="order-version", actor="Counsel",
                                                   batch_id=None, order_ref="o@v1", payload="{}",
                                                   prev_hash=ledger.GENESIS, hash=digest))  # fmt: skip
    store = write_once.AuditStore(audit_bucket, 1, "us-east-1")
    store._put_once(f"{write_once.ANCHORS}{1:012d}-{digest}.json", {"seq": 1, "hash": digest, "at": "t"}, NOW)
    with engine.connect() as conn:
        report = audit.verify(conn, store, "us-east-1", check_s3=False)
    engine.dispose()
    assert report.ok and report.anchors == 1, report.as_dict()
