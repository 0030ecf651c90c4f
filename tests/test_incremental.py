"""Run it the way operators do: the scheduled incremental transfer delivers exactly what changed.

Done when "a scheduled incremental run after changing 100 source rows delivers exactly those rows".
The scheduled deployment runs ``transfer_flow(incremental=True)``; here it runs under
``prefect_test_harness`` with the approval pause timing out at once (``approval_timeout_s=0``),
so each run ends ``AwaitingApproval`` and the batch is approved and released with ``Lifecycle``,
as ``handoff approve`` and the hourly release would. The delivery stores the watermark; the
next incremental run reads only rows changed after it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from support import KEYS, POLICY_DIR, approve, build_settings, population_ids, record_upheld, transfer

from handoff.extract.reader import open_source
from handoff.staging.pipeline import quarantined_rows
from handoff.transfer import Lifecycle
from handoff_tools.seed import touch_rows

ROWS = 10_000  # about 230 rows in the population: more than the 100 to change, in one 1000-row chunk
CITY = "Updated City"  # touch_rows' new value
KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture
def life(tmp_path, s3, monkeypatch: pytest.MonkeyPatch, audit_bucket: str) -> Iterator[Lifecycle]:
    """A handoff home shared by the flow (through HANDOFF_* variables) and the test, hearing upheld."""
    home = tmp_path / "home"
    for k, v in {
        "HANDOFF_HOME": str(home),
        "HANDOFF_POLICY_DIR": str(POLICY_DIR),
        "HANDOFF_SIGNING_KEY": str(KEYS.key("scheduler")),  # the deployment's service key
        "HANDOFF_CHUNK_ROWS": "1000",
        "HANDOFF_KMS_KEY_ID": s3.kms_key_id,
        "HANDOFF_AUDIT_BUCKET": audit_bucket,
    }.items():
        monkeypatch.setenv(k, v)
    lc = Lifecycle(build_settings(home, bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket))
    record_upheld(lc, _now())
    yield lc
    lc.engine.dispose()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _scheduled_run(url: str, bucket: str, life: Lifecycle, expect: str = "AwaitingApproval", **params: Any) -> str:
    """One run of the transfer flow as the daily deployment starts it; returns its batch id."""
    from flows.transfer import transfer_flow

    # As `handoff serve --db-env` registers it: the run's parameters hold a reference, not the URL.
    os.environ["TEST_SOURCE_DB_URL"] = url
    state = transfer_flow(db_url="env:TEST_SOURCE_DB_URL", bucket=bucket, incremental=True,
                          approval_timeout_s=0, return_state=True, **params)  # fmt: skip
    assert state.name == expect, f"{state.name}: {state.message}"
    batch_id = life.batch_for_flow_run(str(state.state_details.flow_run_id))
    assert batch_id, "the flow run recorded no batch"
    return batch_id


def _approve_and_release(life: Lifecycle, batch_id: str) -> Any:
    assert life.get(batch_id).status == "awaiting-approval"
    assert approve(life, batch_id, "ada", _now(), "checked").batch.status == "approved"
    done = [o for o in life.release(_now()) if o.batch.id == batch_id]
    assert [o.batch.status for o in done] == ["delivered"], [(o.batch.status, o.batch.status_reason) for o in done]
    return done[0]


def _manifest(s3: Any, key: str) -> dict[str, Any]:
    return json.loads(s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read())


def _parquet(s3: Any, key: str) -> pa.Table:
    return pq.read_table(pa.BufferReader(s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read()))


def _delivered_rows(s3: Any, manifest: dict[str, Any]) -> pa.Table | None:
    tables = [_parquet(s3, f["key"]) for f in manifest["files"]]
    return pa.concat_tables(tables).sort_by("msis_ident_num") if tables else None


def _stored_watermark(life: Lifecycle, batch: Any) -> str | None:
    order = life.policies.current(None)
    moment = life.watermark(order.order_id, batch.jurisdictions)
    return moment.isoformat() if moment else None


def _changed_ids(s3: Any, manifest: dict[str, Any], life: Lifecycle, batch_id: str, n: int) -> list[str]:
    """The first ``n`` Medicaid IDs of the first delivered file: in the population, not row-quarantined."""
    first = _parquet(s3, manifest["files"][0]["key"])
    ids = first.column("msis_ident_num").to_pylist()[:n]
    assert len(ids) == n, f"the first delivered file holds {first.num_rows} rows, fewer than {n}"
    assert not set(ids) & {i for i, _ in quarantined_rows(life.settings, batch_id)}
    return ids


@pytest.mark.parametrize("kind", KINDS)
def test_scheduled_incremental_run_delivers_exactly_the_changed_rows(
    prefect_harness, kind: str, make_source, life: Lifecycle, s3
) -> None:
    url = make_source(kind, rows=ROWS)

    # The first scheduled run has no watermark yet: it is a full transfer of the population.
    first_id = _scheduled_run(url, s3.name, life)
    first = _approve_and_release(life, first_id)
    first_manifest = _manifest(s3, first.manifest_key)
    assert first.batch.since is None  # internal lineage: in the state database, not the manifest
    full = _delivered_rows(s3, first_manifest)
    assert full is not None and full.num_rows == first.batch.rows_staged > 100
    assert set(full.column("msis_ident_num").to_pylist()) <= population_ids(url)
    watermark = first.batch.watermark
    assert watermark and _stored_watermark(life, first.batch) == watermark

    # A source system changes 100 delivered enrollees after the watermark.
    ids = _changed_ids(s3, first_manifest, life, first_id, 100)
    engine = open_source(url)
    try:
        assert touch_rows(engine, ids, at=dt.datetime.fromisoformat(watermark) + dt.timedelta(days=1)) == 100
    finally:
        engine.dispose()

    second_id = _scheduled_run(url, s3.name, life)
    second = _approve_and_release(life, second_id)
    manifest = _manifest(s3, second.manifest_key)
    assert second.batch.since == watermark
    rows = _delivered_rows(s3, manifest)
    assert rows is not None
    assert sorted(rows.column("msis_ident_num").to_pylist()) == sorted(ids)
    assert set(rows.column("elgbl_city_name_home").to_pylist()) == {CITY}
    # Apart from the city, the rows are what the first batch delivered for the same people.
    before = full.filter(pc.is_in(full.column("msis_ident_num"), pa.array(ids))).sort_by("msis_ident_num")
    city = rows.schema.get_field_index("elgbl_city_name_home")
    assert rows.remove_column(city).equals(before.remove_column(city))
    assert before.column("elgbl_city_name_home").to_pylist() != [CITY] * 100
    assert manifest["rows"] == second.batch.rows_extracted == 100
    assert second.batch.rows_quarantined == 0
    assert sum(second.batch.excluded["included_by_jurisdiction"].values()) == 100
    new_watermark = second.batch.watermark
    assert new_watermark and new_watermark > watermark
    assert _stored_watermark(life, second.batch) == new_watermark

    # Nothing changed since: the run ends Empty. Nobody is asked to approve nothing, nothing is
    # uploaded, no disclosure is accounted, and the watermark stays where it was.
    keys_before = set(s3.object_keys())
    empty_id = _scheduled_run(url, s3.name, life, expect="Empty")
    empty = life.get(empty_id)
    assert empty.status == "empty" and "nothing changed since the watermark" in (empty.status_reason or "")
    assert (empty.rows_extracted, empty.rows_staged, empty.rows_quarantined, empty.files) == (0, 0, 0, [])
    assert empty.since == new_watermark and empty.watermark is None
    assert life.release(_now()) == []
    assert set(s3.object_keys()) == keys_before, "an empty batch was uploaded"
    assert _stored_watermark(life, second.batch) == new_watermark, "an empty batch moved the watermark"
    from handoff.evidence.accounting import disclosures

    with life.engine.connect() as conn:
        assert empty_id not in {d.batch_id for d in disclosures(conn)}


def test_partitioned_incremental_run_delivers_only_the_changed_rows(
    prefect_harness, make_source, life: Lifecycle, s3
) -> None:
    """``partition_rows`` with ``incremental=True``: the partitions read only rows changed since the watermark."""
    url = make_source("sqlite", rows=ROWS)
    staged = transfer(life, url, s3.name, _now())
    first = _approve_and_release(life, staged.batch.id)
    first_manifest = _manifest(s3, first.manifest_key)
    watermark = first.batch.watermark
    assert watermark

    ids = _changed_ids(s3, first_manifest, life, first.batch.id, 30)
    engine = open_source(url)
    try:
        assert touch_rows(engine, ids, at=dt.datetime.fromisoformat(watermark) + dt.timedelta(hours=1)) == 30
    finally:
        engine.dispose()

    batch_id = _scheduled_run(url, s3.name, life, partition_rows=10)
    done = _approve_and_release(life, batch_id)
    manifest = _manifest(s3, done.manifest_key)
    assert done.batch.since == watermark
    rows = _delivered_rows(s3, manifest)
    assert rows is not None and sorted(rows.column("msis_ident_num").to_pylist()) == sorted(ids)
    assert set(rows.column("elgbl_city_name_home").to_pylist()) == {CITY}
    assert len(done.batch.files) > 1, "the batch was not staged in partitions"


def test_cli_incremental_transfer_starts_from_the_delivered_watermark(
    make_source: Any, life: Lifecycle, s3: Any, tmp_path: Path
) -> None:
    from support import cli_env, run_cli

    url = make_source("sqlite", rows=3000)
    first = transfer(life, url, s3.name, _now()).batch
    _approve_and_release(life, first.id)

    env = cli_env(life.settings.home, HANDOFF_KMS_KEY_ID=s3.kms_key_id, HANDOFF_SIGNING_KEY=str(KEYS.key("operator")),
                  HANDOFF_AUDIT_BUCKET=str(life.settings.audit_bucket))  # fmt: skip
    res = run_cli("transfer", "--db", url, "--bucket", s3.name, "--incremental", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "empty" and doc["rows_extracted"] == 0, doc
    assert life.get(doc["batch_id"]).since == first.watermark
