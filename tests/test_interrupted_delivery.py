"""A delivery cut off by a transient error stays ``delivering`` and completes on the next release, without duplicates."""

from __future__ import annotations

import pytest
from support import NOW, approve, ledger_kinds, record_upheld, transfer

from handoff.errors import DeliveryError
from handoff.storage import deliver


def test_interrupted_delivery_resumes_without_duplicates(
    life, crowded_source_url: str, s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = transfer(life, crowded_source_url, s3.name, NOW).batch
    assert life.settings.chunk_rows == 1000
    assert len(batch.files) >= 2, "need a batch of several files"
    record_upheld(life)
    approve(life, batch.id, "ada", NOW)

    real_upload = deliver.start_upload
    calls: list[str] = []

    def upload_then_fail(s3_client, target, key, path, sha256_hex, guard):  # type: ignore[no-untyped-def]
        calls.append(key)
        if len(calls) == 2:
            raise DeliveryError(f"upload of s3://{target.bucket}/{key}: connection reset (simulated)")
        return real_upload(s3_client, target, key, path, sha256_hex, guard)

    monkeypatch.setattr("handoff.storage.deliver.start_upload", upload_then_fail)
    [failed] = life.release(NOW)
    assert failed.error and "simulated" in failed.error
    monkeypatch.undo()

    # A transient error: still delivering, its lease let go, so the next release resumes it.
    assert life.get(batch.id).status == "delivering"
    first_key = calls[0]
    assert s3.object_keys() == [first_key], "only the first file may be there, and no manifest"
    first_version = s3.listing()[first_key]
    assert "delivery-interrupted" in ledger_kinds(life, batch.id)

    [done] = life.release(NOW)
    assert done.batch.status == "delivered"
    folder = first_key.rsplit("/", 1)[0] + "/"
    expected = sorted([folder + f.name for f in batch.files] + [folder + "manifest.json"])
    listing = s3.listing()
    assert sorted(listing) == expected  # each key exactly once
    assert listing[first_key] == first_version, "the file already delivered was uploaded again"
    uploaded = {o.key: o.uploaded for o in done.objects}
    assert uploaded[first_key] is False
    assert all(uploaded[k] for k in expected if k != first_key)

    kinds = ledger_kinds(life, batch.id)
    assert kinds.count("delivery-started") == 2
    assert kinds.count("delivered") == 1
    assert life.release(NOW) == []


def test_one_failing_delivery_does_not_block_other_batches(life, sqlite_source_url: str, s3) -> None:
    import datetime as dt

    from support import staged_paths

    poisoned = transfer(life, sqlite_source_url, s3.name, NOW).batch
    good = transfer(life, sqlite_source_url, s3.name, NOW + dt.timedelta(minutes=1)).batch
    record_upheld(life)
    for b in (poisoned, good):
        approve(life, b.id, "ada", NOW + dt.timedelta(minutes=2))
    path = staged_paths(poisoned)[0]
    path.write_bytes(path.read_bytes() + b"x")  # this one can never be delivered

    results = {r.batch.id: r for r in life.release(NOW + dt.timedelta(minutes=3))}
    assert results[good.id].batch.status == "delivered"
    # The poisoned one fails once, for good: it is not retried by the next release.
    assert results[poisoned.id].batch.status == "failed" and "changed since validation" in results[poisoned.id].error
    kinds = ledger_kinds(life, poisoned.id)
    assert life.release(NOW + dt.timedelta(hours=1)) == [] and ledger_kinds(life, poisoned.id) == kinds


def test_delivery_resumed_after_a_lost_manifest_response_is_still_accounted(
    life, sqlite_source_url: str, s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handoff.evidence.accounting import disclosures

    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada", NOW)

    real_write = deliver.write_manifest

    def written_but_response_lost(s3_client, target, key, manifest):  # type: ignore[no-untyped-def]
        real_write(s3_client, target, key, manifest)
        raise DeliveryError(f"writing s3://{target.bucket}/{key}: read timeout (simulated)")

    monkeypatch.setattr("handoff.storage.deliver.write_manifest", written_but_response_lost)
    [failed] = life.release(NOW)
    assert failed.error and "simulated" in failed.error
    monkeypatch.undo()
    assert life.get(batch.id).status == "delivering"

    [done] = life.release(NOW)
    assert done.batch.status == "delivered"
    with life.engine.connect() as conn:
        accounted = [d.batch_id for d in disclosures(conn)]
    assert accounted == [batch.id]
