"""Plain helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
POLICY_DIR = REPO / "expectations"
HANDOFF_BIN = REPO / ".venv" / "bin" / "handoff"

APPROVERS = ["Ada Approver", "Bo Approver"]
INITIATOR = "Cy Initiator"
COUNSEL = "Dee Counsel"
HEARING_ID = "cand-2026-01-02"

# The shared seeded sources: small, but every dirty kind lands on in-population rows at this rate.
ROWS = 4000
SEED = 7
DIRTY_RATE = 0.02

# After the order took effect (2026-01-06 00:00 America/Los_Angeles = 08:00Z).
NOW = dt.datetime(2026, 1, 7, 18, 0, tzinfo=dt.UTC)

# Columns LEGAL.md says never leave (or are internal routing/filter inputs only).
DENIED = (
    "ssn_num", "ssn_ind", "mdcr_bene_id", "msis_case_num",
    "elgbl_1st_name", "elgbl_last_name", "elgbl_mdl_initl_name",
    "sex_cd", "ethncty_cd", "race_ethncty_cd", "elgbl_email_addr",
    "ctznshp_vrfctn_ind", "imgrtn_vrfctn_ind", "imgrtn_stus_5_yr_bar_end_dt",
    "rstrctd_bnfts_cd", "elgblty_grp_cd", "dual_elgbl_cd", "chip_cd",
    "mdcd_enrlmt_eff_dt", "mdcd_enrlmt_end_dt", "submtg_state_cd",
    "prgncy_flag", "dsblty_flag", "chrnc_cond_flag", "hcbs_flag", "updated_at",
)  # fmt: skip


def staged_paths(batch: Any) -> list[Path]:
    folder = Path(batch.staging_path)
    return [folder / f.name for f in batch.files]


def read_staged(batch: Any) -> pa.Table:
    """Every staged row of a batch as one Arrow table (schema from the first file)."""
    tables = [pq.read_table(p) for p in staged_paths(batch)]
    assert tables, f"batch {batch.id} staged no files"
    return pa.concat_tables(tables)


def population_ids(url: str) -> set[str]:
    """IDs meeting the shipped population rule, by a hand-written query independent of the product."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT msis_ident_num FROM enrollees "
                "WHERE ctznshp_ind = '0' AND imgrtn_stus_cd = '3' AND imgrtn_vrfctn_ind = '1' "
                "AND imgrtn_stus_5_yr_bar_end_dt IS NULL AND submtg_state_cd IS NOT NULL"
            )).scalars().all()  # fmt: skip
    finally:
        engine.dispose()
    return set(rows)


def source_rows(url: str, ids: list[str], columns: list[str]) -> dict[str, dict[str, Any]]:
    """Source rows by Medicaid ID, read with a plain query."""
    engine = sa.create_engine(url)
    table = sa.table("enrollees", *(sa.column(c) for c in {"msis_ident_num", *columns}))
    out: dict[str, dict[str, Any]] = {}
    try:
        with engine.connect() as conn:
            for k in range(0, len(ids), 500):
                stmt = sa.select(*table.c).where(table.c.msis_ident_num.in_(ids[k : k + 500]))
                for row in conn.execute(stmt).mappings():
                    out[row["msis_ident_num"]] = dict(row)
    finally:
        engine.dispose()
    return out


def execute(url: str, *statements: str, params: dict[str, Any] | None = None) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for s in statements:
                conn.execute(sa.text(s), params or {})
    finally:
        engine.dispose()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a `handoff` subprocess: this session's AWS endpoint, a fresh home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_") and k not in ("COLUMNS", "LINES")}
    env.update(
        HANDOFF_HOME=str(home),
        HANDOFF_POLICY_DIR=str(POLICY_DIR),
        HANDOFF_APPROVERS=",".join(APPROVERS),
        HANDOFF_CONFIG=str(home / "no-such-handoff.toml"),
        GX_ANALYTICS_ENABLED="False",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HANDOFF_BIN), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def record_upheld(life: Any, now: dt.datetime = NOW, hearing: str = HEARING_ID) -> None:
    from handoff.court import record_outcome

    with life.engine.begin() as conn:
        record_outcome(conn, life.policies, hearing, "upheld", COUNSEL, now)


def ledger_kinds(life: Any, batch_id: str | None = None) -> list[str]:
    from handoff import ledger

    with life.engine.connect() as conn:
        return [e.kind for e in ledger.entries(conn, batch_id=batch_id)]


def build_settings(home: Path, **overrides: Any) -> Any:
    from handoff.config import load_settings

    values: dict[str, Any] = {
        "home": home,
        "policy_dir": POLICY_DIR,
        "approvers": list(APPROVERS),
        "chunk_rows": 1000,
    }
    values.update(overrides)
    return load_settings(**values)
