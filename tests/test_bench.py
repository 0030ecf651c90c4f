"""The benchmark runs end to end on a small PostgreSQL database (dlt left out for speed)."""

from __future__ import annotations

import contextlib
import io
import os
import sys

import pytest
import sqlalchemy as sa
from support import unavailable

from handoff.config import Settings

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB_NAME = "handoff_bench_test"
DB_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"

KEYS = {
    "rows", "selected_rows", "notes",
    "floor_rows_per_s", "floor_peak_rss_mb", "floor_seconds",
    "dlt_rows_per_s", "dlt_connectorx_rows_per_s", "dlt_pyarrow_rows_per_s",
    "dlt_connectorx_seconds", "dlt_pyarrow_seconds",
    "handoff_rows_per_s", "handoff_peak_rss_mb", "handoff_seconds",
    "ratio_vs_floor", "ratio_vs_dlt", "accounted_rows_per_s", "ratio_vs_accounted",
}  # fmt: skip


def _bench_database() -> str:
    try:
        admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DB_NAME}).scalar()
            if not exists:
                # Another test worker may have made it meanwhile: then it exists, which is all this needs.
                with contextlib.suppress(sa.exc.IntegrityError, sa.exc.ProgrammingError):
                    conn.exec_driver_sql(f'CREATE DATABASE "{DB_NAME}"')
        admin.dispose()
    except sa.exc.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc.orig}")
    return DB_URL


