"""The two steps of a release, called directly and quickly: the handover (gates, lease, the anchored
``delivery-started``) and the upload (staged files checked, objects then manifest, each behind the
guard). The whole-release tests elsewhere play the same rules end to end; these pin each branch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import types
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from support import (
    APPROVERS,
    NOW,
    approve,
    buckets,
    build_settings,
    clear_stops,
    record_upheld,
    set_stop,
    sha256_file,
    sign,
    transfer,
)

from handoff.errors import ConfigError, DeliveryFailed, DeliveryStopped, LeaseLost, StateError
from handoff.release import handover as handover_module
from handoff.release import manifest as manifests
from handoff.release.handover import Handover
from handoff.release.upload import already_delivered, check_staged, upload_batch
from handoff.state import batch as batches
from handoff.state import ledger
from handoff.state.schema import batches as batch_table
from handoff.state.schema import deliveries, iso
from handoff.state.status import Lease, Status
from handoff.storage import deliver
from handoff.storage.write_once import ANCHORS
from handoff.transfer import Lifecycle

LATER = NOW + dt.timedelta(hours=1)


@dataclasses.dataclass
class Ready:
    """A batch approved and cleared to go, in a state database and buckets of its own."""

    life: Lifecycle
    batch: batches.Batch
    bucket: str
    audit: str

    @property
    def handover(self) -> Handover:
        return Handover(self.life.ctx, self.life.gatekeeper)

    def reload(self) -> batches.Batch:
        return self.life.get(self.batch.id)

    def kinds(self) -> list[str]:
        with self.life.engine.connect() as conn:
            return [e.kind for e in ledger.entries(conn, batch_id=self.batch.id)]

    def set_lease(self, owner: str | None, until: dt.datetime | None, status: Status = Status.DELIVERING) -> None:
        with self.life.engine.begin() as conn:
            batches.set_status(conn, self.batch.id, status, None, NOW, Lease(owner, until))

    def target(self) -> deliver.Target:
        return self.life.ctx.target(self.batch)

    def destination(self) -> deliver.Destination:
        return self.target().destination(self.batch.order_id, self.batch.order_version, self.batch.id)

    def listed(self) -> list[str]:
        s3 = deliver.s3_client(self.target().region)
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=self.bucket).get("Contents", []))

    def anchored_seqs(self) -> list[int]:
        s3 = deliver.s3_client(self.target().region)
        found = s3.list_objects_v2(Bucket=self.audit, Prefix=ANCHORS).get("Contents", [])
        return sorted(int(o["Key"].rsplit("/", 1)[-1].split("-", 1)[0]) for o in found)

    def started(self) -> batches.Batch:
        state, outcome = self.handover.start(self.batch.id, LATER)
        assert state == "started", outcome.error or outcome.batch.status_reason
        return outcome.batch


def _ready(source_url: str, s3_server: Any, home: Path, initiator: str = "operator") -> Ready:
    bucket, key, audit = buckets(s3_server, "steps")
    assert audit is not None
    life = Lifecycle(build_settings(home, bucket=bucket, kms_key_id=key, audit_bucket=audit))
    batch = transfer(life, source_url, bucket, NOW, signer=initiator).batch
    record_upheld(life)
    batch = approve(life, batch.id, "ada", NOW).batch
    assert batch.status == "approved"
    return Ready(life, batch, bucket, audit)


@pytest.fixture
def ready(crowded_source_url: str, s3_server: Any, tmp_path: Path) -> Ready:
    return _ready(crowded_source_url, s3_server, tmp_path / "home")


def _never() -> None:
    raise AssertionError("the guard was called before the staged files were checked")


class Counter:
    """A guard that counts its calls and raises ``DeliveryStopped`` on the call numbered ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls, self.stop_at = 0, stop_at

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == self.stop_at:
            raise DeliveryStopped("stopped by the test")


