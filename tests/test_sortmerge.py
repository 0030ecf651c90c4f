"""Staged files hold rows in id order although the source query has no ORDER BY: the
client-side merge must give exactly the rows it was handed, each once, in byte order of id,
across many runs whose batches interleave, whatever the table size asked for."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from handoff.extract import sortmerge
from handoff.extract.sortmerge import SortedRuns


@pytest.mark.parametrize("rows_per_table", [1, 7, 1000, 10_000])
def test_merge_of_interleaved_runs_is_the_sorted_whole(tmp_path, monkeypatch, rows_per_table: int) -> None:
    monkeypatch.setattr(sortmerge, "RUN_BATCH_ROWS", 5)  # many small batches per run
    rng = random.Random(12)
    ids = [f"ID{n:07d}" for n in rng.sample(range(10_000_000), 2_000)] + ["Z", "a", "É", "10", "9"]
    rng.shuffle(ids)
    runs = SortedRuns(tmp_path / "runs", "msis_id")
    start = 0
    while start < len(ids):  # chunks of uneven size, as a scan would hand them over
        size = rng.randint(1, 300)
        part = ids[start : start + size]
        runs.add(pa.table({"msis_id": part, "n": [ids.index(i) for i in part]}))
        start += size
    runs.add(pa.table({"msis_id": pa.array([], pa.string()), "n": pa.array([], pa.int64())}))

    tables = list(runs.merged(rows_per_table))
    merged = pa.concat_tables(tables)

    assert all(t.num_rows == rows_per_table for t in tables[:-1])
    assert 0 < tables[-1].num_rows <= rows_per_table
    assert merged.column("msis_id").to_pylist() == sorted(ids, key=lambda s: s.encode())
    assert [ids[n] for n in merged.column("n").to_pylist()] == merged.column("msis_id").to_pylist()
    runs.discard()
    assert not (tmp_path / "runs").exists()


def test_nothing_handed_over_merges_to_nothing(tmp_path) -> None:
    assert list(SortedRuns(tmp_path / "runs", "msis_id").merged(10)) == []
