"""`handoff policy whatif`: who the order would disclose, per state, before anything moves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import sqlalchemy as sa
from support import cli_env, run_cli

from handoff.policy.population import INCLUDED
from handoff.policy.source_model import STATES


def _snapshot(url: str) -> dict[str, object]:
    """Tables, row counts and (for SQLite) the file's bytes: anything a write would change."""
    engine = sa.create_engine(url)
    insp = sa.inspect(engine)
    tables = sorted(insp.get_table_names())
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar() for t in tables}
    engine.dispose()
    snap: dict[str, object] = {"tables": tables, "counts": counts}
    if url.startswith("sqlite:///"):
        snap["sha256"] = hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()
    return snap


def _per_state(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT submtg_state_cd, count(*) FROM enrollees "
            "WHERE ctznshp_ind = '0' AND imgrtn_stus_cd = '3' AND imgrtn_vrfctn_ind = '1' "
            "AND imgrtn_stus_5_yr_bar_end_dt IS NULL GROUP BY submtg_state_cd"
        )).all()  # fmt: skip
    engine.dispose()
    return {STATES[f]: n for f, n in rows}


def test_whatif_counts_per_state_and_matches_a_transfer(staged, tmp_path: Path) -> None:
    _, batch, url = staged
    home = tmp_path / "whatif-home"
    before = _snapshot(url)

    res = run_cli("policy", "whatif", "--db", url, "--json", env=cli_env(home), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)

    assert doc["order_ref"] == batch.order_ref
    assert doc["disclosed"] == batch.rows_staged + batch.rows_quarantined
    assert doc["disclosed"] == doc["totals"][INCLUDED]
    disclosed_by_state = {st: r[INCLUDED] for st, r in doc["by_jurisdiction"].items() if r.get(INCLUDED)}
    assert disclosed_by_state == _per_state(url)
    assert set(doc["by_jurisdiction"]) == set(STATES.values())
    for reason in doc["totals"]:
        assert reason in doc["reasons"], f"reason {reason} has no explanation"

    # Nothing was written: not in the source, not in HANDOFF_HOME.
    assert _snapshot(url) == before
    assert not (home / "state.db").exists()
    assert not (home / "staging").exists()


def test_whatif_limited_to_states(source_url: str, tmp_path: Path) -> None:
    res = run_cli("policy", "whatif", "--db", source_url, "--state", "CA", "--state", "48", "--json",
                  env=cli_env(tmp_path / "h"), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc["by_jurisdiction"]) == {"CA", "TX"}
    expected = _per_state(source_url)
    assert doc["disclosed"] == expected.get("CA", 0) + expected.get("TX", 0)


def test_whatif_human_table_marks_plaintiff_states_and_explains_reasons(sqlite_source_url: str, tmp_path: Path) -> None:
    res = run_cli("policy", "whatif", "--db", sqlite_source_url, env=cli_env(tmp_path / "h"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = {line.split()[1]: line for line in res.stdout.splitlines() if line.startswith("│ ")}
    assert "yes" in rows["CA"] and "yes" not in rows["TX"]
    assert "citizen_or_national: citizenship indicator is not 0" in res.stdout


def test_whatif_table_headers_survive_a_pipe(sqlite_source_url: str, tmp_path: Path) -> None:
    res = run_cli("policy", "whatif", "--db", sqlite_source_url, env=cli_env(tmp_path / "h"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    header = next(line for line in res.stdout.splitlines() if "state" in line)
    for name in ("plaintiff", "disclosed", "citizen_or_national", "lawful_status_category"):
        assert name in header


def _rows_per_state(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT submtg_state_cd, count(*) FROM enrollees GROUP BY submtg_state_cd")).all()
    engine.dispose()
    return {STATES.get(f or "", "??"): n for f, n in rows}


def test_exclusion_counts_name_out_of_scope_states_only_when_one_is_requested(source_url: str) -> None:
    """Asking for an in-scope state skips the jurisdiction tests; asking for an excluded one keeps them."""
    from support import POLICY_DIR

    from handoff.extract import reader as extract
    from handoff.policy.order import PolicySet

    order = PolicySet(POLICY_DIR).current()
    tx_out = order.model_copy(
        update={"jurisdiction_scope": order.jurisdiction_scope.model_copy(update={"overrides": {"TX": "excluded"}})}
    )
    per_state, included = _rows_per_state(source_url), _per_state(source_url)
    engine = extract.open_source(source_url)
    try:
        table = extract.source_table(engine, order)
        case_form = extract.counts_statement(table, order, ["06"], form="case")
        assert "NOT IN" not in str(case_form.statement.compile(dialect=engine.dialect)).upper()
        in_scope = extract.counts_statement(table, order, ["06"], raw=extract.exact_text_columns(engine, order))
        with engine.connect() as conn:
            ca = extract.read_counts(conn, in_scope)[0]
            mixed = extract.read_counts(conn, extract.counts_statement(table, tx_out, ["06", "48"]))[0]
    finally:
        engine.dispose()

    assert set(ca) == {"CA"}
    assert sum(ca["CA"].values()) == per_state["CA"]
    assert ca["CA"].get(INCLUDED, 0) == included.get("CA", 0)
    assert mixed["TX"] == {"out_of_scope": per_state["TX"]}
    assert mixed["CA"] == ca["CA"]
