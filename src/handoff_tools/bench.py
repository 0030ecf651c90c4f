"""Throughput benchmark: this project's extract path against a raw floor and dlt.

Seeds synthetic enrollees into PostgreSQL, then measures the ways of getting the order's
population out to Parquet, each in its own child process so peak RSS belongs to one path:

* **floor**: the extractor's SQL (projection, WHERE) with ``ORDER BY`` id, the earlier design's
  floor, through ADBC, streamed record batches into a zstd ``ParquetWriter`` (ConnectorX if
  ADBC is not installed), run with the server's defaults and with JIT off; the faster run counts;
* **unsorted floor**: the same without ``ORDER BY``, the SQL handoff runs now (it puts rows in
  id order itself, in bounded memory: ``sortmerge``);
* **floor + accounting**: the sorted floor's export while the per-row CASE exclusion aggregate
  runs on the same exported snapshot: the earlier design's least compliant export;
* **SQL-level bound**: handoff's exclusion aggregate (``extract.counts_form``: on PostgreSQL,
  "coded", a CASE per row over the list conditions) on one snapshot with the unsorted export,
  whose rows are then sorted client-side in Arrow: everything the database and Arrow must do
  for this design and nothing else, so the gap between it and handoff is what row quarantine,
  validation, hashing, upload, ledger and lineage cost; and the same with the aggregate grouped
  on the conditions' raw columns, side by side (``extract.counts_statement`` says why);
* **dlt**: ``sql_table`` with the ``connectorx`` and ``pyarrow`` backends, the order's columns
  only and the same WHERE, to filesystem Parquet (optional: skipped when dlt is missing);
* **handoff**: ``pipeline.stage_batch`` (plan, exclusion counts, extract, row quarantine,
  GX validation, staging, state record).

Rows per second are computed over the *source rows scanned* (the rows seeded) for every
path, so the ratios compare like with like. Seconds are wall clock around the work inside
the child, after its imports; the child's whole lifetime is reported as ``*_process_seconds``.
Peak RSS is the child's own high-water mark (``VmHWM``; see ``_peak_rss_mb`` for why not
``ru_maxrss``). It includes the interpreter and imports; ``*_base_rss_mb`` is the peak after
imports, before any work. handoff checks chunks in worker processes, so its figure is the peak
of the whole process tree's proportional set size (PSS: pages shared with the fork server are
split between the processes that share them), sampled every 0.1 s.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from handoff_tools.bench_children import DLT_BACKENDS, SOURCE_TABLE, _rate, _ratio
from handoff_tools.bench_report import plot, profile_line, render_table, scaling_line
from handoff_tools.bench_source import ensure_database, ensure_seeded, statements

__all__ = ["run_bench", "render_table", "profile_line", "scaling_line", "plot", "ChildFailed"]

if TYPE_CHECKING:
    from handoff.policy.order import Order

Progress = Callable[[str], None]


# ----- parent ------------------------------------------------------------------------------------
class ChildFailed(RuntimeError):
    pass


def _run_child(kind: str, name: str, spec: dict[str, Any], work_dir: pathlib.Path) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; return its JSON (with its peak RSS) and wall time."""
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "result": str(logs / f"{name}.result.json")}
    pathlib.Path(spec["result"]).unlink(missing_ok=True)
    spec_path = logs / f"{name}.spec.json"
    # The spec holds the database URL: keep it off the command line and private to us.
    fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RUNTIME__DLTHUB_TELEMETRY": "false"}
    cmd = [sys.executable, "-m", "handoff_tools.bench_children", "_child", kind, str(spec_path)]
    with open(logs / f"{name}.stdout", "wb") as out, open(logs / f"{name}.stderr", "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, check=False)
        elapsed = time.perf_counter() - t0
    result_file = pathlib.Path(spec["result"])
    if proc.returncode != 0 or not result_file.is_file():
        tail = (logs / f"{name}.stderr").read_text(errors="replace").strip().splitlines()[-15:]
        raise ChildFailed(f"{name} exited with {proc.returncode}:\n" + "\n".join(tail))
    result = json.loads(result_file.read_text())
    result["process_seconds"] = elapsed
    return result


def run_bench(
    db_url: str,
    rows: int,
    *,
    seed: int = 42,
    work_dir: pathlib.Path,
    include_dlt: bool = True,
    progress: Callable[[str], None] | None = None,
    repeat: int = 1,
) -> dict:
    """Seed ``rows`` enrollees (if needed) and measure floor, dlt and handoff; see the module doc.

    ``repeat``: run the SQL-level paths and handoff that many times each and keep the fastest
    (dlt runs once), for machines whose speed wanders from run to run.
    """
    from handoff.config import load_settings
    from handoff.extract.snapshot import libpq_uri
    from handoff.policy.order import PolicySet

    say = progress or (lambda _msg: None)
    work_dir = pathlib.Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    engine = sa.create_engine(db_url)
    if engine.dialect.name != "postgresql":
        from handoff.errors import SourceError

        raise SourceError(f"the benchmark needs PostgreSQL, not {engine.dialect.name}")
    ensure_database(engine.url)
    t0 = time.perf_counter()
    seeded = ensure_seeded(engine, rows, seed, say)
    seed_seconds = time.perf_counter() - t0
    if not seeded:
        say(f"reusing {rows:,} seeded rows (seed {seed})")

    # The bench gets its own throwaway home and SQLite state database, never the operator's (an
    # inherited HANDOFF_STATE_URL must not receive bench batches), fresh each run.
    home = work_dir / "home"
    shutil.rmtree(home, ignore_errors=True)
    state_url = f"sqlite:///{(home / 'state.db').resolve()}"
    settings = load_settings(home=home, state_url=state_url)
    order = PolicySet(settings.policy_dir).current()
    sqls = statements(engine, order)
    with engine.connect() as conn:  # warm the cache the same way for every path
        conn.exec_driver_sql(f'SELECT count(*) FROM "{SOURCE_TABLE}"').scalar()
    engine.dispose()

    out_dir = work_dir / "out"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    ctx = _Ctx(work_dir, out_dir, say, notes, libpq_uri(engine.url), sqls, repeat=max(1, repeat))
    if ctx.repeat > 1:
        notes.append(f"each SQL-level path and handoff ran {ctx.repeat} times; the fastest counts (tries in *_tries).")

    runs = _measure_sql(ctx, order.source.id_column)
    dlt_runs: dict[str, dict[str, Any] | None] = {b: None for b in DLT_BACKENDS}
    if include_dlt:
        dlt_runs = _measure_dlt(ctx, db_url, order)
    else:
        notes.append("dlt skipped (include_dlt=False).")
    hand, runs["bound"] = _measure_handoff(ctx, db_url, home, state_url)
    runs["handoff"] = hand
    result = _summary(rows, ctx.selected, runs, dlt_runs, notes)
    result.update(bound_form=sqls["form"], bound_other_form=sqls["other_form"])  # the aggregates the bounds ran
    result.update(seed=seed, seeded=seeded, seed_seconds=seed_seconds if seeded else None, repeat=ctx.repeat)
    for name, run in runs.items():
        if run is not None:
            result[f"{name}_tries"] = run.get("tries", [run["seconds"]])
    result["ratio_vs_bound_tries"] = hand.get("bound_ratios", [])
    return result


@dataclasses.dataclass
class _Ctx:
    """What every measurement of one ``run_bench`` shares."""

    work_dir: pathlib.Path
    out_dir: pathlib.Path
    say: Callable[[str], None]
    notes: list[str]
    pg_uri: str
    sqls: dict[str, str]
    selected: int = 0  # rows the floor wrote, which every other path must match
    repeat: int = 1  # runs per path; the fastest counts (``_fastest``)
    bound: tuple[str, dict[str, Any]] | None = None  # the bound's label and spec: its tries alternate with handoff's


def _try_child(ctx: _Ctx, kind: str, name: str, spec: dict[str, Any], _try: int) -> dict[str, Any]:
    return _run_child(kind, name, spec, ctx.work_dir)


def _fastest(ctx: _Ctx, run: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """``run(i)`` for each of ``ctx.repeat`` tries; the fastest result, with every try's seconds in ``tries``."""
    results = [run(i) for i in range(ctx.repeat)]
    best = min(results, key=lambda r: float(r["seconds"]))
    return {**best, "tries": [round(float(r["seconds"]), 3) for r in results]}


def _measure_sql(ctx: _Ctx, id_column: str) -> dict[str, dict[str, Any] | None]:
    """The floors (sorted, unsorted), the earlier design's accounting and this design's SQL-level
    bound, with handoff's form of the aggregate and with the other form."""
    import sqlalchemy as sa

    from handoff.config import load_settings
    from handoff.extract.parallel import scan_workers
    from handoff.extract.snapshot import NO_JIT, session_setup

    # The accounted paths and the bound run what handoff's source sessions run first: JIT off and the
    # parallel workers per scan handoff would ask for here (``extract.parallel``).
    session = session_setup(scan_workers(load_settings().source_parallel, sa.engine.make_url(ctx.pg_uri)))

    # (a) the floors: sorted by the server (the earlier design) and unsorted (this one)
    floors = {}
    for name, label, the_sql in (
        ("floor", "sorted", ctx.sqls["sorted_sql"]),
        ("floor_unsorted", "unsorted", ctx.sqls["sql"]),
    ):
        ctx.say(f"floor ({label}): extractor SQL through ADBC → Parquet")
        spec: dict[str, Any] = {"pg_url": ctx.pg_uri, "sql": the_sql, "no_jit": NO_JIT,
                                "out": str(ctx.out_dir / f"{name}.parquet")}  # fmt: skip
        floors[name] = _fastest(ctx, functools.partial(_try_child, ctx, "floor", name, spec))
    floor, floor_unsorted = floors["floor"], floors["floor_unsorted"]
    if floor["engine"] != "adbc":
        ctx.notes.append("ADBC is not installed: the floor used ConnectorX (arrow_stream).")
    selected = ctx.selected = int(floor["rows_out"])
    ctx.say(f"floor: {floor['seconds']:.2f} s sorted, {floor_unsorted['seconds']:.2f} s unsorted, {selected:,} rows")

    # (a') the exclusion accounting the order requires, on the export's snapshot: the earlier
    # design (CASE per row, sorted export) and the SQL-level bound of this one (handoff's
    # aggregate, unsorted export, sorted in Arrow), and that bound with the other form of the aggregate.
    runs: dict[str, dict[str, Any] | None] = {"floor": floor, "floor_unsorted": floor_unsorted, "accounted": None,
                                              "bound": None, "bound_other": None}  # fmt: skip
    if floor["engine"] == "adbc":
        for name, label, counts_sql, the_sql, key in (
            ("accounted", "sorted floor + CASE accounting", ctx.sqls["case_sql"], ctx.sqls["sorted_sql"], None),
            ("bound", f"{ctx.sqls['form']} accounting + unsorted export + client sort", ctx.sqls["counts_sql"],
             ctx.sqls["sql"], id_column),
            ("bound_other", f"{ctx.sqls['other_form']} accounting + unsorted export + client sort",
             ctx.sqls["other_sql"], ctx.sqls["sql"], id_column),
        ):  # fmt: skip
            spec = {"pg_url": ctx.pg_uri, "sql": the_sql, "session": session,
                    "counts_sql": counts_sql, "sort_key": key, "out": str(ctx.out_dir / f"{name}.parquet")}  # fmt: skip
            if name == "bound":  # measured try by try beside handoff (``_measure_handoff``)
                ctx.bound = (label, spec)
                continue
            ctx.say(f"{label}: one snapshot")
            run = runs[name] = _fastest(ctx, functools.partial(_try_child, ctx, "accounted", name, spec))
            if run["rows_out"] != selected:
                ctx.notes.append(f"{label} wrote {run['rows_out']:,} rows, the floor {selected:,}.")
            ctx.say(f"{label}: {run['seconds']:.2f} s")
        ctx.notes.append(
            "floor = the faster of the extractor's SQL with the server's defaults and with JIT off "
            f"({', '.join(f'{k} {v:.2f} s' for k, v in floor['runs'].items())}); the accounting rows add "
            "only the exclusion aggregate on the same snapshot, the second full scan the order's "
            "accounting requires; the SQL-level bound is that for this design, with the rows sorted "
            f"in Arrow, and nothing else (handoff's aggregate, {ctx.sqls['form']}; beside it the "
            f"{ctx.sqls['other_form']} one). Both run handoff's session settings: {'; '.join(session)}."
        )

    return runs


def _measure_dlt(ctx: _Ctx, db_url: str, order: Order) -> dict[str, dict[str, Any] | None]:
    """dlt's ``sql_table`` with each backend, the order's columns and filter; None where it did not run."""
    dlt_runs: dict[str, dict[str, Any] | None] = {b: None for b in DLT_BACKENDS}
    missing = [m for m in ("dlt", "sqlalchemy") if importlib.util.find_spec(m) is None]
    if missing:
        ctx.notes.append(f"dlt skipped: {', '.join(missing)} not installed.")
    else:
        for backend in DLT_BACKENDS:
            ctx.say(f"dlt: sql_table backend={backend} → filesystem Parquet")
            pipelines_dir = ctx.work_dir / f"dlt-pipelines-{backend}"
            shutil.rmtree(pipelines_dir, ignore_errors=True)
            spec = {
                "db_url": db_url,
                "backend": backend,
                "table": order.source.table,
                "columns": list(order.columns),
                "where_sql": ctx.sqls["where_sql"],
                "order_sql": ctx.sqls["order_sql"],
                "out": str(ctx.out_dir / f"dlt-{backend}"),
                "pipelines_dir": str(pipelines_dir),
            }
            try:
                run = _run_child("dlt", f"dlt-{backend}", spec, ctx.work_dir)
            except ChildFailed as exc:
                ctx.notes.append(f"dlt backend {backend} failed: {str(exc).splitlines()[-1]}")
                continue
            dlt_runs[backend] = run
            if run["rows_out"] != ctx.selected:
                ctx.notes.append(f"dlt {backend} wrote {run['rows_out']:,} rows, the floor {ctx.selected:,}.")
            ctx.say(f"dlt {backend}: {run['seconds']:.2f} s")
        ctx.notes.append(
            "dlt ran the extractor's WHERE and ORDER BY (as SQL text via query_adapter_callback) "
            "over included_columns=order columns; Parquet compression set to zstd."
        )

    return dlt_runs


def _measure_handoff(ctx: _Ctx, db_url: str, home: pathlib.Path,
                     state_url: str) -> tuple[dict[str, Any], dict[str, Any] | None]:  # fmt: skip
    """handoff end to end against a local S3 endpoint, and the SQL-level bound: each try runs the
    bound, then handoff, so a machine whose speed wanders over minutes slows both alike; the
    fastest of each counts, and each try's ratio (its bound's seconds over its handoff's) is kept."""
    # (c) this project, end to end: stage, gates, approval, upload to a local S3 endpoint over
    # HTTP (moto's server, SSE-KMS + SHA-256 + HEAD verification), ledger and lineage.
    from handoff_tools import emulator

    ctx.say("handoff: transfer → approve → deliver (local S3 endpoint on loopback)")
    local = emulator.start()

    def once(i: int) -> dict[str, Any]:  # each try its own home, state database and buckets
        home_i = home if i == 0 else home.with_name(f"{home.name}-{i}")
        state_i = state_url if i == 0 else f"sqlite:///{(home_i / 'state.db').resolve()}"
        if i:
            shutil.rmtree(home_i, ignore_errors=True)
            home_i.mkdir(parents=True)
        bucket, audit = ("handoff-bench", "handoff-bench-audit") if i == 0 else (f"handoff-bench-{i}",
                                                                                f"handoff-bench-audit-{i}")  # fmt: skip
        key = emulator.create_bucket(local, bucket)
        emulator.create_bucket(local, audit, object_lock=True)
        spec = {"db_url": db_url, "home": str(home_i), "state_url": state_i, "bucket": bucket, "kms_key_id": key,
                "audit_bucket": audit}  # fmt: skip
        return _run_child("handoff", "handoff", spec, ctx.work_dir)

    bounds: list[dict[str, Any]] = []

    def pair(i: int) -> dict[str, Any]:
        if ctx.bound is not None:
            label, spec = ctx.bound
            bounds.append(_try_child(ctx, "accounted", "bound", spec, i))
            ctx.say(f"{label}: {bounds[-1]['seconds']:.2f} s (one snapshot)")
        hand = once(i)
        ctx.say(f"handoff try {i + 1}: {hand['seconds']:.2f} s")
        return hand

    try:
        hand = _fastest(ctx, pair)
    finally:
        local.stop()
    bound = None
    if bounds:
        bound = {
            **min(bounds, key=lambda r: float(r["seconds"])),
            "tries": [round(float(r["seconds"]), 3) for r in bounds],
        }
        hand["bound_ratios"] = [round(b / h, 3) for b, h in zip(bound["tries"], hand["tries"], strict=True)]
        if bound["rows_out"] != ctx.selected:
            ctx.notes.append(f"the SQL-level bound wrote {bound['rows_out']:,} rows, the floor {ctx.selected:,}.")
    ctx.say(f"handoff: {hand['seconds']:.2f} s, batch {hand['batch_id']} {hand['status']}")
    if hand["rows_out"] != ctx.selected:
        ctx.notes.append(f"handoff extracted {hand['rows_out']:,} rows, the floor {ctx.selected:,}.")
    ctx.notes.append(
        "handoff runs the exclusion aggregate (a second scan, concurrently on PostgreSQL), row "
        "quarantine, GX validation of every row, Parquet, SHA-256, staging, approval, upload with "
        "HEAD verification, ledger and lineage: work the floor does not do."
    )
    ctx.notes.append(
        "rows/s = source rows scanned / seconds of work in the child (library imports excluded for "
        "every path; *_process_seconds include them); peak RSS includes the interpreter and imports."
    )

    return hand, bound


def _summary(rows: int, selected: int, runs: dict[str, dict[str, Any] | None],
             dlt_runs: dict[str, dict[str, Any] | None], notes: list[str]) -> dict[str, Any]:  # fmt: skip
    """The result ``run_bench`` returns: seconds, rows/s, peak RSS and ratios per path."""
    floor, floor_unsorted, hand = runs["floor"], runs["floor_unsorted"], runs["handoff"]
    accounted, bound, other = runs["accounted"], runs["bound"], runs["bound_other"]  # None without ADBC
    assert floor is not None and floor_unsorted is not None and hand is not None

    def secs(run: dict[str, Any] | None) -> float | None:
        return None if run is None else float(run["seconds"])

    floor_rate = _rate(rows, secs(floor))
    bound_rate = _rate(rows, secs(bound))
    hand_rate = _rate(rows, secs(hand))
    dlt_rates = {b: _rate(rows, secs(r)) for b, r in dlt_runs.items()}
    ran = {b: v for b, v in dlt_rates.items() if v is not None}
    dlt_best = max(ran, key=lambda b: ran[b]) if ran else None
    dlt_rate = ran[dlt_best] if dlt_best else None

    result: dict[str, Any] = {
        "rows": rows,
        "selected_rows": selected,
        "floor_engine": floor["engine"],
        "floor_seconds": secs(floor),
        "floor_process_seconds": floor["process_seconds"],
        "floor_rows_per_s": floor_rate,
        "floor_peak_rss_mb": floor["peak_rss_mb"],
        "floor_base_rss_mb": floor["base_rss_mb"],
        "floor_runs_seconds": floor.get("runs", {}),
        "accounted_seconds": secs(accounted),
        "accounted_rows_per_s": _rate(rows, secs(accounted)),
        "accounted_peak_rss_mb": accounted["peak_rss_mb"] if accounted else None,
        "floor_unsorted_seconds": secs(floor_unsorted),
        "floor_unsorted_rows_per_s": _rate(rows, secs(floor_unsorted)),
        "floor_unsorted_peak_rss_mb": floor_unsorted["peak_rss_mb"],
        "bound_seconds": secs(bound),
        "bound_rows_per_s": bound_rate,
        "bound_peak_rss_mb": bound["peak_rss_mb"] if bound else None,
        "bound_other_seconds": secs(other),
        "bound_other_rows_per_s": _rate(rows, secs(other)),
        "bound_other_peak_rss_mb": other["peak_rss_mb"] if other else None,
        "dlt_backend": dlt_best,
        "dlt_rows_per_s": dlt_rate,
        "dlt_seconds": secs(dlt_runs[dlt_best]) if dlt_best else None,
        "dlt_peak_rss_mb": dlt_runs[dlt_best]["peak_rss_mb"] if dlt_best else None,  # type: ignore[index]
        "handoff_seconds": secs(hand),
        "handoff_process_seconds": hand["process_seconds"],
        "handoff_rows_per_s": hand_rate,
        "handoff_peak_rss_mb": hand["peak_rss_mb"],
        "handoff_base_rss_mb": hand["base_rss_mb"],
        "handoff_rows_extracted": hand["rows_out"],
        "handoff_rows_staged": hand["rows_staged"],
        "handoff_rows_quarantined": hand["rows_quarantined"],
        "handoff_status": hand["status"],
        "handoff_phase_seconds": hand.get("phases", {}),
        "handoff_checked_in": hand.get("checked_in"),
        "handoff_check_rows": hand.get("check_rows"),
        "handoff_step_cpu_seconds": hand.get("step_cpu", {}),
        "handoff_step_wait_seconds": hand.get("step_wait", {}),
        "handoff_step_spans": hand.get("spans", {}),
        "handoff_tree_peak_pss_mb": hand.get("tree_peak_pss_mb"),
        "handoff_cpu_seconds": hand.get("cpu", {}),
        "ratio_vs_floor": _ratio(hand_rate, floor_rate),
        "ratio_vs_dlt": _ratio(hand_rate, dlt_rate),
        "ratio_vs_accounted": _ratio(hand_rate, _rate(rows, secs(accounted))),
        "ratio_vs_bound": _ratio(hand_rate, bound_rate),
        "ratio_vs_bound_other": _ratio(hand_rate, _rate(rows, secs(other))),
        "ratio_vs_floor_unsorted": _ratio(hand_rate, _rate(rows, secs(floor_unsorted))),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "notes": notes,
    }
    for backend, dlt_run in dlt_runs.items():
        result[f"dlt_{backend}_rows_per_s"] = dlt_rates[backend]
        result[f"dlt_{backend}_seconds"] = secs(dlt_run)
        result[f"dlt_{backend}_process_seconds"] = None if dlt_run is None else dlt_run["process_seconds"]
        result[f"dlt_{backend}_peak_rss_mb"] = None if dlt_run is None else dlt_run["peak_rss_mb"]
    return result
