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
import datetime as dt
import functools
import importlib.util
import json
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from rich.table import Table

    from handoff.order import Order

MARKER_TABLE = "bench_seed"
SOURCE_TABLE = "enrollees"
DLT_BACKENDS = ("connectorx", "pyarrow")
CHUNK_ROWS = 100_000

Progress = Callable[[str], None]


# ----- helpers shared by parent and children -----------------------------------------------------
def _peak_rss_mb() -> float:
    """This process's peak RSS in MB, counting only memory touched since its ``exec``.

    ``ru_maxrss`` is no good for a child: Linux carries the pre-exec high-water mark (the
    forked copy of the parent) into it, so every child would report at least the parent's
    size. ``VmHWM`` belongs to the process's current address space, which exec replaced.
    Children this process reaped count too (``RUSAGE_CHILDREN``, in KiB on Linux).
    """
    own = None
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024.0
                break
    except OSError:
        pass
    if own is None:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0)


class _TreeWatch:
    """A profile of one child's work: peak PSS (MB) of this process and every descendant (the check
    workers), CPU seconds spent by this process and by its descendants, and the whole machine's busy
    CPU seconds (the rest is the database and the S3 endpoint), sampled in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        import threading

        import psutil

        self.interval, self.peak_mb = interval, 0.0
        self.me = psutil.Process()
        self.cpu: dict[int, float] = {}  # last CPU seconds seen per descendant
        self.cpu0: dict[int, float] = {}  # ... and when first seen, for those already running at the start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-tree-watch", daemon=True)

    @staticmethod
    def _busy() -> float:
        import psutil

        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))

    def sample(self) -> None:
        import psutil

        total = 0
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
                if proc.pid != self.me.pid:
                    c = proc.cpu_times()
                    self.cpu[proc.pid] = c.user + c.system
                    if not self._thread.is_alive() and not self._stop.is_set():  # the sample at the start
                        self.cpu0[proc.pid] = self.cpu[proc.pid]
            except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
                continue
        self.peak_mb = max(self.peak_mb, total / 2**20)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> _TreeWatch:
        c = self.me.cpu_times()
        self._own0, self._busy0 = c.user + c.system, self._busy()
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        c = self.me.cpu_times()
        self.own_cpu = c.user + c.system - self._own0
        self.busy_cpu = self._busy() - self._busy0

    def profile(self) -> dict[str, float]:
        workers = sum(v - self.cpu0.get(pid, 0.0) for pid, v in self.cpu.items())
        return {"handoff_process_cpu_s": self.own_cpu, "check_workers_cpu_s": workers,
                "rest_of_machine_cpu_s": max(0.0, self.busy_cpu - self.own_cpu - workers),
                "cores": float(os.cpu_count() or 1)}  # fmt: skip


def _rate(rows: int, seconds: float | None) -> float | None:
    if seconds is None or seconds <= 0:
        return None
    return rows / seconds


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


# ----- seeding -----------------------------------------------------------------------------------
def ensure_database(url: sa.engine.URL) -> None:
    """Create the benchmark's PostgreSQL database when it does not exist yet."""
    from handoff.errors import SourceError

    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).first()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    except sa.exc.OperationalError as exc:
        raise SourceError(
            f"cannot reach PostgreSQL at {url.render_as_string(hide_password=True)}: {exc.orig}"
        ) from None
    finally:
        admin.dispose()


def _seeded_already(engine: sa.Engine, rows: int, seed: int) -> bool:
    insp = sa.inspect(engine)
    if not (insp.has_table(SOURCE_TABLE) and insp.has_table(MARKER_TABLE)):
        return False
    with engine.connect() as conn:
        marker = conn.exec_driver_sql(f'SELECT seed, "rows" FROM "{MARKER_TABLE}"').all()
        if [tuple(r) for r in marker] != [(seed, rows)]:
            return False
        count = conn.exec_driver_sql(f'SELECT count(*) FROM "{SOURCE_TABLE}"').scalar()
    return count == rows


