"""Putting rows in id order on the client, in bounded memory, so the database need not sort.

The source query has no ``ORDER BY``: rows stream (and PostgreSQL scans in parallel) in whatever
order the scan yields. Each validated chunk is sorted by id and spilled to disk as a run (Arrow
IPC, in small record batches); ``merged`` then reads every run a few batches at a time and yields
the rows in id order, cut into tables of a fixed size. Memory holds about ``MERGE_ROWS`` rows (at
least one small batch per run) and one output table, whatever the size of the batch. Ids are
compared as bytes, the same in every path, so the staged files are identical run to run and
between the fast and the portable read.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

# Runs are written in batches of this many rows, and the merge reads at least one batch per run at
# a time: with 2,048 rows the 33 runs of a 64M-row source hold about 17 MB (8,192 rows: 70 MB, and
# 100 MB more peak RSS measured at 64M).
RUN_BATCH_ROWS = 2048
# The merge reads as many consecutive batches per run as keep this many rows in hand over all runs:
# a few runs (a source of up to a few million selected rows) then merge in a few large steps instead
# of hundreds of small ones (three runs of 413,670 rows: 0.15 -> 0.10 s), while 33 runs still hold
# one batch each.
MERGE_ROWS = 65_536


def in_key_order(table: pa.Table, key: str, drop: pa.Array | pa.ChunkedArray | None = None) -> pa.Table:
    """``table``'s rows in ``key`` order (stable, as ``Table.sort_by``), without those ``drop`` marks:
    one copy of the rows that stay, where filtering then sorting makes two."""
    keys = table.column(key)
    if drop is None:
        return table.take(pc.sort_indices(keys))
    kept = pc.indices_nonzero(pc.invert(drop))
    return table.take(pc.take(kept, pc.sort_indices(pc.take(keys, kept))))


class SortedRuns:
    def __init__(self, folder: Path, key: str) -> None:
        self.folder, self.key = folder, key
        self.paths: list[Path] = []
        self.schema: pa.Schema | None = None

    def add(self, table: pa.Table, presorted: bool = False) -> None:
        """Spill one chunk as a run, sorted by the key first unless it is ``presorted`` (``in_key_order``)."""
        if table.num_rows == 0:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"run-{len(self.paths):06d}.arrow"
        ordered = table if presorted else table.sort_by(self.key)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, ordered.schema) as writer:
            writer.write_table(ordered, max_chunksize=RUN_BATCH_ROWS)
        self.schema = ordered.schema
        self.paths.append(path)

    def merged(self, rows_per_table: int) -> Iterator[pa.Table]:
        """Every row of every run, in key order, as tables of ``rows_per_table`` (the last one shorter)."""
        if self.schema is None:
            return
        # Plain reads, not memory maps: a mapped run's pages stay resident (and count in RSS) until
        # the map closes, so the merge would end up holding every run.
        files = [pa.OSFile(str(p), "rb") for p in self.paths]
        try:
            yield from self._merge([pa.ipc.open_file(f) for f in files], rows_per_table)
        finally:
            for f in files:
                f.close()

    def _merge(self, readers: list[pa.ipc.RecordBatchFileReader], rows_per_table: int) -> Iterator[pa.Table]:
        positions = [0] * len(readers)
        buffers: list[pa.Table | None] = [None] * len(readers)
        pending: list[pa.Table] = []
        size = 0
        refill = max(RUN_BATCH_ROWS, MERGE_ROWS // max(1, len(readers)))
        while True:
            for i, reader in enumerate(readers):  # refill every drained buffer from its run
                current = buffers[i]
                if current is None or current.num_rows == 0:
                    batches, rows = [], 0
                    while rows < refill and positions[i] < reader.num_record_batches:
                        batch = reader.get_batch(positions[i])
                        positions[i] += 1
                        if batch.num_rows:
                            batches.append(batch)
                            rows += batch.num_rows
                    current = pa.Table.from_batches(batches) if batches else None
                buffers[i] = current
            live = [b for b in buffers if b is not None and b.num_rows]
            if not live:
                break
            # Every row at or below the smallest buffered maximum is here: no run holds a smaller one later.
            bound = min(b.column(self.key)[b.num_rows - 1].as_py() for b in live)  # code point order = UTF-8 byte order
            taken = []
            for i, b in enumerate(buffers):
                if b is None or not b.num_rows:
                    continue
                n = int(pc.sum(pc.less_equal(b.column(self.key), bound)).as_py() or 0)
                if n:
                    taken.append(b.slice(0, n))
                    buffers[i] = b.slice(n)
            # One run's rows are in order already; rows of several are sorted together.
            step = taken[0] if len(taken) == 1 else pa.concat_tables(taken).sort_by(self.key)
            pending.append(step)
            size += step.num_rows
            while size >= rows_per_table:
                table = pa.concat_tables(pending).combine_chunks()
                yield table.slice(0, rows_per_table)
                rest = table.slice(rows_per_table)
                pending, size = ([rest] if rest.num_rows else []), rest.num_rows
        if size:
            yield pa.concat_tables(pending).combine_chunks()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.paths.clear()
