"""Staged files hold rows in id order although the source query has no ORDER BY: the
client-side merge must give exactly the rows it was handed, each once, in byte order of id,
across many runs whose batches interleave, whatever the table size asked for."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.extract import sortmerge
from handoff.extract.sortmerge import SortedRuns


@pytest.mark.parametrize("merge_rows", [0, 64, 10**9])  # one batch per run at a time, a few, whole runs
@pytest.mark.parametrize("rows_per_table", [1, 7, 1000, 10_000])
def test_merge_of_interleaved_runs_is_the_sorted_whole(tmp_path, monkeypatch, rows_per_table: int,
                                                       merge_rows: int) -> None:  # fmt: skip
    monkeypatch.setattr(sortmerge, "RUN_BATCH_ROWS", 5)  # many small batches per run
    monkeypatch.setattr(sortmerge, "MERGE_ROWS", merge_rows)
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


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(st.lists(st.text(max_size=4), max_size=40), min_size=1, max_size=6),
    batch=st.integers(1, 9),
    merge_rows=st.integers(0, 50),
    rows_per_table=st.integers(1, 30),
)
def test_any_runs_merge_to_their_rows_in_byte_order(tmp_path_factory, runs: list[list[str]], batch: int,
                                                    merge_rows: int, rows_per_table: int) -> None:  # fmt: skip
    """Repeated ids, one run or several, runs much shorter than others: every row comes out once, in order."""
    folder = tmp_path_factory.mktemp("runs")
    saved = sortmerge.RUN_BATCH_ROWS, sortmerge.MERGE_ROWS
    sortmerge.RUN_BATCH_ROWS, sortmerge.MERGE_ROWS = batch, merge_rows
    try:
        sorted_runs = SortedRuns(folder / "runs", "msis_id")
        for n, ids in enumerate(runs):
            sorted_runs.add(pa.table({"msis_id": pa.array(ids, pa.string()), "run": [n] * len(ids)}))
        merged = [row for t in sorted_runs.merged(rows_per_table) for row in t.to_pylist()]
    finally:
        sortmerge.RUN_BATCH_ROWS, sortmerge.MERGE_ROWS = saved
    every = [{"msis_id": i, "run": n} for n, ids in enumerate(runs) for i in ids]
    assert [r["msis_id"] for r in merged] == sorted((r["msis_id"] for r in every), key=str.encode)

    def by_id(row: dict[str, object]) -> tuple[str, int]:
        return str(row["msis_id"]), int(row["run"])  # type: ignore[call-overload]

    assert sorted(merged, key=by_id) == sorted(every, key=by_id)


class _Counting:
    """An IPC file reader that counts the rows the merge read from it."""

    read = 0

    def __init__(self, reader: pa.ipc.RecordBatchFileReader) -> None:
        self.reader = reader
        self.num_record_batches = reader.num_record_batches

    def get_batch(self, i: int) -> pa.RecordBatch:
        batch = self.reader.get_batch(i)
        _Counting.read += batch.num_rows
        return batch


@pytest.mark.parametrize("n_runs", [2, 33])
def test_the_merge_holds_a_bounded_number_of_rows_whatever_the_runs_hold(tmp_path, monkeypatch, n_runs: int) -> None:
    """Few runs are read many batches at a time, many runs one batch each: rows read but not yet
    handed on stay near MERGE_ROWS (or one batch per run), however long the runs are."""
    monkeypatch.setattr(sortmerge, "RUN_BATCH_ROWS", 10)
    monkeypatch.setattr(sortmerge, "MERGE_ROWS", 200)
    open_file = pa.ipc.open_file
    monkeypatch.setattr(sortmerge.pa.ipc, "open_file", lambda f: _Counting(open_file(f)))
    _Counting.read = 0
    runs = SortedRuns(tmp_path / "runs", "msis_id")
    rng = random.Random(5)
    every = [f"{n:06d}" for n in range(n_runs * 500)]
    rng.shuffle(every)
    for n in range(n_runs):
        runs.add(pa.table({"msis_id": every[n * 500 : (n + 1) * 500]}))
    handed, held = 0, []
    for table in runs.merged(25):
        handed += table.num_rows
        held.append(_Counting.read - handed)
    assert handed == len(every)
    in_hand = max(200, 10 * n_runs) + 10 * n_runs + 25  # the refills, a batch of slack per run, the table being cut
    assert max(held) <= in_hand
    assert max(held) >= min(200, 10 * n_runs)  # it does read ahead: a few runs are read many batches at a time