@pytest.mark.postgres
def test_run_bench_small(tmp_path):
    from rich.console import Console

    from handoff_tools.bench import plot, profile_line, render_table, run_bench

    messages: list[str] = []
    result = run_bench(_bench_database(), 20_000, work_dir=tmp_path / "bench", include_dlt=False,
                       progress=messages.append, repeat=2)  # fmt: skip

    assert result.keys() >= KEYS
    assert result["rows"] == 20_000
    assert 0 < result["selected_rows"] < 20_000
    assert result["floor_rows_per_s"] > 0
    assert result["handoff_rows_per_s"] > 0
    assert result["floor_peak_rss_mb"] > 0 and result["handoff_peak_rss_mb"] > 0
    # Same population through both paths.
    assert result["handoff_rows_extracted"] == result["selected_rows"]
    assert not any(" wrote " in n for n in result["notes"]), result["notes"]  # every path wrote the same rows
    # The floor is the faster of its two runs; accounting only adds work to it.
    assert result["floor_seconds"] == min(result["floor_runs_seconds"].values())
    assert result["accounted_rows_per_s"] > 0 and result["bound_rows_per_s"] > 0
    # The bound runs handoff's form of the aggregate (coded, on PostgreSQL), the raw-grouped one beside it.
    assert (result["bound_form"], result["bound_other_form"]) == ("coded (CASE per row)", "raw-grouped")
    assert result["bound_other_rows_per_s"] > 0
    assert result["ratio_vs_bound_other"] == pytest.approx(
        result["handoff_rows_per_s"] / result["bound_other_rows_per_s"]
    )
    assert result["floor_unsorted_rows_per_s"] > 0
    assert result["ratio_vs_bound"] == pytest.approx(result["handoff_rows_per_s"] / result["bound_rows_per_s"])
    # Where GX ran is reported; any worker processes' memory counts in the peak.
    assert result["handoff_checked_in"] in ("this process", "1 worker process", "2 worker processes")
    assert result["handoff_peak_rss_mb"] >= result["handoff_tree_peak_pss_mb"] > 0
    assert result["ratio_vs_floor"] == pytest.approx(result["handoff_rows_per_s"] / result["floor_rows_per_s"])
    assert result["dlt_rows_per_s"] is None and result["ratio_vs_dlt"] is None
    assert any("dlt skipped" in n for n in result["notes"])
    assert messages
    # The bound's tries alternate with handoff's (a machine whose speed wanders slows both alike): the
    # fastest of each counts, and each try's ratio is its own bound's seconds over its own handoff's.
    bound = "coded (CASE per row) accounting + unsorted export + client sort"
    order = [m.split(":")[0] for m in messages if m.startswith((bound, "handoff try"))]
    assert order == [bound, "handoff try 1", bound, "handoff try 2"]
    assert round(result["bound_seconds"], 3) == min(result["bound_tries"])
    assert round(result["handoff_seconds"], 3) == min(result["handoff_tries"])
    assert result["ratio_vs_bound_tries"] == [
        round(b / h, 3) for b, h in zip(result["bound_tries"], result["handoff_tries"], strict=True)
    ]
    assert len(result["ratio_vs_bound_tries"]) == 2

    console = Console(record=True, width=120)
    console.print(render_table(result))
    text = console.export_text()
    assert "floor" in text and "exclusion accounting (CASE per row)" in text and "handoff" in text
    assert "floor, unsorted" in text and "SQL-level bound: coded (CASE per row) accounting" in text
    assert "the same with raw-grouped accounting" in text
    assert "÷ the bound try by try" in text

    profile = profile_line(result)
    assert "check workers" in profile and "extract_validate_stage" in profile
    steps = result["handoff_step_cpu_seconds"]  # each step's own CPU, whichever thread ran it
    assert steps["gx_validate"] > 0 and steps["row_quarantine"] > 0 and steps["source_read"] > 0
    assert "CPU by step: " in profile and "gx_validate" in profile
    spans = result["handoff_step_spans"]  # when each step first started and last ended
    assert 0 <= spans["source_read"][0] < spans["source_read"][1] <= spans["deliver"][1]
    assert spans["deliver"][1] <= result["handoff_seconds"] + 5e-4  # spans are rounded to the millisecond
    assert spans["exclusion_counts"][1] < spans["record"][0]  # the batch is recorded once the counts are in
    assert "timeline (first start–last end, s): " in profile
    if os.path.exists("/proc/self/schedstat"):  # Linux: how long each step waited for a core
        waits = result["handoff_step_wait_seconds"]
        assert {"gx_validate", "row_quarantine", "source_read", "deliver"} <= set(waits)
        assert all(v >= 0 for v in waits.values())
    assert result["handoff_check_rows"] == Settings.model_fields["check_rows"].default  # the default, reported
    # --repeat 2: every SQL-level path and handoff ran twice, each try delivered, the fastest counts.
    for path in ("floor_unsorted", "bound", "handoff"):
        tries = result[f"{path}_tries"]
        assert len(tries) == 2 and result[f"{path}_seconds"] == pytest.approx(min(tries), abs=1e-3)
    assert result["handoff_status"] == "delivered"
    assert result["handoff_cpu_seconds"]["handoff_process_cpu_s"] > 0

    png = plot([result], tmp_path / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.postgres
def test_the_whole_process_bench_times_each_path_as_its_own_process(tmp_path):
    """`bench --processes`: ConnectorX and handoff's transfer, approve and release, each a real process that
    ran to its end (the transfer read what ConnectorX exported, the release delivered), with the fixed costs."""
    from handoff_tools.bench_processes import FIXED_ROWS, fixed_line, render, run_processes, timed

    _bench_database()
    messages: list[str] = []
    result = run_processes(DB_URL.rsplit("_", 1)[0] + "_proc", [], tmp_path / "bp", repeat=1, progress=messages.append)
    [r] = result["sizes"]
    assert r["rows"] == FIXED_ROWS and r["selected"] > 0 and result["repeat"] == 1
    for path in ("connectorx", "transfer", "transfer_processes", "approve", "release", "status", "help"):
        assert r[path]["seconds"] > 0 and r[path]["peak_rss_mb"] > 20, path  # an interpreter's worth at least
    assert r["transfer_release_seconds"] == pytest.approx(r["transfer"]["seconds"] + r["release"]["seconds"])
    ratio = r["connectorx"]["seconds"] / r["transfer_release_seconds"]
    assert r["connectorx_over_handoff"] == pytest.approx(ratio, abs=1e-3)  # as printed: three decimals
    assert "5,000" in fixed_line(result) and "`handoff status`" in fixed_line(result)
    # One try: its ratios are the medians' ratios (up to their rounding), and there is no range to print.
    assert r["status_over_connectorx_tries"] == [
        pytest.approx(r["status"]["seconds"] / r["connectorx"]["seconds"], rel=0.01)
    ]
    # Both rounded to three decimals (the headline from seconds rounded first): 0.088 beside 0.089 is one try.
    assert r["connectorx_over_handoff_tries"] == [pytest.approx(r["connectorx_over_handoff"], abs=1.5e-3)]
    assert "try by try" not in fixed_line(result)
    assert render(result).row_count == 1
    assert any("ConnectorX" in m for m in messages)
    # A process's own peak memory, not the parent's: a child that allocates 200 MB says so.
    grown = timed([sys.executable, "-c", "b = bytearray(200 * 1024 * 1024); print(len(b))"], dict(os.environ), tmp_path)
    small = timed([sys.executable, "-c", "print(1)"], dict(os.environ), tmp_path)
    assert grown.peak_rss_mb > small.peak_rss_mb + 150 and grown.stdout.strip() == str(200 * 1024 * 1024)
    with pytest.raises(RuntimeError, match="exited 3"):
        timed([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ), tmp_path)


@pytest.mark.postgres
def test_the_whole_process_bench_measures_the_advised_index_and_leaves_the_source_as_it_was(tmp_path):
    """`bench --processes --source-index`: each size again with `source advise`'s DDL applied, then dropped."""
    import sqlalchemy as sa

    from handoff_tools.bench_processes import render, run_processes
    from handoff_tools.bench_report import plot_processes

    _bench_database()
    base = DB_URL.rsplit("_", 1)[0] + "_procidx"  # its own databases: the other whole-process test may run beside it
    result = run_processes(base, [6000], tmp_path / "bp", repeat=1, source_index=True)
    fixed, sized = result["sizes"]
    assert "indexed" not in fixed, "the 5,000-row fixed-cost line is measured without the index"
    x = sized["indexed"]
    assert x["index"].startswith("handoff_population_") and x["index_mb"] >= 0 and x["build_seconds"] >= 0
    for path in ("connectorx", "transfer", "approve", "release"):
        assert x[path]["seconds"] > 0, path
    assert x["connectorx_over_handoff"] == pytest.approx(
        x["connectorx"]["seconds"] / (x["transfer"]["seconds"] + x["release"]["seconds"]), abs=1e-3
    )
    assert render(result).row_count == 3
    png = plot_processes(result, tmp_path / "processes.png")  # `bench --processes --chart`
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    engine = sa.create_engine(f"{base}_6000")
    with engine.connect() as conn:
        left = conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'enrollees'").scalars().all()
        stats = conn.exec_driver_sql("SELECT count(*) FROM pg_statistic_ext").scalar()
    engine.dispose()
    assert x["index"] not in left and stats == 0, "the bench must leave the source as it found it"


def test_the_whole_process_bench_times_handoff_as_installed_with_its_bytecode_compiled(tmp_path):
    """A wheel install has every module's bytecode; the bench compiles a checkout's the same way first,
    so no timed process pays for compiling handoff (under PYTHONDONTWRITEBYTECODE it would, every time)."""
    import importlib.util
    import pathlib
    import shutil

    import handoff
    from handoff_tools.bench_processes import compiled

    package = pathlib.Path(handoff.__file__).parent
    module = package / "checks" / "server.py"
    cache = pathlib.Path(importlib.util.cache_from_source(str(module)))
    shutil.rmtree(cache.parent, ignore_errors=True)  # as in a fresh checkout under PYTHONDONTWRITEBYTECODE
    assert compiled() == sum(1 for _ in package.rglob("*.py"))
    assert cache.is_file() and cache.stat().st_mtime >= module.stat().st_mtime


def test_the_whole_process_bench_runs_connectorx_with_the_users_blas_threads(monkeypatch):
    """Importing handoff sets one OpenBLAS thread for handoff's own processes; ConnectorX's process gets the
    environment as the user gave it: without that default, or with the user's own setting."""
    import handoff
    from handoff_tools.bench_processes import without_handoff_defaults

    env = {"PATH": "/usr/bin", "OPENBLAS_NUM_THREADS": "1"}
    monkeypatch.setattr(handoff, "BLAS_THREADS_DEFAULTED", True)
    assert without_handoff_defaults(env) == {"PATH": "/usr/bin"}
    monkeypatch.setattr(handoff, "BLAS_THREADS_DEFAULTED", False)  # the user had set it: it stays
    assert without_handoff_defaults(env) == env


def test_the_bench_settles_the_source_with_a_checkpoint_where_it_may(pg_database):
    """After seeding (or building the index) the bench asks PostgreSQL for a CHECKPOINT, so the first
    measured try does not share the machine with the checkpointer; a role that may not is left as it is."""
    import uuid

    from handoff_tools.bench_source import settle

    engine = sa.create_engine(pg_database)
    role = f"handoff_bench_{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT checkpoints_req FROM pg_stat_bgwriter").scalar()
    assert settle(engine) is True
    with engine.connect() as conn:
        after = conn.exec_driver_sql("SELECT checkpoints_req FROM pg_stat_bgwriter").scalar()
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    assert after > before
    plain = sa.create_engine(sa.engine.make_url(pg_database).set(username=role))
    try:
        assert settle(plain) is False
    finally:
        plain.dispose()
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        engine.dispose()


