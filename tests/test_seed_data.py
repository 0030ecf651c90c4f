"""Synthetic source data: deterministic for a seed, and broad enough to exercise every rule."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import sqlalchemy as sa
from support import DIRTY_RATE, ROWS, SEED

from handoff.policy.source_model import ENROLLEE_COLUMNS, STATES
from handoff_tools.seed import enrollee_blocks


def _generate(rows: int, seed: int, dirty_rate: float = DIRTY_RATE) -> pa.Table:
    return pa.concat_tables(list(enrollee_blocks(rows, seed, dirty_rate)))


def test_same_seed_gives_identical_rows() -> None:
    assert _generate(3000, 11).equals(_generate(3000, 11))


def test_different_seed_gives_different_rows() -> None:
    a, b = _generate(3000, 11), _generate(3000, 12)
    assert a.schema == b.schema
    assert a.column("birth_dt") != b.column("birth_dt")
    assert a.column("msis_ident_num") != b.column("msis_ident_num")  # ids carry the (random) state


def _read_source(url: str) -> list[dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text("SELECT * FROM enrollees ORDER BY msis_ident_num")).mappings()]
    engine.dispose()
    return rows


def _normal(value):  # type: ignore[no-untyped-def]
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return dt.date.fromisoformat(value)  # SQLite hands dates back as text through a raw query
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        return dt.datetime.fromisoformat(value)
    return value


def test_seeded_database_holds_exactly_the_generated_rows(source_url: str) -> None:
    expected = sorted(_generate(ROWS, SEED).to_pylist(), key=lambda r: r["msis_ident_num"])
    actual = _read_source(source_url)
    assert len(actual) == ROWS
    assert [c.name for c in ENROLLEE_COLUMNS] == list(actual[0])
    for want, got in zip(expected, actual, strict=True):
        assert {k: _normal(v) for k, v in got.items()} == want


def test_seeded_source_covers_every_state_status_code_and_nulls(source_url: str) -> None:
    engine = sa.create_engine(source_url)
    with engine.connect() as conn:

        def distinct(col: str) -> set:
            return set(conn.execute(sa.text(f"SELECT DISTINCT {col} FROM enrollees")).scalars())

        def count(where: str) -> int:
            return conn.execute(sa.text(f"SELECT count(*) FROM enrollees WHERE {where}")).scalar()

        def nulls(col: str) -> int:
            return count(f"{col} IS NULL")

        states = distinct("submtg_state_cd")
        assert states == set(STATES) and len(states) == 51
        assert distinct("elgbl_state_cd_home") == set(STATES.values())
        assert distinct("imgrtn_stus_cd") == {"0", "1", "2", "3", "8", None}
        assert distinct("ctznshp_ind") == {"0", "1", "2", None}
        assert distinct("imgrtn_vrfctn_ind") == {"0", "1", None}
        for col in ("ctznshp_ind", "imgrtn_stus_cd", "imgrtn_vrfctn_ind", "elgbl_phne_num_home",
                    "elgbl_zip_cd_home", "imgrtn_stus_5_yr_bar_end_dt", "ssn_num"):  # fmt: skip
            assert nulls(col) > 0, col
        assert count("imgrtn_stus_5_yr_bar_end_dt IS NOT NULL") > 0
        assert conn.execute(sa.text("SELECT count(*) FROM claims")).scalar() > 0
        # Synthetic only: every SSN is in the never-issued 9xx area.
        assert count("ssn_num IS NOT NULL AND ssn_num NOT LIKE '9%'") == 0
    engine.dispose()
