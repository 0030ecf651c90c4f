"""An SSN-like value in a permitted column keeps its row out, and is written nowhere."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import (
    NOW,
    approve,
    execute,
    files_under,
    population_ids,
    read_staged,
    record_upheld,
    transfer,
)

from handoff.staging.pipeline import quarantined_rows
from handoff.transfer import Lifecycle

PLANTED = "918-27-3645"
PLANTED_LINE = f"Apt 7 c/o {PLANTED}"


def _cells(table: pa.Table) -> list[str]:
    return [str(v) for col in table.columns for v in col.to_pylist() if v is not None]


def test_ssn_like_address_line_keeps_the_row_out_and_the_value_unwritten(
    fresh_source_url: str, delivery_settings, s3, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="handoff")
    caplog.set_level(logging.INFO)
    target = sorted(population_ids(fresh_source_url))[0]
    execute(fresh_source_url, "UPDATE enrollees SET elgbl_line_2_adr_home = :v WHERE msis_ident_num = :i",
            params={"v": PLANTED_LINE, "i": target})  # fmt: skip

    life = Lifecycle(delivery_settings)
    first = transfer(life, fresh_source_url, s3.name, NOW)
    batch = first.batch
    assert batch.status == "held"
    assert (target, "ssn_like:elgbl_line_2_adr_home") in quarantined_rows(delivery_settings, batch.id)
    assert target not in read_staged(batch).column("msis_ident_num").to_pylist()

    # Deliver the rest, so lineage events and the manifest exist too.
    record_upheld(life)
    approve(life, batch.id, "ada", NOW, "checked")
    [done] = life.release(NOW)
    assert done.batch.status == "delivered"
    life.engine.dispose()

    home = delivery_settings.home
    written = files_under(home)
    assert any(p.name == "state.db" for p in written)
    assert any(p.parent.name == "lineage" for p in written)
    for path in written:
        raw = path.read_bytes()
        assert PLANTED.encode() not in raw, f"planted value written to {path.relative_to(home)}"
        if path.suffix == ".parquet":
            assert not any(PLANTED in c for c in _cells(pq.read_table(path)))

    for key in s3.object_keys():
        body = s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read()
        assert PLANTED.encode() not in body, key
        if key.endswith(".parquet"):
            assert not any(PLANTED in c for c in _cells(pq.read_table(pa.BufferReader(body))))

    assert caplog.records, "expected the transfer to log something"
    assert PLANTED not in caplog.text
    assert all(PLANTED not in r.getMessage() for r in caplog.records)