def test_the_whole_process_bench_shows_each_paths_spread_and_the_ratio_try_by_try():
    """On a machine whose speed wanders, the table shows each path's fastest and slowest try, and the ratio
    computed within each try (its ConnectorX beside its own transfer and release), not from the extremes."""
    from handoff_tools.bench_processes import Timed, add_ratios, fixed_line, median, render

    def tried(*seconds: float) -> list[Timed]:
        return [Timed(s, 100.0, "") for s in seconds]

    runs = {"connectorx": tried(0.20, 0.30, 0.25), "transfer": tried(1.50, 1.40, 2.00),
            "approve": tried(0.5, 0.6, 0.7), "release": tried(0.80, 0.90, 1.00),
            "status": tried(0.40, 0.45, 0.41), "help": tried(0.3, 0.3, 0.3)}  # fmt: skip
    out = {"rows": 5000, "selected": 134, **{k: median(v) for k, v in runs.items()}}
    add_ratios(out, runs)
    assert out["transfer"] == {"seconds": 1.5, "min_seconds": 1.4, "max_seconds": 2.0, "peak_rss_mb": 100.0}
    assert out["connectorx_over_handoff"] == pytest.approx(0.25 / (1.5 + 0.9), abs=1e-3)  # the medians' ratio
    # Try by try: 0.20 / 2.30, 0.30 / 2.30, 0.25 / 3.00.
    assert out["connectorx_over_handoff_tries"] == [0.087, 0.13, 0.083]

    table = _text(render({"repeat": 3, "cpus": 2, "sizes": [out]}))
    assert "1.50 (1.40–2.00)" in table and "0.10x (0.08–0.13)" in table and "fastest and slowest" in table

    out.update(transfer_processes=median(tried(1.6, 1.7, 1.8)), status_over_connectorx=1.64, handoff_over_connectorx=9.6,
               status_over_connectorx_tries=[2.0, 1.5, 1.64], handoff_over_connectorx_tries=[11.5, 7.67, 12.0])  # fmt: skip
    assert "try by try 1.5x–2.0x" in fixed_line({"sizes": [out]}) and "try by try 7.7x–12.0x" in fixed_line(
        {"sizes": [out]}
    )

    one = {**out, **{k: median(v[:1]) for k, v in runs.items()}}
    add_ratios(one, {k: v[:1] for k, v in runs.items()})
    single = _text(render({"repeat": 1, "cpus": 2, "sizes": [one]}))
    assert "0.09x" in single and "–" not in single, "one try: no range to show"


