"""Plain helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from handoff.signing.trust import APPROVE, OPERATOR, SERVICE  # noqa: E402
from handoff.signing.trust import COUNSEL as COUNSEL_ROLE
from handoff_tools import demokeys  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHIPPED_POLICY_DIR = REPO / "expectations"
# The handoff of the interpreter running pytest, wherever its environment lives.
HANDOFF_BIN = Path(sys.executable).with_name("handoff")

APPROVERS = ["Ada Approver", "Bo Approver"]
INITIATOR = "Cy Initiator"
COUNSEL = "Dee Counsel"
HEARING_ID = "cand-2026-01-02"

# Real ed25519 keys, generated with ssh-keygen once per test process. Labels are what tests sign as.
PEOPLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "ada": (APPROVERS[0], (APPROVE,)),
    "bo": (APPROVERS[1], (APPROVE,)),
    "operator": (INITIATOR, (OPERATOR,)),
    "counsel": (COUNSEL, (COUNSEL_ROLE,)),
    "ops": ("Ops On-call", (OPERATOR,)),
    "dual": ("Di Dual", (OPERATOR, APPROVE)),
    "dual-second": ("Di Dual", (APPROVE,)),  # the same person's second key
    "scheduler": ("handoff-scheduler", (SERVICE,)),  # a scheduled deployment: its own requests only
    "mallory": ("Mallory", (APPROVE, OPERATOR, COUNSEL_ROLE)),  # has keys, never enrolled
}
ENROLLED = [label for label in PEOPLE if label != "mallory"]
_KEYS_HOME = Path(tempfile.mkdtemp(prefix="handoff-test-keys-"))
atexit.register(shutil.rmtree, _KEYS_HOME, True)
KEYS = demokeys.make_keyring(_KEYS_HOME / "keys", PEOPLE)
# The shipped policy folder with the test keys enrolled and the order signed by "counsel".
POLICY_DIR = demokeys.signed_policy_dir(SHIPPED_POLICY_DIR, _KEYS_HOME / "expectations", KEYS, labels=ENROLLED)

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


def unavailable(what: str) -> None:
    """Skip a test whose server or browser is missing, or fail it when CI requires every one
    (``HANDOFF_REQUIRE_SERVICES=1`` in ``.ci/run``): CI must never go green without them."""
    import pytest

    if os.environ.get("HANDOFF_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} (HANDOFF_REQUIRE_SERVICES=1: CI must run this test, not skip it)", pytrace=False)
    pytest.skip(what)


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


def sign(label: str, doc: dict[str, Any]) -> Any:
    """``doc`` signed by the test person ``label`` (real ssh-keygen, real key)."""
    return KEYS.sign(label, doc)


def request(life: Any, source_url: str, bucket: str, now: dt.datetime = NOW, signer: str = "operator",
            **fields: Any) -> Any:  # fmt: skip
    """A StageRequest carrying a transfer request signed by ``signer``."""
    from handoff.staging.pipeline import StageRequest

    req = StageRequest(source_url, bucket=bucket, **fields)
    return dataclasses.replace(req, signed=sign(signer, life.request_statement(req, bucket, now)))


def transfer(life: Any, source_url: str, bucket: str, now: dt.datetime = NOW, signer: str = "operator",
             **fields: Any) -> Any:  # fmt: skip
    """Start a transfer the way an operator does: a signed request, then ``Lifecycle.transfer``."""
    return life.transfer(request(life, source_url, bucket, now, signer, **fields), bucket, now)


def revalidate(life: Any, batch_id: str, now: dt.datetime = NOW, signer: str = "operator") -> Any:
    """Re-check a superseded batch, asked for with a signed operator request."""
    return life.revalidate(batch_id, sign(signer, life.revalidation_statement(batch_id, now)), now)


def decide(life: Any, batch_id: str, label: str = "ada", decision: str = "approve", note: str | None = None,
           now: dt.datetime = NOW) -> Any:  # fmt: skip
    """Sign and record a decision as ``label``."""
    doc = life.decision_statement(batch_id, decision, note, now)
    return life.decide(batch_id, sign(label, doc), now)


def approve(life: Any, batch_id: str, label: str = "ada", now: dt.datetime = NOW, note: str | None = None) -> Any:
    return decide(life, batch_id, label, "approve", note, now)


def record_upheld(life: Any, now: dt.datetime = NOW, hearing: str = HEARING_ID, label: str = "counsel") -> None:
    record_outcome(life, hearing, "upheld", now, label=label)


def record_outcome(life: Any, hearing: str, result: str, now: dt.datetime = NOW, order_file: Path | None = None,
                   label: str = "counsel") -> Any:  # fmt: skip
    """Counsel signs and records a hearing outcome."""
    from handoff.authority import court

    trust = life.trust()
    with life.engine.connect() as conn:
        h = next(x for x in court.calendar(conn, life.policies, trust, now) if x.id == hearing)
    signed = sign(label, court.outcome_statement(h, result, order_file, now))
    with life.ctx.write() as conn:  # as the CLI writes: commit, then anchor
        return court.record_outcome(conn, life.policies, trust, signed, now, order_file)


def set_stop(life: Any, reason: str, now: dt.datetime = NOW, actor: str = "Ops On-call") -> Any:
    from handoff.authority import hold

    with life.ctx.write() as conn:  # as the CLI writes: commit, then anchor
        return hold.set_stop(conn, reason, actor, now)


def clear_stops(life: Any, reason: str, now: dt.datetime = NOW, label: str = "ops") -> Any:
    from handoff.authority import hold

    trust = life.trust()
    with life.engine.connect() as conn:
        active = hold.current(conn, trust, now).active
    with life.ctx.write() as conn:  # as the CLI writes: commit, then anchor
        return hold.clear(conn, trust, sign(label, hold.clear_statement(active, reason, now)), now)


def ledger_kinds(life: Any, batch_id: str | None = None) -> list[str]:
    from handoff.state import ledger

    with life.engine.connect() as conn:
        return [e.kind for e in ledger.entries(conn, batch_id=batch_id)]


def build_settings(home: Path, **overrides: Any) -> Any:
    from handoff.config import load_settings

    values: dict[str, Any] = {
        "home": home,
        "policy_dir": POLICY_DIR,
        "chunk_rows": 1000,
    }
    values.update(overrides)
    return load_settings(**values)


def buckets(s3_server: Any, name: str, audit: bool = True) -> tuple[str, str, str | None]:
    """A new handoff bucket (versioned) with its KMS key, and an Object Lock audit bucket: (bucket, key, audit)."""
    import uuid

    from handoff_tools import emulator

    bucket = f"handoff-{name}-{uuid.uuid4().hex[:12]}"
    key = emulator.create_bucket(s3_server, bucket)
    if not audit:
        return bucket, key, None
    audit_bucket = f"handoff-audit-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(s3_server, audit_bucket, object_lock=True)
    return bucket, key, audit_bucket


def narrowed_file(tmp_path: Path, *, drop: str = "  phone: [elgbl_phne_num_home]\n", extra: dict[str, str] | None = None,
                  signed_by: str | None = "counsel") -> Path:  # fmt: skip
    """A version 2 of the shipped order with ``drop`` removed and ``extra`` replaced, signed by ``signed_by``."""
    from handoff.authority.signoff import sign_file
    from handoff.policy.order import PolicySet

    text = (POLICY_DIR / "orders" / "2025-12-29.yaml").read_text()
    text = text.replace("version: 1", "version: 2", 1).replace(
        "supersedes: null", f"supersedes: {PolicySet(POLICY_DIR).current().ref}"
    )
    text = text.replace(drop, "")
    for old, new in (extra or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "narrowed.yaml"
    path.write_text(text)
    if signed_by:
        sign_file(path, KEYS.key(signed_by))
    return path


def count_validations(monkeypatch: Any) -> list[int]:
    """Record the rows of every GX validation from now on (0 for an empty frame); each
    still runs for real."""
    from handoff.checks import validate

    seen: list[int] = []
    real = validate.SuiteValidator.validate

    def counting(self: validate.SuiteValidator, table: pa.Table, day: Any) -> validate.ChunkVerdict:
        seen.append(table.num_rows)
        return real(self, table, day)

    monkeypatch.setattr(validate.SuiteValidator, "validate", counting)
    return seen
