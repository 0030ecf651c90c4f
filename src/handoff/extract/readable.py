"""Reading source values as the types the order's columns have, without ever failing on one.

A source may hold anything in a column (SQLite has no types; a state system may keep dates as
text). Chunks arrive as the source gave them; ``as_typed`` converts each column to its type and
reports, per column, the rows whose value could not be read: those rows are quarantined under
``unreadable:COLUMN`` by Medicaid ID, and the value itself goes nowhere (no exception carries it).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def _as_date(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    if pa.types.is_date32(col.type):
        return col, None
    if pa.types.is_date(col.type) or pa.types.is_timestamp(col.type):
        return col.cast(pa.date32()), None
    text = col if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) else col.cast(pa.string())
    parsed = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True).cast(pa.date32())
    return parsed, pc.and_(pc.is_valid(col), pc.is_null(parsed))


def _as_string(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    if pa.types.is_string(col.type):
        return col, None
    if pa.types.is_large_string(col.type) or pa.types.is_integer(col.type) or pa.types.is_null(col.type):
        return col.cast(pa.string()), None
    # Anything else (binary, floats, nested): not text as the order means it.
    empty = pa.nulls(len(col), pa.string())
    return pa.chunked_array([empty]), pc.is_valid(col)


def as_typed(table: pa.Table, schema: pa.Schema) -> tuple[pa.Table, dict[str, pa.ChunkedArray]]:
    """``table`` converted to ``schema``, and for each column the mask of values that could not be read."""
    columns, unreadable = [], {}
    for f in schema:
        col = table.column(f.name)
        if isinstance(col, pa.Array):
            col = pa.chunked_array([col])
        typed, bad = _as_date(col) if pa.types.is_date(f.type) else _as_string(col)
        columns.append(typed)
        if bad is not None and (pc.sum(bad).as_py() or 0):
            unreadable[f.name] = bad
    return pa.Table.from_arrays(columns, schema=schema), unreadable