def test_the_profile_names_the_steps_that_waited_for_a_core_longest_first():
    """A step starved by the database shows in the profile line; a wait too short to matter, and the
    phases that only contain other steps, do not."""
    from handoff_tools.bench_report import profile_line

    result = {"rows": 16_000_000, "handoff_seconds": 7.1, "handoff_phase_seconds": {"record": 0.04},
              "handoff_step_cpu_seconds": {"gx_validate": 0.85},
              "handoff_step_wait_seconds": {"source_read": 0.21, "gx_validate": 1.69, "record": 0.001,
                                            "extract_validate_stage": 3.0, "merge_encode_hash_write": 0.4}}  # fmt: skip
    line = profile_line(result)
    assert "; waited for a core: gx_validate 1.69 s, source_read 0.21 s" in line
    assert "record 0.00" not in line and "extract_validate_stage 3.00" not in line and "0.40" not in line
    result["handoff_step_wait_seconds"] = {"gx_validate": 0.001}
    assert "waited for a core" not in profile_line(result)
    del result["handoff_step_wait_seconds"]  # a JSON from before the field, or a system without schedstat
    assert "waited for a core" not in profile_line(result)


def _text(table: object) -> str:
    from rich.console import Console

    console = Console(record=True, width=400, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_the_tree_probe_reads_memory_only_while_there_are_descendants() -> None:
    """Alone, the measured process's peak is its VmHWM (reading PSS walks every mapping, CPU the other
    paths never pay); a descendant's memory (a check worker's) counts in the peak while it lives."""
    import subprocess
    import time

    from handoff_tools.bench_children import _peak_rss_mb, _TreeWatch

    with _TreeWatch(interval=0.05) as alone:
        time.sleep(0.2)
    assert not alone.shared and alone.peak_mb == pytest.approx(_peak_rss_mb(), rel=0.01)

    child = "b = bytearray(300 * 2**20); import time; time.sleep(1.0)"  # 300 MB, touched
    with _TreeWatch(interval=0.05) as tree:
        proc = subprocess.Popen([sys.executable, "-c", child])
        proc.wait(timeout=30)
    assert tree.shared and tree.peak_mb >= 300
    assert tree.profile()["check_workers_cpu_s"] > 0