def ensure_seeded(engine: sa.Engine, rows: int, seed: int, progress: Progress | None = None) -> bool:
    """Seed ``rows`` enrollees unless the marker says this exact (rows, seed) is there. True if seeded."""
    from handoff_tools.seed import seed_database

    if _seeded_already(engine, rows, seed):
        return False
    with engine.begin() as conn:  # no stale marker if seeding is interrupted
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{MARKER_TABLE}"')
    if progress:
        progress(f"seeding {rows:,} rows (seed {seed})")
    seed_database(engine, rows, seed, replace=True)
    with engine.connect() as conn:
        # Set hint bits and the visibility map now, so the first measured scan is not penalised.
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f'VACUUM ANALYZE "{SOURCE_TABLE}"')
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{MARKER_TABLE}" (seed bigint NOT NULL, "rows" bigint NOT NULL, '
                             "seeded_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        conn.exec_driver_sql(f'INSERT INTO "{MARKER_TABLE}" (seed, "rows") VALUES ({int(seed)}, {int(rows)})')
    return True


# ----- children ----------------------------------------------------------------------------------
def _adbc_export(uri: str, sql: str, out: pathlib.Path, setup: list[str], sort_key: str | None = None) -> int:
    """Run ``sql`` through ADBC after ``setup`` statements, streaming into a zstd Parquet file
    (with ``sort_key``: every row read first, sorted by that column in Arrow, then written)."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    with adbc.connect(uri) as conn, conn.cursor() as cur:
        for statement in setup:
            cur.execute(statement)
        cur.execute(sql)
        reader = cur.fetch_record_batch()
        if sort_key:
            table = pa.Table.from_batches(list(reader), schema=reader.schema).sort_by(sort_key)
            pq.write_table(table, out, compression="zstd", row_group_size=CHUNK_ROWS)
            return table.num_rows
        with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def _child_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """The raw floor: the extractor's SQL straight to Parquet, with the server's defaults and with
    JIT off (the session setting handoff uses); the faster of the two is the floor."""
    import pyarrow.parquet as pq

    out = pathlib.Path(spec["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    uri, sql = spec["pg_url"], spec["sql"]
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401

        engine_name = "adbc"
    except ImportError:
        import connectorx as cx

        engine_name = "connectorx"
    base = _peak_rss_mb()
    runs: dict[str, float] = {}
    rows = 0
    if engine_name == "adbc":
        for label, setup in (("default", []), ("jit_off", [spec["no_jit"]])):  # ADBC opens the transaction
            t0 = time.perf_counter()
            rows = _adbc_export(uri, sql, out, setup)
            runs[label] = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        reader = cx.read_sql(uri, sql, return_type="arrow_stream", batch_size=CHUNK_ROWS)
        with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        runs["default"] = time.perf_counter() - t0
    return {"engine": engine_name, "rows_out": rows, "seconds": min(runs.values()), "runs": runs,
            "base_rss_mb": base, "bytes_out": out.stat().st_size}  # fmt: skip


def _child_accounted(spec: dict[str, Any]) -> dict[str, Any]:
    """An export plus the order's exclusion accounting, nothing else: the SQL to Parquet through
    ADBC while the exclusion aggregate runs on the same exported snapshot (the work issue 2
    requires of any compliant export), JIT off, the rows sorted client-side when ``sort_key`` is
    given. No validation, hashing or upload."""
    import threading

    import psycopg

    out = pathlib.Path(spec["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    base = _peak_rss_mb()
    t0 = time.perf_counter()
    with psycopg.connect(spec["pg_url"]) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(spec["no_jit"])
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        snapshot = str(row[0])
        counted: list[int | BaseException] = []

        def count() -> None:
            try:
                counted.append(len(conn.execute(spec["counts_sql"]).fetchall()))
            except BaseException as exc:  # noqa: BLE001 - raised below, in the child's main thread
                counted.append(exc)

        counter = threading.Thread(target=count, daemon=True)
        counter.start()
        setup = [
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            f"SET TRANSACTION SNAPSHOT '{snapshot}'",
            spec["no_jit"],
        ]
        rows = _adbc_export(spec["pg_url"], spec["sql"], out, setup, spec.get("sort_key"))
        counter.join()
        conn.rollback()
    seconds = time.perf_counter() - t0
    if isinstance(counted[0], BaseException):
        raise counted[0]
    return {"engine": "adbc+accounting", "rows_out": rows, "seconds": seconds, "base_rss_mb": base,
            "count_groups": counted[0], "bytes_out": out.stat().st_size}  # fmt: skip


def _child_dlt(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    # Arrow items are written to Parquet during extract: set the writer default for every stage.
    os.environ.setdefault("DATA_WRITER__COMPRESSION", "zstd")
    import dlt
    from dlt.sources.sql_database import sql_table

    backend = spec["backend"]
    where_sql, order_sql = spec["where_sql"], spec["order_sql"]

    def adapter(query: Any, table: Any) -> Any:
        q = query.where(sa.text(where_sql)) if where_sql else query
        return q.order_by(sa.text(order_sql)) if order_sql else q

    out_dir = pathlib.Path(spec["out"])
    base = _peak_rss_mb()
    t0 = time.perf_counter()
    resource_ = sql_table(
        credentials=spec["db_url"],
        table=spec["table"],
        backend=backend,
        included_columns=spec["columns"],
        query_adapter_callback=adapter,
        chunk_size=CHUNK_ROWS,
        reflection_level="full",
    )
    pipe = dlt.pipeline(
        pipeline_name=f"handoff_bench_{backend}",
        pipelines_dir=spec["pipelines_dir"],
        destination=dlt.destinations.filesystem(bucket_url=out_dir.resolve().as_uri()),
        dataset_name="bench",
    )
    pipe.run(resource_, loader_file_format="parquet", write_disposition="replace")
    seconds = time.perf_counter() - t0
    trace = pipe.last_trace
    info = trace.last_normalize_info if trace is not None else None
    counts = info.row_counts if info is not None else {}
    rows = int(sum(v for k, v in counts.items() if not k.startswith("_dlt")))
    files = [p for p in out_dir.rglob("*.parquet")]
    return {"engine": f"dlt-{backend}", "rows_out": rows, "seconds": seconds, "base_rss_mb": base,
            "bytes_out": sum(p.stat().st_size for p in files), "files": len(files)}  # fmt: skip


def _time_phases() -> tuple[dict[str, float], dict[str, float], dict[str, list[float]]]:
    """Wrap the governed path's steps with timers (this child only); return (wall, thread CPU)
    totals and each step's span: when it first started and last ended (``perf_counter`` seconds).

    Thread CPU (``time.thread_time``) is what each step itself spent, whichever thread ran it, so
    the steps add up to most of handoff's process CPU; generators count only their own ``next``.
    The spans show what ran last: the database's aggregate, the reading or the checks.
    """

    from handoff import decisions, extract, pipeline, quarantine, release, snapshot, sortmerge
    from handoff.validate import SuiteValidator

    phases: dict[str, float] = {}
    cpu: dict[str, float] = {}
    spans: dict[str, list[float]] = {}

    def add(key: str, wall: float, spent: float) -> None:
        phases[key] = phases.get(key, 0.0) + wall
        cpu[key] = cpu.get(key, 0.0) + spent
        end = time.perf_counter()
        span = spans.setdefault(key, [end - wall, end])
        span[0], span[1] = min(span[0], end - wall), max(span[1], end)

    def timed(owner: Any, attr: str, key: str) -> None:
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                add(key, time.perf_counter() - t, time.thread_time() - c)

        setattr(owner, attr, wrapper)

    def timed_generator(owner: Any, attr: str, key: str) -> None:
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            items = fn(*args, **kwargs)
            while True:
                t, c = time.perf_counter(), time.thread_time()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    add(key, time.perf_counter() - t, time.thread_time() - c)
                yield item

        setattr(owner, attr, wrapper)

    timed(pipeline, "prepare", "prepare")
    timed(SuiteValidator, "validate", "gx_validate")
    timed(quarantine, "divert", "row_quarantine")
    timed(sortmerge, "in_key_order", "sort_rows_in_id_order")
    timed_generator(snapshot.PostgresSnapshot, "chunks", "source_read")
    timed(extract, "read_counts", "exclusion_counts")
    timed(pipeline, "extract_validate_stage", "extract_validate_stage")
    timed(pipeline, "_stage_in_order", "merge_encode_hash_write")
    timed(sortmerge.SortedRuns, "add", "spill_runs")
    timed(pipeline, "parquet_bytes", "parquet_encode")
    timed(pipeline, "record", "record")
    timed(decisions.Decisions, "decide", "approve")
    timed(release.Release, "deliver", "deliver")
    return phases, cpu, spans


def _child_handoff(spec: dict[str, Any]) -> dict[str, Any]:
    """The governed path end to end: stage, gates, approval, upload, ledger and lineage."""
    # Library imports happen before timing, as the floor imports pyarrow and adbc before its clock:
    # every library the governed path loads (alembic pulls in mako and pygments on first use).
    import adbc_driver_postgresql.dbapi  # noqa: F401
    import alembic.command  # noqa: F401
    import alembic.script  # noqa: F401
    import boto3  # noqa: F401
    import great_expectations  # noqa: F401
    import mako.exceptions  # noqa: F401
    import openlineage.client  # noqa: F401
    import psycopg  # noqa: F401

    from handoff import chunkcheck
    from handoff.config import load_settings
    from handoff.court import calendar, outcome_statement, record_outcome
    from handoff.pipeline import StageRequest
    from handoff.transfer import Lifecycle
    from handoff_tools import demokeys

    home = pathlib.Path(spec["home"])
    keys = demokeys.make_keyring(home / "keys")  # throwaway: the bench's own trust file and signatures
    policy_dir = demokeys.signed_policy_dir(load_settings(home=home).policy_dir, home / "policy", keys)
    settings = load_settings(home=home, state_url=spec["state_url"], policy_dir=policy_dir,
                             bucket=spec.get("bucket"), kms_key_id=spec.get("kms_key_id"),
                             audit_bucket=spec.get("audit_bucket"),
                             **({"workers": spec["workers"]} if spec.get("workers") else {}))  # fmt: skip
    if chunkcheck.use_processes(settings.check_processes, settings.workers):
        chunkcheck.start_server(wait=True)  # the check workers' library imports, like this child's above
    phases, step_cpu, spans = _time_phases()  # before Lifecycle binds the methods it passes through (decide, deliver)
    life = Lifecycle(settings)
    now = dt.datetime.now(dt.UTC)
    with life.engine.begin() as conn:  # the bench's own state DB: counsel's outcome, recorded up front
        for h in calendar(conn, life.policies, life.trust(), now):
            if not h.outcome:
                signed = keys.sign("counsel", outcome_statement(h, "upheld", None, now))
                record_outcome(conn, life.policies, life.trust(), signed, now)
    bucket = spec.get("bucket") or "handoff-bench-unused"
    request = StageRequest(source_url=spec["db_url"], bucket=bucket)
    request = dataclasses.replace(request, signed=keys.sign("operator", life.request_statement(request, bucket, now)))
    base = _peak_rss_mb()
    with _TreeWatch() as tree:
        t0 = time.perf_counter()
        outcome = life.transfer(request, bucket, now)
        batch = outcome.batch
        if spec.get("bucket") and batch.status == "awaiting-approval":
            statement = life.decision_statement(batch.id, "approve", "bench", now)
            life.decide(batch.id, keys.sign("approver", statement), now)
            outcome = life.deliver(batch.id, now)
            batch = outcome.batch
        seconds = time.perf_counter() - t0
    return {"engine": "handoff", "rows_out": batch.rows_extracted, "seconds": seconds, "base_rss_mb": base,
            "tree_peak_pss_mb": tree.peak_mb, "cpu": tree.profile(), "checked_in": batch.validation.get("checked_in"),
            "rows_staged": batch.rows_staged, "rows_quarantined": batch.rows_quarantined,
            "status": batch.status, "batch_id": batch.id, "phases": phases, "step_cpu": step_cpu,
            "check_rows": life.settings.check_rows,
            "spans": {k: [round(a - t0, 3), round(b - t0, 3)] for k, (a, b) in spans.items()},
            "bytes_out": sum(f.bytes for f in batch.files)}  # fmt: skip


_CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "floor": _child_floor,
    "accounted": _child_accounted,
    "dlt": _child_dlt,
    "handoff": _child_handoff,
}


def _child_main(kind: str, spec_path: str) -> int:
    spec = json.loads(pathlib.Path(spec_path).read_text())
    result = _CHILDREN[kind](spec)
    result["peak_rss_mb"] = max(_peak_rss_mb(), result.get("tree_peak_pss_mb") or 0.0)
    line = json.dumps(result)
    pathlib.Path(spec["result"]).write_text(line)
    print(line, flush=True)
    return 0


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
    cmd = [sys.executable, "-m", "handoff_tools.bench", "_child", kind, str(spec_path)]
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
    from handoff.order import PolicySet
    from handoff.snapshot import libpq_uri

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
    sqls = _statements(engine, order)
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
    hand = _measure_handoff(ctx, db_url, home, state_url)
    runs["handoff"] = hand
    result = _summary(rows, ctx.selected, runs, dlt_runs, notes)
    result.update(bound_form=sqls["form"], bound_other_form=sqls["other_form"])  # the aggregates the bounds ran
    result.update(seed=seed, seeded=seeded, seed_seconds=seed_seconds if seeded else None, repeat=ctx.repeat)
    for name, run in runs.items():
        if run is not None:
            result[f"{name}_tries"] = run.get("tries", [run["seconds"]])
    return result


def _statements(engine: sa.Engine, order: Order) -> dict[str, str]:
    """The SQL every path runs, as literal text: the extractor's statement for the current order
    (all in-scope jurisdictions, no watermark bound: the fast path's snapshot is the cut), the same
    sorted by the server (the earlier design), and the exclusion accounting in both forms."""
    from handoff import extract
    from handoff.snapshot import literal_sql

    the_plan = extract.plan(engine, order, None)
    stmt = the_plan.statement
    id_col = the_plan.table.c[order.source.id_column]
    case = extract.counts_statement(the_plan.table, order, the_plan.fips, form="case")  # per-row CASE
    raw = extract.counts_statement(the_plan.table, order, the_plan.fips, raw=the_plan.raw)  # reason per group
    coded = extract.counts_statement(the_plan.table, order, the_plan.fips, raw=the_plan.raw, form="coded")
    forms = {"coded": ("coded (CASE per row)", coded), "raw-grouped": ("raw-grouped", raw)}
    mine = extract.counts_form(engine)
    (label, counts), (other_label, other) = forms.pop(mine), next(iter(forms.values()))
    return {
        "form": label,  # the aggregate handoff runs on this database
        "counts_sql": literal_sql(counts.statement, engine),
        "other_form": other_label,
        "other_sql": literal_sql(other.statement, engine),
        "sql": literal_sql(stmt, engine),  # what handoff runs: no ORDER BY
        "sorted_sql": literal_sql(stmt.order_by(id_col), engine),
        "case_sql": literal_sql(case.statement, engine),
        "where_sql": literal_sql(stmt.whereclause, engine) if stmt.whereclause is not None else "",
        "order_sql": literal_sql(id_col, engine),
    }


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
    from handoff.snapshot import NO_JIT

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
            ctx.say(f"{label}: one snapshot")
            spec = {"pg_url": ctx.pg_uri, "sql": the_sql, "no_jit": NO_JIT, "counts_sql": counts_sql,
                    "sort_key": key, "out": str(ctx.out_dir / f"{name}.parquet")}  # fmt: skip
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
            f"{ctx.sqls['other_form']} one)."
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


def _measure_handoff(ctx: _Ctx, db_url: str, home: pathlib.Path, state_url: str) -> dict[str, Any]:
    """handoff end to end against a local S3 endpoint."""
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

    try:
        hand = _fastest(ctx, once)
    finally:
        local.stop()
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

    return hand


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


# ----- presentation ------------------------------------------------------------------------------
def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def render_table(result: dict) -> Table:
    """A rich table of one ``run_bench`` result, for the CLI."""
    from rich.table import Table

    rows = result["rows"]
    table = Table(
        title=f"Extract benchmark: {rows:,} source rows, {result['selected_rows']:,} selected",
        caption="rows/s = source rows scanned ÷ seconds; ratio = handoff rows/s ÷ that path's rows/s",
    )
    table.add_column("path")
    table.add_column("seconds", justify="right")
    table.add_column("rows/s", justify="right")
    table.add_column("peak RSS MB", justify="right")
    table.add_column("handoff ÷ path", justify="right")
    hand = result.get("handoff_rows_per_s")

    def add(label: str, prefix: str) -> None:
        rate = result.get(f"{prefix}_rows_per_s")
        table.add_row(
            label,
            _fmt(result.get(f"{prefix}_seconds"), ".2f"),
            _fmt(rate, ",.0f"),
            _fmt(result.get(f"{prefix}_peak_rss_mb"), ",.0f"),
            _fmt(_ratio(hand, rate), ".2f") if prefix != "handoff" else "1.00",
        )

    add(f"floor, ORDER BY id ({result.get('floor_engine', 'adbc')} → Parquet)", "floor")
    if result.get("floor_unsorted_seconds") is not None:
        add("floor, unsorted", "floor_unsorted")
    if result.get("accounted_seconds") is not None:
        add("sorted floor + exclusion accounting (CASE per row)", "accounted")
    if result.get("bound_seconds") is not None:
        add(f"SQL-level bound: {result.get('bound_form', '?')} accounting + unsorted + client sort", "bound")
    if result.get("bound_other_seconds") is not None:
        add(f"the same with {result.get('bound_other_form', '?')} accounting", "bound_other")
    for backend in DLT_BACKENDS:
        if f"dlt_{backend}_rows_per_s" in result:
            add(f"dlt sql_table ({backend})", f"dlt_{backend}")
    add(f"handoff end to end ({result.get('handoff_status', '?')})", "handoff")
    return table


_WALL_STEPS = ("prepare", "extract_validate_stage", "spill_runs", "merge_encode_hash_write", "record",
               "approve", "deliver")  # fmt: skip


def profile_line(result: dict) -> str:
    """Where handoff's seconds went: its phases, the CPU each step spent, and whose CPU the machine spent."""
    wall = result.get("handoff_seconds") or 0.0
    phases = result.get("handoff_phase_seconds") or {}
    steps = result.get("handoff_step_cpu_seconds") or {}
    cpu = result.get("handoff_cpu_seconds") or {}
    text = f"handoff profile, {result['rows']:,} rows: {wall:.2f} s wall; " + ", ".join(
        f"{k} {phases[k]:.2f} s" for k in _WALL_STEPS if k in phases
    )
    if steps:
        busy = {k: v for k, v in steps.items() if k not in ("extract_validate_stage", "merge_encode_hash_write")}
        text += "; CPU by step: " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(busy.items(), key=lambda kv: -kv[1]))
    if cpu:
        capacity = cpu.get("cores", 1.0) * wall
        text += (
            f"; CPU: handoff process {cpu.get('handoff_process_cpu_s', 0):.2f} s, check workers "
            f"{cpu.get('check_workers_cpu_s', 0):.2f} s, rest of the machine (database, S3 endpoint) "
            f"{cpu.get('rest_of_machine_cpu_s', 0):.2f} s, of {capacity:.2f} core-seconds"
        )
    spans = result.get("handoff_step_spans") or {}
    if spans:  # in the order they ended: what the end waited for
        text += "; timeline (first start–last end, s): " + ", ".join(
            f"{k} {a:.2f}–{b:.2f}" for k, (a, b) in sorted(spans.items(), key=lambda kv: kv[1][1])
        )
    return text


