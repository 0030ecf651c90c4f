"""Synthetic T-MSIS-style source data: deterministic for a seed, vectorised, never real.

Every column in the data model is filled, denied ones included, with realistic mixes
(all 50 states + DC, citizens, every immigration status code, verified and unverified,
5-year-bar dates, nulls) and a small seeded share of dirty values that validation must
catch. SSNs use the never-issued 9xx area, phones the fictional 555-01xx range.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from handoff.errors import SourceError
from handoff.policy.source_model import (
    CLAIMS_TABLE,
    ENROLLEE_COLUMNS,
    ENROLLEES_TABLE,
    STATES,
    source_metadata,
)

BLOCK = 100_000  # rows per generated block; fixed so output depends only on (seed, rows)
Progress = Callable[[int], None]

_FIPS = np.array(list(STATES))
_ABBR = np.array(list(STATES.values()))
# Rough relative enrolment weights so big states are big; every state + DC appears.
_WEIGHT = np.array([
    1.2, .3, 2.2, .9, 14.0, 1.5, 1.0, .3, .3, 5.0, 2.3, .4, .4, 3.5, 1.9, .8, .5, 1.6, 1.9, .4,
    1.5, 2.0, 3.0, 1.4, .8, 1.2, .3, .3, .9, .2, 2.0, .9, 7.0, 2.6, .1, 3.3, 1.0, 1.3, 3.2, .4,
    1.2, .2, 1.7, 6.0, .5, .2, 1.6, 2.2, .6, 1.7, .2,
])  # fmt: skip
_FIRST = np.array(
    [
        "Alex",
        "Sam",
        "Jordan",
        "Taylor",
        "Morgan",
        "Casey",
        "Riley",
        "Avery",
        "Quinn",
        "Rowan",
        "Jamie",
        "Drew",
        "Reese",
        "Skyler",
        "Emerson",
        "Finley",
        "Harper",
        "Logan",
        "Parker",
        "Sage",
    ]
)
_LAST = np.array(
    [
        "Example",
        "Sample",
        "Testa",
        "Placeholder",
        "Fictus",
        "Synthe",
        "Mockley",
        "Demoson",
        "Fakeworth",
        "Specimen",
        "Dummett",
        "Trialby",
        "Proxley",
        "Stubbs",
        "Modelle",
        "Figment",
    ]
)
_STREET = np.array(
    [
        "Oak",
        "Maple",
        "Cedar",
        "Pine",
        "Elm",
        "Birch",
        "Willow",
        "Aspen",
        "Spruce",
        "Walnut",
        "Hickory",
        "Juniper",
        "Laurel",
        "Magnolia",
        "Poplar",
        "Sycamore",
    ]
)
_SUFFIX = np.array(["St", "Ave", "Rd", "Blvd", "Ln", "Way", "Ct", "Dr"])
_CITY = np.array(
    [
        "Springfield",
        "Riverton",
        "Fairview",
        "Lakeside",
        "Greenville",
        "Franklin",
        "Clinton",
        "Madison",
        "Georgetown",
        "Salem",
        "Bristol",
        "Oakdale",
        "Milton",
        "Ashland",
        "Dover",
    ]
)


def _pick(rng: np.random.Generator, values: np.ndarray, n: int, p: np.ndarray | None = None) -> np.ndarray:
    return values[rng.choice(len(values), size=n, p=p)]


def _null(rng: np.random.Generator, arr: np.ndarray, rate: float) -> pa.Array:
    mask = rng.random(len(arr)) < rate
    return pa.array(arr, type=pa.string(), mask=mask)


def _digits(rng: np.random.Generator, n: int, width: int, low: int = 0) -> np.ndarray:
    return np.char.zfill(rng.integers(low, 10**width, size=n).astype(str), width)


def _dates(rng: np.random.Generator, n: int, start: str, end: str) -> np.ndarray:
    lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
    return lo + rng.integers(0, int((hi - lo).astype(int)), size=n).astype("timedelta64[D]")


def _identity(
    rng: np.random.Generator, start: int, n: int
) -> tuple[dict[str, pa.Array], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Jurisdiction, IDs, identifiers and names (as columns), and birth dates."""
    cols: dict[str, pa.Array] = {}
    si = rng.choice(len(_FIPS), size=n, p=_WEIGHT / _WEIGHT.sum())
    fips, abbr = _FIPS[si], _ABBR[si]
    ids = np.char.add(abbr, np.char.zfill(np.arange(start, start + n).astype(str), 10))
    cols["msis_ident_num"] = pa.array(ids)
    cols["ssn_num"] = _null(
        rng,
        np.char.add(
            np.char.add(np.char.add("9", _digits(rng, n, 2)), "-"),
            np.char.add(np.char.add(_digits(rng, n, 2, 1), "-"), _digits(rng, n, 4, 1)),
        ),
        0.08,
    )
    cols["ssn_ind"] = pa.array(_pick(rng, np.array(["0", "1"]), n, np.array([0.1, 0.9])))
    cols["mdcr_bene_id"] = _null(rng, np.char.add("1EG4", _digits(rng, n, 7)), 0.85)
    cols["msis_case_num"] = pa.array(np.char.add("C", _digits(rng, n, 9)))
    cols["elgbl_1st_name"] = pa.array(_pick(rng, _FIRST, n))
    cols["elgbl_last_name"] = pa.array(_pick(rng, _LAST, n))
    cols["elgbl_mdl_initl_name"] = _null(rng, _pick(rng, np.array(list("ABCDEFGHJKLMNPRSTW")), n), 0.4)
    birth = _dates(rng, n, "1930-01-01", "2025-12-01")

    return cols, fips, abbr, ids, birth