# ----- handover: start ---------------------------------------------------------------------------
def test_start_takes_the_lease_records_the_delivery_and_anchors_it_before_any_byte(ready: Ready) -> None:
    before = ready.kinds()
    state, outcome = ready.handover.start(ready.batch.id, LATER)
    assert state == "started" and outcome.error is None
    batch = ready.reload()
    assert batch.status == Status.DELIVERING == outcome.batch.status
    assert batch.lease_owner == ready.life.ctx.owner
    lease = batches.lease(batch)
    assert lease.until == LATER + dt.timedelta(seconds=ready.life.settings.lease_seconds)
    assert ready.kinds() == [*before, "delivery-started"]
    dest = ready.destination()
    with ready.life.engine.connect() as conn:
        [entry] = ledger.entries(conn, batch_id=batch.id, kinds=["delivery-started"])
        rows = conn.execute(sa.select(deliveries).where(deliveries.c.batch_id == batch.id)).mappings().all()
        head = ledger.head(conn)
    assert entry.payload["bucket"] == ready.bucket == dest.bucket and entry.payload["prefix"] == dest.prefix
    assert entry.payload["owner"] == ready.life.ctx.owner and entry.payload["took_over_from"] is None
    assert (entry.actor, entry.order_ref, entry.at) == ("handoff", batch.order_ref, iso(LATER))
    assert outcome.batch.id == batch.id and [g.gate for g in outcome.gates] == [
        g["gate"] for g in entry.payload["gates"]
    ]
    assert {g["gate"] for g in entry.payload["gates"]} >= {"approval", "emergency_stop", "effective_date"}
    assert all(g["open"] for g in entry.payload["gates"])
    assert [(r["status"], r["bucket"], r["prefix"]) for r in rows] == [("delivering", ready.bucket, dest.prefix)]
    assert rows[0]["started_at"].startswith(LATER.isoformat()[:19])
    assert ready.anchored_seqs()[-1] == head.seq, "delivery-started was not anchored before start returned"
    assert ready.listed() == [], "start uploads nothing"


