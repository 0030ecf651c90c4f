"""The benchmark's measurements, each run in its own child process (``bench._run_child`` starts them):
the SQL-level floors and bound, dlt, and handoff itself, with the probes of memory and CPU they report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import os
import pathlib
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    pass

MARKER_TABLE = "bench_seed"
SOURCE_TABLE = "enrollees"
DLT_BACKENDS = ("connectorx", "pyarrow")
CHUNK_ROWS = 100_000


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
    CPU seconds (the rest is the database and the S3 endpoint), sampled in a thread.

    PSS is read (``/proc/PID/smaps_rollup``, which walks every mapping: about 5 ms of CPU for a
    700 MB process, measured here) only while the process has descendants; alone, its peak is its
    ``VmHWM``, which ``_child_main`` reports anyway, free. Sampled every 0.2 s through a 16M-row
    transfer in threads, the probe cost the measured process about 0.3 s of CPU that no other
    path paid. Descendants are found through ``/proc/PID/task/TID/children`` (psutil's scan reads
    every process on the machine, about 1 ms a sample)."""

    def __init__(self, interval: float = 0.2) -> None:
        import threading

        import psutil

        self.interval, self.peak_mb = interval, 0.0
        self.shared = False  # whether any sample found descendants (else the peak is this process's VmHWM)
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

    def _descendants(self) -> list[Any]:
        import psutil

        pids, todo = [], [self.me.pid]
        try:
            while todo:
                pid = todo.pop()
                for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
                    found = [int(c) for c in (task / "children").read_text().split()]
                    pids.extend(found)
                    todo.extend(found)
        except (OSError, ValueError):  # no such file (another kernel), or a process that just ended
            return list(self.me.children(recursive=True))
        out = []
        for pid in dict.fromkeys(pids):
            try:
                out.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        return out

    def sample(self) -> None:
        import psutil

        descendants = self._descendants()
        if not descendants:  # this process alone: its VmHWM is its peak (``__exit__``)
            return
        self.shared = True
        total = 0
        for proc in [self.me, *descendants]:
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
        if not self.shared:
            self.peak_mb = _peak_rss_mb()
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
    requires of any compliant export), JIT off and handoff's parallel workers per scan (``session``), the
    rows sorted client-side when ``sort_key`` is given. No validation, hashing or upload."""
    import threading

    import psycopg

    out = pathlib.Path(spec["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    base = _peak_rss_mb()
    t0 = time.perf_counter()
    with psycopg.connect(spec["pg_url"]) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        session = spec["session"]  # what handoff's source sessions run first: JIT off, workers per scan
        for statement in session:
            conn.execute(statement)
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
            *session,
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


def _queue_wait() -> float | None:
    """Seconds this thread has spent runnable but waiting for a core (Linux's schedstat), or None."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _clocks() -> tuple[float, float, float | None]:
    """Wall clock, this thread's CPU and its wait for a core, now."""
    return time.perf_counter(), time.thread_time(), _queue_wait()


def _spent(start: tuple[float, float, float | None]) -> tuple[float, float, float | None]:
    """Wall, CPU and wait for a core since ``start`` (``_clocks``); the wait None where unknown."""
    t, c, q = start
    now = _clocks()
    return now[0] - t, now[1] - c, None if q is None or now[2] is None else now[2] - q


def _time_phases() -> tuple[dict[str, float], dict[str, float], dict[str, list[float]], dict[str, float]]:
    """Wrap the governed path's steps with timers (this child only); return (wall, thread CPU)
    totals, each step's span: when it first started and last ended (``perf_counter`` seconds), and
    how long each step waited, runnable, for a core (where Linux reports it).

    Thread CPU (``time.thread_time``) is what each step itself spent, whichever thread ran it, so
    the steps add up to most of handoff's process CPU; generators count only their own ``next``.
    The spans show what ran last: the database's aggregate, the reading or the checks. The wait
    shows a step starved by the other processes on the machine (the tenth session's finding: with a
    parallel worker per scan, the checks waited twice as long as they ran).
    """

    from handoff.checks import quarantine
    from handoff.checks.validate import SuiteValidator
    from handoff.extract import reader as extract
    from handoff.extract import snapshot, sortmerge
    from handoff.release import decisions
    from handoff.release import run as release
    from handoff.staging import pipeline
    from handoff.staging import record as recording

    phases: dict[str, float] = {}
    cpu: dict[str, float] = {}
    spans: dict[str, list[float]] = {}
    waited: dict[str, float] = {}

    def add(key: str, wall: float, spent: float, wait: float | None = None) -> None:
        phases[key] = phases.get(key, 0.0) + wall
        cpu[key] = cpu.get(key, 0.0) + spent
        if wait is not None:
            waited[key] = waited.get(key, 0.0) + wait
        end = time.perf_counter()
        span = spans.setdefault(key, [end - wall, end])
        span[0], span[1] = min(span[0], end - wall), max(span[1], end)

    def timed(owner: Any, attr: str, key: str) -> None:
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = _clocks()
            try:
                return fn(*args, **kwargs)
            finally:
                add(key, *_spent(start))

        setattr(owner, attr, wrapper)

    def timed_generator(owner: Any, attr: str, key: str) -> None:
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            items = fn(*args, **kwargs)
            while True:
                start = _clocks()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    add(key, *_spent(start))
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
    timed(recording, "record", "record")
    timed(decisions.Decisions, "decide", "approve")
    timed(release.Release, "deliver", "deliver")
    return phases, cpu, spans, waited


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

    from handoff.authority.court import calendar, outcome_statement, record_outcome
    from handoff.checks import server
    from handoff.config import load_settings
    from handoff.staging.pipeline import StageRequest
    from handoff.transfer import Lifecycle
    from handoff_tools import demokeys

    home = pathlib.Path(spec["home"])
    keys = demokeys.make_keyring(home / "keys")  # throwaway: the bench's own trust file and signatures
    policy_dir = demokeys.signed_policy_dir(load_settings(home=home).policy_dir, home / "policy", keys)
    settings = load_settings(home=home, state_url=spec["state_url"], policy_dir=policy_dir,
                             bucket=spec.get("bucket"), kms_key_id=spec.get("kms_key_id"),
                             audit_bucket=spec.get("audit_bucket"),
                             **({"workers": spec["workers"]} if spec.get("workers") else {}))  # fmt: skip
    if server.use_processes(settings.check_processes, settings.workers):
        server.start_server(wait=True)  # the check workers' library imports, like this child's above
    # Before Lifecycle binds the methods it passes through (decide, deliver).
    phases, step_cpu, spans, step_wait = _time_phases()
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
            "step_wait": step_wait,
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


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_child":
        sys.exit(_child_main(sys.argv[2], sys.argv[3]))
    print(
        "usage: python -m handoff_tools.bench_children _child {floor|accounted|dlt|handoff} SPEC.json (internal)",
        file=sys.stderr,
    )
    sys.exit(2)