def _immigration(
    rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Citizenship and immigration status, internally consistent, with nulls and raw code 8."""
    ctz = _pick(rng, np.array(["1", "2", "0"]), n, np.array([0.85, 0.01, 0.14]))
    noncit = ctz == "0"
    status = np.where(
        noncit,
        _pick(rng, np.array(["1", "2", "3"]), n, np.array([0.5, 0.15, 0.35])),
        _pick(rng, np.array(["0", "8"]), n, np.array([0.9, 0.1])),
    )
    verified = _pick(rng, np.array(["1", "0"]), n, np.array([0.8, 0.2]))
    bar_mask = ~(noncit & np.isin(status, ["1", "3"]) & (rng.random(n) < 0.3))
    bar = _dates(rng, n, "2026-01-01", "2030-12-31")
    rstr = np.where(status == "3", "2", _pick(rng, np.array(list("01345678"[:7])), n))

    return ctz, status, verified, bar_mask, bar, rstr


def _address(
    rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Home address lines, city, ZIP, county and phone."""
    line1 = np.char.add(
        np.char.add(rng.integers(1, 9999, size=n).astype(str), " "),
        np.char.add(np.char.add(_pick(rng, _STREET, n), " "), _pick(rng, _SUFFIX, n)),
    )
    line2 = np.char.add("Apt ", rng.integers(1, 999, size=n).astype(str))
    city = _pick(rng, _CITY, n)
    zips = np.where(
        rng.random(n) < 0.2, np.char.add(_digits(rng, n, 5, 1000), _digits(rng, n, 4)), _digits(rng, n, 5, 1000)
    )
    county = _digits(rng, n, 3, 1)
    phone = np.char.add(
        np.char.add(rng.integers(201, 990, size=n).astype(str), "5550"), rng.integers(100, 200, size=n).astype(str)
    )
    return line1, line2, city, zips, county, phone


def _block(seed: int, block: int, start: int, n: int, dirty_rate: float) -> pa.Table:
    """One block of enrollees. The helpers draw from ``rng`` in a fixed order: keep it, or the
    data for a given seed changes."""
    rng = np.random.default_rng([seed, block])
    cols, fips, abbr, ids, birth = _identity(rng, start, n)
    ctz, status, verified, bar_mask, bar, rstr = _immigration(rng, n)
    line1, line2, city, zips, county, phone = _address(rng, n)

    # A seeded share of dirty values, so row quarantine has something to catch.
    d = rng.random((4, n)) < dirty_rate
    line2 = np.where(d[0], np.char.add("SSN ", cols["ssn_num"].fill_null("900-12-3456").to_numpy(False)), line2)
    zips = np.where(d[1], _pick(rng, np.array(["1234", "ABCDE", "123456", "00000-"]), n), zips)
    phone = np.where(d[2], _pick(rng, np.array(["555-0100", "555010", "CALLME", "12345678901"]), n), phone)
    birth = np.where(
        d[3], _pick(rng, np.array(["1850-01-01", "2090-06-15", "1899-12-31"], dtype="datetime64[D]"), n), birth
    )
    has_line2 = d[0] | (rng.random(n) < 0.3)
    mail = rng.random(n) < 0.25

    cols["birth_dt"] = pa.array(birth.astype("datetime64[D]"), type=pa.date32())
    cols["sex_cd"] = _null(rng, _pick(rng, np.array(["M", "F"]), n), 0.01)
    cols["ethncty_cd"] = pa.array(_pick(rng, np.array(list("012345")), n))
    cols["race_ethncty_cd"] = pa.array(_pick(rng, np.array([str(i) for i in range(1, 8)]), n))
    cols["elgbl_line_1_adr_home"] = _null(rng, line1, 0.01)
    cols["elgbl_line_2_adr_home"] = pa.array(line2, type=pa.string(), mask=~has_line2)
    cols["elgbl_city_name_home"] = pa.array(city)
    cols["elgbl_state_cd_home"] = pa.array(abbr)
    cols["elgbl_zip_cd_home"] = _null(rng, zips, 0.005)
    cols["elgbl_cnty_cd_home"] = pa.array(county)
    cols["elgbl_line_1_adr_mail"] = pa.array(
        np.char.add("PO Box ", rng.integers(1, 9999, size=n).astype(str)), mask=~mail
    )
    cols["elgbl_line_2_adr_mail"] = pa.array(np.full(n, ""), type=pa.string(), mask=np.ones(n, bool))
    cols["elgbl_city_name_mail"] = pa.array(city, mask=~mail)
    cols["elgbl_state_cd_mail"] = pa.array(abbr, mask=~mail)
    cols["elgbl_zip_cd_mail"] = pa.array(_digits(rng, n, 5, 1000), mask=~mail)
    cols["elgbl_cnty_cd_mail"] = pa.array(county, mask=~mail)
    cols["elgbl_phne_num_home"] = _null(rng, phone, 0.1)
    cols["elgbl_email_addr"] = _null(rng, np.char.add(np.char.add("person", ids), "@example.invalid"), 0.6)
    cols["ctznshp_ind"] = _null(rng, ctz, 0.01)
    cols["ctznshp_vrfctn_ind"] = pa.array(_pick(rng, np.array(["1", "0"]), n, np.array([0.9, 0.1])))
    cols["imgrtn_stus_cd"] = _null(rng, status, 0.02)
    cols["imgrtn_vrfctn_ind"] = _null(rng, verified, 0.03)
    cols["imgrtn_stus_5_yr_bar_end_dt"] = pa.array(bar, type=pa.date32(), mask=bar_mask)
    cols["rstrctd_bnfts_cd"] = pa.array(rstr)
    cols["elgblty_grp_cd"] = pa.array(np.char.zfill(rng.integers(1, 77, size=n).astype(str), 2))
    cols["dual_elgbl_cd"] = pa.array(np.char.zfill(rng.integers(0, 11, size=n).astype(str), 2))
    cols["chip_cd"] = pa.array(_pick(rng, np.array(list("0123")), n))
    eff = _dates(rng, n, "2015-01-01", "2025-06-30")
    cols["mdcd_enrlmt_eff_dt"] = pa.array(eff, type=pa.date32())
    cols["mdcd_enrlmt_end_dt"] = pa.array(
        eff + rng.integers(30, 3000, size=n).astype("timedelta64[D]"), type=pa.date32(), mask=rng.random(n) < 0.5
    )
    cols["submtg_state_cd"] = pa.array(fips)
    for flag, rate in (("prgncy_flag", 0.04), ("dsblty_flag", 0.1), ("chrnc_cond_flag", 0.2), ("hcbs_flag", 0.03)):
        cols[flag] = pa.array(np.where(rng.random(n) < rate, "1", "0"))
    upd = np.datetime64("2025-01-01T00:00:00", "s") + rng.integers(0, 365 * 86400, size=n).astype("timedelta64[s]")
    cols["updated_at"] = pa.array(upd.astype("datetime64[us]"), type=pa.timestamp("us"))
    return pa.table({c.name: cols[c.name] for c in ENROLLEE_COLUMNS})


def enrollee_blocks(rows: int, seed: int, dirty_rate: float = 0.005) -> Iterator[pa.Table]:
    """The synthetic enrollees as Arrow blocks; identical for identical (rows, seed, dirty_rate)."""
    for b, start in enumerate(range(0, rows, BLOCK)):
        yield _block(seed, b, start, min(BLOCK, rows - start), dirty_rate)


def _claims(enrollees: pa.Table, seed: int, block: int) -> pa.Table:
    rng = np.random.default_rng([seed, block, 7])
    take = rng.random(enrollees.num_rows) < 0.3
    ids = pc.filter(enrollees.column("msis_ident_num"), pa.array(take)).to_numpy(False).astype(str)
    n = len(ids)
    cols: dict[str, pa.Array] = {
        "clm_id": pa.array(np.char.add("CLM", ids)),
        "msis_ident_num": pa.array(ids),
    }
    icd = np.array(["E119", "I10", "J449", "O800", "F329", "Z3480", "N390", "K219", "M545", "R51"])
    for i in range(1, 13):
        cols[f"dgns_cd_{i}"] = _null(rng, _pick(rng, icd, n), 0.2 + 0.06 * i)
    for i in range(1, 7):
        cols[f"prcdr_cd_{i}"] = _null(rng, _digits(rng, n, 5), 0.3 + 0.1 * i)
    cols["ndc_cd"] = _null(rng, _digits(rng, n, 11), 0.5)
    cols["drg_cd"] = _null(rng, _digits(rng, n, 3), 0.7)
    return pa.table(cols)


def _copy_postgres(conn: sa.Connection, table: str, data: pa.Table) -> None:
    buf = io.BytesIO()
    pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({cols}) FROM STDIN WITH (FORMAT csv)') as cp:  # type: ignore[union-attr]
        cp.write(buf.getvalue())


def _insert(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy_postgres(conn, table.name, data)
        return
    rows = data.to_pylist()
    for i in range(0, len(rows), 20_000):
        conn.execute(table.insert(), rows[i : i + 20_000])


def seed_database(
    engine: Engine,
    rows: int,
    seed: int = 42,
    *,
    replace: bool = False,
    dirty_rate: float = 0.005,
    progress: Progress | None = None,
) -> int:
    """Create ``enrollees`` and ``claims`` and fill them; return rows written."""
    md = source_metadata()
    insp = sa.inspect(engine)
    existing = [t for t in (ENROLLEES_TABLE, CLAIMS_TABLE) if insp.has_table(t)]
    if existing and not replace:
        raise SourceError(f"table {existing[0]!r} already exists in the source; pass --replace to recreate it")
    md.drop_all(engine, checkfirst=True)
    md.create_all(engine)
    written = 0
    for b, block in enumerate(enrollee_blocks(rows, seed, dirty_rate)):
        with engine.begin() as conn:
            _insert(conn, md.tables[ENROLLEES_TABLE], block)
            _insert(conn, md.tables[CLAIMS_TABLE], _claims(block, seed, b))
        written += block.num_rows
        if progress:
            progress(block.num_rows)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f'ANALYZE "{ENROLLEES_TABLE}"')
    return written


def touch_rows(engine: Engine, ids: list[str], at: dt.datetime, city: str = "Updated City") -> int:
    """Mark enrollees as changed (a new city and ``updated_at``), as a source system would."""
    table = source_metadata().tables[ENROLLEES_TABLE]
    with engine.begin() as conn:
        res = conn.execute(
            table.update()
            .where(table.c.msis_ident_num.in_(ids))
            .values(elgbl_city_name_home=city, updated_at=at.replace(tzinfo=None))
        )
    return int(res.rowcount or 0)
