"""A staged file is the rows it was given, byte for byte the same each time, and no larger than it
needs to be: columns of a few distinct values keep Parquet's dictionary, mostly distinct ones (IDs,
addresses, phone numbers) are written plain instead of beside a dictionary as large as themselves."""

from __future__ import annotations

import io
import random

import pyarrow as pa
import pyarrow.parquet as pq

from handoff.extract.stage import parquet_bytes


def _rows(n: int, seed: int = 3) -> pa.Table:
    rng = random.Random(seed)
    states = ["CA", "NV", "OR", "WA", "AZ"]
    return pa.table(
        {
            "msis_ident_num": sorted(f"T{rng.randrange(10**12):012d}" for _ in range(n)),
            "elgbl_state_cd_home": [rng.choice(states) for _ in range(n)],
            "elgbl_phne_num_home": [f"{rng.randrange(10**10):010d}" for _ in range(n)],
            "birth_dt": pa.array([rng.randrange(-20_000, 20_000) for _ in range(n)], pa.int32()).cast(pa.date32()),
        }
    )


def _column_bytes(data: bytes) -> dict[str, int]:
    """Each column's bytes in the file before compression (its dictionary page included)."""
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    out: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            chunk = meta.row_group(g).column(c)
            out[chunk.path_in_schema] = out.get(chunk.path_in_schema, 0) + chunk.total_uncompressed_size
    return out


def _written(table: pa.Table, **options: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True, store_schema=True, **options)
    return sink.getvalue()


def test_a_staged_file_reads_back_as_its_rows_and_is_the_same_bytes_every_time() -> None:
    table = _rows(20_000)
    data = parquet_bytes(table)
    assert pq.read_table(io.BytesIO(data)).equals(table)
    assert parquet_bytes(_rows(20_000)) == data


def test_low_cardinality_columns_keep_a_dictionary_and_distinct_ones_do_not_carry_one() -> None:
    table = _rows(50_000)
    data = parquet_bytes(table)
    ours, default, plain = (_column_bytes(d) for d in (data, _written(table), _written(table, use_dictionary=False)))
    assert ours["elgbl_state_cd_home"] <= default["elgbl_state_cd_home"] < plain["elgbl_state_cd_home"] / 4
    for distinct in ("msis_ident_num", "elgbl_phne_num_home"):  # no dictionary of 50,000 values beside them
        assert ours[distinct] <= 1.01 * plain[distinct] and 1.05 * plain[distinct] < default[distinct]
    assert len(data) < 0.9 * len(_written(table))  # Arrow's default, a 1 MiB dictionary page