def scaling_line(results: list[dict]) -> str:
    """The linearity and flat-memory check across sizes: smallest vs largest run."""
    ordered = sorted(results, key=lambda r: r["rows"])
    small, big = ordered[0], ordered[-1]
    rate_ratio = _ratio(big.get("handoff_rows_per_s"), small.get("handoff_rows_per_s"))
    return (
        f"scaling: handoff {small['rows']:,} rows {_fmt(small.get('handoff_rows_per_s'), ',.0f')} rows/s, "
        f"peak RSS {_fmt(small.get('handoff_peak_rss_mb'), ',.0f')} MB; "
        f"{big['rows']:,} rows {_fmt(big.get('handoff_rows_per_s'), ',.0f')} rows/s, "
        f"peak RSS {_fmt(big.get('handoff_peak_rss_mb'), ',.0f')} MB; "
        f"rows/s ratio large/small {_fmt(rate_ratio, '.2f')}"
    )


def plot(results: list[dict], path: str | os.PathLike[str]) -> pathlib.Path:
    """Write a PNG: rows/s and peak RSS against source rows, one line per path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(results, key=lambda r: r["rows"])
    series = [("floor (sorted)", "floor"), ("floor (unsorted)", "floor_unsorted"), ("floor + CASE accounting", "accounted"),
              ("SQL-level bound", "bound"), ("bound, the other aggregate", "bound_other"),
              ("dlt connectorx", "dlt_connectorx"),
              ("dlt pyarrow", "dlt_pyarrow"), ("handoff", "handoff")]  # fmt: skip
    fig, (ax_rate, ax_rss) = plt.subplots(1, 2, figsize=(11, 4.5))
    for label, prefix in series:
        pts = [(r["rows"], r.get(f"{prefix}_rows_per_s"), r.get(f"{prefix}_peak_rss_mb")) for r in ordered]
        rate_pts = [(x, y) for x, y, _ in pts if y is not None]
        rss_pts = [(x, m) for x, _, m in pts if m is not None]
        if rate_pts:
            ax_rate.plot(*zip(*rate_pts, strict=True), marker="o", label=label)
        if rss_pts:
            ax_rss.plot(*zip(*rss_pts, strict=True), marker="o", label=label)
    for ax, ylabel in ((ax_rate, "source rows scanned per second"), (ax_rss, "peak RSS (MB)")):
        ax.set_xlabel("source rows")
        ax.set_ylabel(ylabel)
        if len({r["rows"] for r in ordered}) > 1:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_rate.set_title("Throughput")
    ax_rss.set_title("Peak memory per child process")
    fig.tight_layout()
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_child":
        sys.exit(_child_main(sys.argv[2], sys.argv[3]))
    print(
        "usage: python -m handoff_tools.bench _child {floor|accounted|dlt|handoff} SPEC.json (internal)",
        file=sys.stderr,
    )
    sys.exit(2)