def test_start_fails_when_delivery_started_cannot_be_anchored(ready: Ready, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing may move before its start is anchored: an anchor that cannot be written is an error, not a warning."""
    assert ready.life.ctx.store is not None

    def refuse(*_args: Any) -> None:
        raise StateError("cannot write s3://audit/anchors/...: AccessDenied")

    monkeypatch.setattr(ready.life.ctx.store, "anchor", refuse)
    with pytest.raises(StateError, match="AccessDenied"):
        ready.handover.start(ready.batch.id, LATER)


def test_start_refuses_without_an_audit_bucket_and_changes_nothing(ready: Ready) -> None:
    ready.life.ctx.store = None
    with pytest.raises(ConfigError):
        ready.handover.start(ready.batch.id, LATER)
    assert ready.reload().status == "approved"
    assert "delivery-started" not in ready.kinds()


def test_start_holds_an_approved_batch_when_a_gate_closed_since(ready: Ready) -> None:
    set_stop(ready.life, "counsel asked", NOW + dt.timedelta(minutes=5))
    state, outcome = ready.handover.start(ready.batch.id, LATER)
    assert state == "waiting"
    assert outcome.batch.status == "held" == ready.reload().status
    assert "emergency_stop" in (outcome.batch.status_reason or "")
    assert {g.gate: g.open for g in outcome.gates}["emergency_stop"] is False
    assert "delivery-started" not in ready.kinds()
    assert not ready.reload().lease_owner
    with ready.life.engine.connect() as conn:
        held = ledger.entries(conn, batch_id=ready.batch.id, kinds=["held"])
    assert held[-1].actor == "handoff" and held[-1].at == iso(LATER)


def test_start_takes_a_batch_held_until_a_moment_ago_once_its_gates_opened(ready: Ready) -> None:
    """Held by a stop, the stop cleared by a signed statement, no refresh in between: the handover
    re-evaluates, moves the batch back to approved, and takes it (held cannot go straight to delivering)."""
    set_stop(ready.life, "counsel asked", NOW + dt.timedelta(minutes=5))
    assert ready.life.refresh(ready.batch.id, NOW + dt.timedelta(minutes=6)).batch.status == "held"
    clear_stops(ready.life, "counsel agreed", NOW + dt.timedelta(minutes=10))
    state, outcome = ready.handover.start(ready.batch.id, LATER)
    assert state == "started", outcome.error or outcome.batch.status_reason
    assert ready.reload().status == "delivering"


def test_a_crashed_delivery_whose_gate_closed_is_stale_not_resumed(ready: Ready) -> None:
    ready.started()
    ready.set_lease("elsewhere:1:abc", LATER - dt.timedelta(seconds=1))  # expired
    set_stop(ready.life, "counsel asked", LATER)
    state, outcome = ready.handover.start(ready.batch.id, LATER + dt.timedelta(minutes=1))
    assert state == "stale"  # the caller withdraws what it uploaded, then holds it
    assert {g.gate: g.open for g in outcome.gates}["emergency_stop"] is False
    assert outcome.batch.status == "delivering" and ready.reload().lease_owner != ready.life.ctx.owner
    assert ready.kinds().count("delivery-started") == 1


def test_a_live_lease_of_another_process_is_left_alone(ready: Ready) -> None:
    ready.started()
    until = LATER + dt.timedelta(minutes=10)
    ready.set_lease("elsewhere:1:abc", until)
    state, outcome = ready.handover.start(ready.batch.id, LATER + dt.timedelta(minutes=1))
    assert state == "waiting"
    assert outcome.error == f"being delivered by elsewhere:1:abc until {until}"
    assert outcome.batch.id == ready.batch.id and outcome.gates and all(g.open for g in outcome.gates)
    batch = ready.reload()
    assert batch.lease_owner == "elsewhere:1:abc" and batches.lease(batch).until == until
    assert ready.kinds().count("delivery-started") == 1


@pytest.mark.parametrize("lease", ["expired", "owner gone"])
def test_a_delivery_whose_owner_is_gone_or_whose_lease_ran_out_is_taken_over_once(ready: Ready, lease: str) -> None:
    ready.started()
    if lease == "expired":
        owner, until = "elsewhere:1:abc", LATER + dt.timedelta(seconds=30)
        at = until  # the instant it runs out is already too late for its holder
    else:
        import socket

        owner, until = f"{socket.gethostname()[:40]}:999999999:abc", LATER + dt.timedelta(minutes=10)
        at = LATER + dt.timedelta(minutes=1)
    ready.set_lease(owner, until)
    state, _ = ready.handover.start(ready.batch.id, at)
    assert state == "started"
    batch = ready.reload()
    assert batch.lease_owner == ready.life.ctx.owner
    with ready.life.engine.connect() as conn:
        entries = ledger.entries(conn, batch_id=batch.id, kinds=["delivery-started"])
        rows = conn.execute(sa.select(deliveries).where(deliveries.c.batch_id == batch.id)).all()
    assert [e.payload["took_over_from"] for e in entries] == [None, owner]
    assert len(rows) == 1, "a takeover must not record a second delivery"


def test_a_lease_still_running_one_instant_before_its_end_is_not_taken(ready: Ready) -> None:
    ready.started()
    until = LATER + dt.timedelta(seconds=30)
    ready.set_lease("elsewhere:1:abc", until)
    state, _ = ready.handover.start(ready.batch.id, until - dt.timedelta(microseconds=1))
    assert state == "waiting"


def test_the_same_process_resumes_its_own_delivery(ready: Ready) -> None:
    ready.started()
    state, _ = ready.handover.start(ready.batch.id, LATER + dt.timedelta(minutes=1))
    assert state == "started"
    assert ready.kinds().count("delivery-started") == 2


@pytest.mark.parametrize("status", [Status.DELIVERED, Status.WITHDRAWN, Status.FAILED, Status.SUPERSEDED])
def test_start_never_touches_a_finished_batch(ready: Ready, status: Status) -> None:
    with ready.life.engine.begin() as conn:  # as if it had ended so (the status table allows no shortcut)
        conn.execute(sa.update(batch_table).where(batch_table.c.id == ready.batch.id).values(status=str(status)))
    before = ready.kinds()
    state, outcome = ready.handover.start(ready.batch.id, LATER)
    assert state == "waiting"
    assert outcome.batch.id == ready.batch.id and outcome.batch.status == status and outcome.gates
    assert ready.reload().status == status
    assert ready.kinds() == before


# ----- handover: the guard ----------------------------------------------------------------------------
def test_the_guard_renews_the_lease_from_the_time_that_passed(ready: Ready, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = ready.started()
    clock = iter([100.0, 160.0])
    monkeypatch.setattr(handover_module, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    guard = ready.handover.guard(batch, LATER)
    guard()
    lease = batches.lease(ready.reload())
    assert lease.owner == ready.life.ctx.owner
    assert lease.until == LATER + dt.timedelta(seconds=60 + ready.life.settings.lease_seconds)


def test_the_guard_raises_on_a_stop_set_in_this_state_database(ready: Ready) -> None:
    batch = ready.started()
    guard = ready.handover.guard(batch, LATER)
    guard()
    stop = set_stop(ready.life, "counsel asked", LATER, actor="Ops On-call")
    with pytest.raises(DeliveryStopped) as caught:
        guard()
    assert str(caught.value) == f"emergency stop {stop.id} set by Ops On-call: counsel asked"


def test_the_guard_raises_on_a_stop_another_state_database_marked_in_the_audit_bucket(ready: Ready) -> None:
    batch = ready.started()
    guard = ready.handover.guard(batch, LATER)
    assert ready.life.ctx.store is not None
    ready.life.ctx.store.mark_stop(f"stop-{uuid.uuid4().hex[:8]}", "the other state's counsel", "Elsewhere Ops", LATER)
    with pytest.raises(DeliveryStopped, match="set by Elsewhere Ops: the other state's counsel"):
        guard()


def test_the_guard_lets_a_stop_go_that_a_signed_statement_cleared(ready: Ready) -> None:
    set_stop(ready.life, "counsel asked", NOW + dt.timedelta(minutes=5))
    clear_stops(ready.life, "counsel agreed", NOW + dt.timedelta(minutes=10))
    batch = ready.started()
    ready.handover.guard(batch, LATER)()  # the clearing verifies against the trust file now: no stop
    assert ready.reload().lease_owner == ready.life.ctx.owner


def test_the_guard_judges_a_clearing_at_the_moment_it_checks(
    ready: Ready, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key that cleared a stop lapses while the delivery runs: from that moment the stop holds again."""
    from handoff.signing.trust import load_trust, trust_path

    set_stop(ready.life, "counsel asked", NOW + dt.timedelta(minutes=5))
    clear_stops(ready.life, "counsel agreed", NOW + dt.timedelta(minutes=10))
    batch = ready.started()
    lapsing = tmp_path / "allowed_signers"
    lines = trust_path(ready.life.settings.policy_dir).read_text().splitlines(keepends=True)
    lapsing.write_text("".join(
        x.replace(" namespaces=", ' valid-before="20260107190030Z",namespaces=', 1) if x.startswith('"Ops On-call"')
        else x for x in lines))  # fmt: skip
    assert "valid-before" in lapsing.read_text()
    monkeypatch.setattr(ready.life.ctx, "trust", lambda: load_trust(lapsing))
    clock = iter([100.0, 100.0, 160.0])  # made at LATER; checks at LATER, then a minute later
    monkeypatch.setattr(handover_module, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    guard = ready.handover.guard(batch, LATER)
    guard()  # the clearing's key is valid until LATER + 30 s
    with pytest.raises(DeliveryStopped, match="counsel asked"):
        guard()


def test_the_guard_raises_when_another_process_took_the_lease(ready: Ready) -> None:
    batch = ready.started()
    guard = ready.handover.guard(batch, LATER)
    ready.set_lease("elsewhere:1:abc", LATER + dt.timedelta(minutes=10))
    with pytest.raises(LeaseLost, match="another process took over this delivery's lease"):
        guard()
    assert ready.reload().lease_owner == "elsewhere:1:abc", "the guard must not take a lease back"


# ----- upload: the staged files ------------------------------------------------------------------------
def test_check_staged_returns_the_folder_of_untouched_files(ready: Ready) -> None:
    order = ready.life.order_for(ready.batch)
    assert check_staged(ready.batch, order) == Path(ready.batch.staging_path or "")


def test_a_changed_staged_file_stops_the_upload_before_any_byte(ready: Ready) -> None:
    batch = ready.started()
    folder = Path(batch.staging_path or "")
    assert len(batch.files) >= 2, "the crowded source should stage several files"
    victim = folder / batch.files[1].name
    table = pq.read_table(victim)
    pq.write_table(table.slice(1), victim)  # a valid file of the same columns, one person fewer
    order = ready.life.order_for(batch)
    with pytest.raises(DeliveryFailed) as caught:
        upload_batch(ready.life.ctx, batch, order, ready.target(), ready.destination(), _never, LATER)
    assert batch.files[1].name in str(caught.value) and "nothing was uploaded" in str(caught.value)
    assert ready.listed() == []


def test_a_missing_staged_file_stops_the_upload(ready: Ready) -> None:
    batch = ready.reload()
    (Path(batch.staging_path or "") / batch.files[0].name).unlink()
    with pytest.raises(DeliveryFailed, match=batch.files[0].name):
        check_staged(batch, ready.life.order_for(batch))


def test_a_staged_file_with_a_column_the_order_does_not_permit_stops_the_upload(ready: Ready) -> None:
    """Hashes updated to match (as an insider would): the schema check still refuses the file."""
    batch = ready.reload()
    path = Path(batch.staging_path or "") / batch.files[0].name
    table = pq.read_table(path)
    pq.write_table(table.append_column("ssn_num", pa.array(["000-00-0000"] * table.num_rows)), path)
    files = [dataclasses.replace(batch.files[0], sha256=sha256_file(path), bytes=path.stat().st_size),
             *batch.files[1:]]  # fmt: skip
    with pytest.raises(DeliveryFailed, match="do not match .* columns") as caught:
        check_staged(dataclasses.replace(batch, files=files), ready.life.order_for(batch))
    assert batch.files[0].name in str(caught.value)


# ----- upload: objects, then the manifest -------------------------------------------------------------
def test_upload_writes_every_file_then_the_manifest_each_behind_the_guard(ready: Ready) -> None:
    batch = ready.started()
    order = ready.life.order_for(batch)
    dest = ready.destination()
    guard = Counter()
    objects, approvers = upload_batch(ready.life.ctx, batch, order, ready.target(), dest, guard, LATER)
    names = [f.name for f in batch.files]
    assert [o.key for o in objects] == [dest.prefix + n for n in names] + [dest.prefix + manifests.NAME]
    assert guard.calls == len(names) + 1
    assert all(o.uploaded for o in objects)
    assert approvers == [APPROVERS[0]]
    s3 = deliver.s3_client(ready.target().region)
    doc = json.loads(s3.get_object(Bucket=ready.bucket, Key=dest.prefix + manifests.NAME)["Body"].read())
    assert doc["content_hash"] == batch.content_hash and doc["batch_id"] == batch.id
    assert [a["principal"] for a in doc["approvals"]] == [APPROVERS[0]]
    assert doc["trust_sha256"] == ready.life.trust().sha256
    with ready.life.engine.connect() as conn:
        head = ledger.head(conn)
    assert doc["ledger_head"]["seq"] == head.seq and doc["ledger_head"]["hash"] == head.hash
    assert doc["proof"]["order_file"]["text"] == ready.life.policies.file_for(order).read_text()
    assert doc["delivered_at"].startswith(LATER.isoformat()[:19])
    assert {f["key"] for f in doc["files"]} == {dest.prefix + n for n in names}


def test_a_stop_before_the_manifest_leaves_no_manifest(ready: Ready) -> None:
    batch = ready.started()
    dest = ready.destination()
    guard = Counter(stop_at=len(batch.files) + 1)
    with pytest.raises(DeliveryStopped):
        upload_batch(ready.life.ctx, batch, ready.life.order_for(batch), ready.target(), dest, guard, LATER)
    assert dest.prefix + manifests.NAME not in ready.listed()
    assert ready.listed() == sorted(dest.prefix + f.name for f in batch.files)


def test_a_stop_before_the_first_object_writes_nothing(ready: Ready) -> None:
    batch = ready.started()
    with pytest.raises(DeliveryStopped):
        upload_batch(ready.life.ctx, batch, ready.life.order_for(batch), ready.target(), ready.destination(),
                     Counter(stop_at=1), LATER)  # fmt: skip
    assert ready.listed() == []


def test_upload_aborts_parts_a_killed_delivery_left_in_progress(ready: Ready) -> None:
    batch = ready.started()
    dest = ready.destination()
    s3 = deliver.s3_client(ready.target().region)
    s3.create_multipart_upload(Bucket=ready.bucket, Key=dest.prefix + batch.files[0].name)
    upload_batch(ready.life.ctx, batch, ready.life.order_for(batch), ready.target(), dest, Counter(), LATER)
    assert s3.list_multipart_uploads(Bucket=ready.bucket, Prefix=dest.prefix).get("Uploads", []) == []


def test_a_manifest_already_written_for_this_batch_is_kept_not_rewritten(ready: Ready) -> None:
    batch = ready.started()
    order, dest = ready.life.order_for(batch), ready.destination()
    first, _ = upload_batch(ready.life.ctx, batch, order, ready.target(), dest, Counter(), LATER)
    s3 = deliver.s3_client(ready.target().region)
    key = dest.prefix + manifests.NAME
    version = s3.head_object(Bucket=ready.bucket, Key=key)["VersionId"]
    guard = Counter()
    again, approvers = upload_batch(ready.life.ctx, batch, order, ready.target(), dest, guard, LATER)
    assert guard.calls == len(batch.files), "no guard call (and no write) for a manifest already there"
    assert s3.head_object(Bucket=ready.bucket, Key=key)["VersionId"] == version
    assert again[-1].key == key and again[-1].sha256 == first[-1].sha256 and not again[-1].uploaded
    assert approvers == [APPROVERS[0]]


def test_another_batchs_manifest_at_the_destination_stops_the_upload(ready: Ready) -> None:
    batch = ready.started()
    dest = ready.destination()
    s3 = deliver.s3_client(ready.target().region)
    s3.put_object(Bucket=ready.bucket, Key=dest.prefix + manifests.NAME, Body=json.dumps({"content_hash": "f" * 64}))
    with pytest.raises(DeliveryFailed, match="holds another batch's manifest"):
        upload_batch(ready.life.ctx, batch, ready.life.order_for(batch), ready.target(), dest, _never, LATER)
    assert ready.listed() == [dest.prefix + manifests.NAME]


# ----- upload: a delivery a killed run completed --------------------------------------------------------
def test_already_delivered_is_none_without_a_manifest(ready: Ready) -> None:
    assert already_delivered(ready.batch, ready.target(), ready.destination()) is None


def test_already_delivered_reads_what_the_manifest_lists(ready: Ready) -> None:
    batch = ready.started()
    dest = ready.destination()
    written, _ = upload_batch(ready.life.ctx, batch, ready.life.order_for(batch), ready.target(), dest, Counter(),
                              LATER)  # fmt: skip
    found = already_delivered(batch, ready.target(), dest)
    assert found is not None
    objects, approvers = found
    assert [(o.key, o.bytes, o.sha256) for o in objects] == [(o.key, o.bytes, o.sha256) for o in written]
    assert [o.uploaded for o in objects] == [False] * len(objects)
    assert objects[0].checksum_sha256 == deliver.checksum(batch.files[0].sha256)
    assert approvers == [APPROVERS[0]]


def test_already_delivered_counts_only_the_files_the_manifest_names(ready: Ready) -> None:
    batch = ready.reload()
    dest = ready.destination()
    s3 = deliver.s3_client(ready.target().region)
    doc = {"content_hash": batch.content_hash, "files": [{"key": dest.prefix + batch.files[1].name}, "junk"],
           "approvals": [{"principal": "Ada Approver"}, 7]}  # fmt: skip
    s3.put_object(Bucket=ready.bucket, Key=dest.prefix + manifests.NAME, Body=json.dumps(doc))
    found = already_delivered(batch, ready.target(), dest)
    assert found is not None
    objects, approvers = found
    assert [o.key for o in objects] == [dest.prefix + batch.files[1].name, dest.prefix + manifests.NAME]
    assert approvers == ["Ada Approver"]


def test_already_delivered_refuses_another_batchs_manifest(ready: Ready) -> None:
    dest = ready.destination()
    s3 = deliver.s3_client(ready.target().region)
    s3.put_object(Bucket=ready.bucket, Key=dest.prefix + manifests.NAME, Body=json.dumps({"content_hash": "0" * 64}))
    with pytest.raises(DeliveryFailed, match="another batch's manifest"):
        already_delivered(ready.batch, ready.target(), dest)


def test_the_manifest_lists_no_approval_by_the_person_who_started_the_batch(
    crowded_source_url: str, s3_server: Any, tmp_path: Path
) -> None:
    """An insider appends an approval by the initiator's second key to the ledger: the gate ignores
    it, and so must the manifest the recipient checks."""
    ready = _ready(crowded_source_url, s3_server, tmp_path / "home", initiator="dual")
    statement = ready.life.decision_statement(ready.batch.id, "approve", None, NOW)
    signed = sign("dual-second", statement)
    with ready.life.ctx.write() as conn:
        ledger.append(conn, "approved", "Di Dual", batch_id=ready.batch.id, order_ref=ready.batch.order_ref, at=NOW,
                      payload={**signed.as_dict(), "key": "forged", "content_hash": statement["content_hash"],
                               "policy_hash": statement["policy_hash"], "destination": statement["destination"],
                               "note": None})  # fmt: skip
    batch = ready.started()
    dest = ready.destination()
    _, approvers = upload_batch(ready.life.ctx, batch, ready.life.order_for(batch), ready.target(), dest, Counter(),
                                LATER)  # fmt: skip
    assert approvers == [APPROVERS[0]]
    s3 = deliver.s3_client(ready.target().region)
    doc = json.loads(s3.get_object(Bucket=ready.bucket, Key=dest.prefix + manifests.NAME)["Body"].read())
    assert [a["principal"] for a in doc["approvals"]] == [APPROVERS[0]]
