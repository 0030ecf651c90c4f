"""Whole-process benchmark (``handoff bench --processes``): each path timed as the process a user runs.

People run handoff as processes, and Prefect's process worker starts a fresh one for every flow
run, so what a run costs before its first row counts. For each size, side by side in one run:

* **ConnectorX**: a fresh Python process that exports the extractor's statement (the order's columns
  and population, no accounting, no checks) to zstd Parquet with ConnectorX;
* **handoff**: ``handoff transfer`` (signed request, snapshot, exclusion counts, extract, row
  quarantine, GX, staging, ledger, anchors), then ``handoff approve`` and ``handoff release`` (gates,
  upload to the local S3 endpoint with SSE-KMS, manifest, accounting), each its own process;
* **fixed costs**: ``handoff --help`` and ``handoff status``.

Each is run ``repeat`` times (the median counts), each handoff try in a fresh home with the hearing
outcome already recorded, so the transfer ends awaiting approval as it would on a working day.
Seconds are the process's wall clock from spawn to exit; peak RSS is its own high-water mark
(``VmHWM``, read every few milliseconds; it covers the process, not its children).

handoff's own modules are compiled to bytecode first (``compiled``), as pip does when it installs
a wheel: a checkout installed in editable mode under ``PYTHONDONTWRITEBYTECODE=1`` (as on the
machine these figures come from) would otherwise compile every module it imports, in every
process, which no installed handoff does.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CX_SCRIPT = """
import sys, connectorx as cx, pyarrow.parquet as pq
table = cx.read_sql(sys.argv[1], sys.argv[2], return_type="arrow")
pq.write_table(table, sys.argv[3], compression="zstd")
print(table.num_rows)
"""


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_rss_mb: float
    stdout: str


def _hwm_mb(pid: int) -> float:
    """The process's own high-water RSS since its exec (``VmHWM``), or 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def timed(args: list[str], env: dict[str, str], cwd: pathlib.Path, timeout: float = 3600) -> Timed:
    """Run one process to its end: its wall clock and its own peak RSS. A failure raises with its output.

    The peak is ``VmHWM`` read every few milliseconds while it runs: ``ru_maxrss`` would count the
    parent's memory too (a forked child is the parent's size until it execs).
    """
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _hwm_mb(proc.pid))
            if time.perf_counter() - start > timeout:
                proc.kill()
                raise TimeoutError(f"{' '.join(args[:3])} ran past {timeout:.0f} s")
            time.sleep(0.003)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} … exited {proc.returncode}: {(stderr or stdout)[-2000:]}")
    return Timed(seconds, peak, stdout)


def median(runs: list[Timed]) -> dict[str, float]:
    """The median try's seconds and peak RSS, with the fastest and slowest try's seconds beside them."""
    return {"seconds": round(statistics.median(r.seconds for r in runs), 3),
            "min_seconds": round(min(r.seconds for r in runs), 3),
            "max_seconds": round(max(r.seconds for r in runs), 3),
            "peak_rss_mb": round(statistics.median(r.peak_rss_mb for r in runs), 1)}  # fmt: skip


def per_try(runs: dict[str, list[Timed]], over: Callable[[dict[str, float]], float]) -> list[float]:
    """``over`` of each try's own seconds (``{"connectorx": s, "transfer": s, ...}``), try by try: a ratio
    of two processes that ran one after the other, so a machine that sped up or slowed down between tries
    moves both (the medians of each path may come from different tries)."""
    count = min(len(v) for v in runs.values() if v)
    return [round(over({k: v[i].seconds for k, v in runs.items() if v}), 3) for i in range(count)]


@dataclass
class Stack:
    """What every handoff process of one run shares: keys, a signed policy folder, the local S3 endpoint."""

    work: pathlib.Path
    env: dict[str, str]
    keys: Any
    policy_dir: pathlib.Path
    hearings: list[str]
    stop: Callable[[], None]
    buckets: Callable[[str], dict[str, str]]  # a fresh delivery and audit bucket for one try: its env

    def try_env(self, home: pathlib.Path) -> dict[str, str]:
        """The environment of one try: its own home, state database and buckets. (The local S3
        endpoint lists a prefix by walking every object in the bucket: an audit bucket shared by every
        try made each stop-marker check slower than the last, 6 ms empty, 70 ms after 950 anchors,
        where S3 lists only the prefix.)"""
        return {**self.env, "HANDOFF_HOME": str(home), **self.buckets(home.name)}


def start_stack(work: pathlib.Path) -> Stack:
    from handoff.config import load_settings
    from handoff.policy.order import PolicySet
    from handoff_tools import demokeys, emulator, local_stack

    keys = demokeys.make_keyring(work / "keys")
    policy_dir = demokeys.signed_policy_dir(load_settings().policy_dir, work / "policy", keys)
    local = emulator.start()
    # Buckets come with each try (``Stack.try_env``), not here.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}, **local_stack.aws_env(local),
           "HANDOFF_POLICY_DIR": str(policy_dir), "HANDOFF_CONFIG": str(work / "no-handoff.toml"),
           "GX_ANALYTICS_ENABLED": "False", "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    order = PolicySet(policy_dir).current()

    def buckets(name: str) -> dict[str, str]:
        bucket = f"handoff-bench-{name}".lower()[:63]
        key = emulator.create_bucket(local, bucket)
        emulator.create_bucket(local, f"{bucket[:57]}-audit", object_lock=True)
        return {"HANDOFF_BUCKET": bucket, "HANDOFF_AUDIT_BUCKET": f"{bucket[:57]}-audit", "HANDOFF_KMS_KEY_ID": key}

    return Stack(work, env, keys, policy_dir, [h.id for h in order.hearings], local.stop, buckets)


def without_handoff_defaults(env: dict[str, str]) -> dict[str, str]:
    """``env`` as the user gave it to this process: without the OpenBLAS thread count that importing
    handoff set (``handoff.BLAS_THREADS_DEFAULTED``), so ConnectorX runs as it would for the user."""
    import handoff

    if not handoff.BLAS_THREADS_DEFAULTED:
        return env
    return {k: v for k, v in env.items() if k != "OPENBLAS_NUM_THREADS"}


def _handoff() -> str:
    return str(pathlib.Path(sys.executable).with_name("handoff"))


def _one_try(stack: Stack, db_url: str, cx_url: str, sql: str, env: dict[str, str]) -> dict[str, Timed]:
    """ConnectorX, then handoff's transfer, approve and release, once, each its own process (``env``:
    ``Stack.try_env``)."""
    tried = {"connectorx": timed([sys.executable, "-c", CX_SCRIPT, cx_url, sql, str(stack.work / "cx.parquet")],
                                 without_handoff_defaults(env), stack.work)}  # fmt: skip
    selected = int(tried["connectorx"].stdout.split()[-1])
    for hearing in stack.hearings:  # the court's outcome is on record before the working day starts
        timed([_handoff(), "court", "outcome", hearing, "--result", "upheld", "--key",
               str(stack.keys.key("counsel"))], env, stack.work)  # fmt: skip
    tried["transfer"] = timed([_handoff(), "transfer", "--db", db_url, "--key", str(stack.keys.key("operator")),
                               "--json"], env, stack.work)  # fmt: skip
    batch = json.loads(tried["transfer"].stdout)
    if batch["status"] != "awaiting-approval" or batch["rows_extracted"] != selected:
        raise RuntimeError(
            f"handoff read {batch['rows_extracted']:,} rows ({batch['status']}); ConnectorX {selected:,}"
        )
    tried["approve"] = timed([_handoff(), "approve", batch["batch_id"], "--key", str(stack.keys.key("approver"))], env,
                             stack.work)  # fmt: skip
    tried["release"] = timed([_handoff(), "release", "--json"], env, stack.work)
    if "delivered" not in tried["release"].stdout:
        raise RuntimeError(f"release did not deliver: {tried['release'].stdout[-1000:]}")
    return tried


def add_ratios(out: dict[str, Any], runs: dict[str, list[Timed]]) -> None:
    """The headline ratio (of the medians) and, per try, the same ratio of that try's processes."""
    handoff = out["transfer"]["seconds"] + out["release"]["seconds"]
    out["transfer_release_seconds"] = round(handoff, 3)
    out["connectorx_over_handoff"] = round(out["connectorx"]["seconds"] / handoff, 3)
    out["connectorx_over_handoff_tries"] = per_try(runs, lambda s: s["connectorx"] / (s["transfer"] + s["release"]))


def measure_size(stack: Stack, db_url: str, sql: str, rows: int, repeat: int, progress: Callable[[str], None],
                 fixed: bool, source_index: bool = False) -> dict[str, Any]:  # fmt: skip
    """ConnectorX, then handoff's transfer, approve and release, ``repeat`` times each, side by side;
    with ``source_index``, the same again once ``handoff source advise``'s DDL ran on the source."""
    import sqlalchemy as sa

    cx_url = sa.engine.make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    runs: dict[str, list[Timed]] = {"connectorx": [], "transfer": [], "approve": [], "release": [], "status": [],
                                    "help": [], "transfer_processes": []}  # fmt: skip
    selected = 0
    for i in range(repeat):
        env = stack.try_env(stack.work / f"home-{rows}-{i}")
        progress(f"{rows:,} rows, try {i + 1} of {repeat}: ConnectorX, then handoff transfer, approve, release")
        for path, took in _one_try(stack, db_url, cx_url, sql, env).items():
            runs[path].append(took)
        selected = int(runs["connectorx"][-1].stdout.split()[-1])
        if fixed:
            runs["status"].append(timed([_handoff(), "status"], env, stack.work))
            runs["help"].append(timed([_handoff(), "--help"], env, stack.work))
            # The same transfer with its checks in a worker process (the fork server imports GX on another core).
            runs["transfer_processes"].append(
                timed(
                    [_handoff(), "transfer", "--db", db_url, "--key", str(stack.keys.key("operator")), "--json"],
                    {**env, "HANDOFF_CHECK_PROCESSES": "true", "HANDOFF_WORKERS": "2"},
                    stack.work,
                )  # fmt: skip
            )
    out: dict[str, Any] = {"rows": rows, "selected": selected, "repeat": repeat}
    out.update({k: median(v) for k, v in runs.items() if v})
    add_ratios(out, runs)
    if fixed:
        handoff = out["transfer_release_seconds"]
        out["status_over_connectorx"] = round(out["status"]["seconds"] / out["connectorx"]["seconds"], 2)
        out["handoff_over_connectorx"] = round(handoff / out["connectorx"]["seconds"], 2)
        out["status_over_connectorx_tries"] = per_try(runs, lambda s: s["status"] / s["connectorx"])
        out["handoff_over_connectorx_tries"] = per_try(runs, lambda s: (s["transfer"] + s["release"]) / s["connectorx"])
    if source_index:
        out["indexed"] = _with_index(stack, db_url, cx_url, sql, rows, repeat, progress)
    return out


def _with_index(stack: Stack, db_url: str, cx_url: str, sql: str, rows: int, repeat: int,
                progress: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """The same tries with the advised index and statistics on the source (dropped again after)."""
    import sqlalchemy as sa

    from handoff.extract.advice import advise
    from handoff.policy.order import PolicySet
    from handoff_tools.bench_source import settle

    advice = advise(PolicySet(stack.policy_dir).current())
    engine = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    dialect = engine.dialect
    try:
        progress(f"{rows:,} rows: building the advised index ({advice.name}) and statistics, then VACUUM ANALYZE")
        started = time.perf_counter()
        with engine.connect() as conn:
            for statement in advice.statements(dialect):
                conn.exec_driver_sql(statement)
            size = conn.exec_driver_sql(f"SELECT pg_relation_size('{advice.name}')").scalar() or 0
        built = time.perf_counter() - started
        settle(engine)
        runs: dict[str, list[Timed]] = {}
        for i in range(repeat):
            progress(f"{rows:,} rows with the index, try {i + 1} of {repeat}")
            for path, took in _one_try(
                stack, db_url, cx_url, sql, stack.try_env(stack.work / f"home-{rows}-index-{i}")
            ).items():
                runs.setdefault(path, []).append(took)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{advice.name}"')
            conn.exec_driver_sql(f'DROP STATISTICS IF EXISTS "{advice.name}_stats"')
        engine.dispose()
    out: dict[str, Any] = {"index": advice.name, "index_mb": round(size / 1e6), "build_seconds": round(built, 1)}
    out.update({k: median(v) for k, v in runs.items()})
    add_ratios(out, runs)
    return out


FIXED_ROWS = 5_000


def compiled() -> int:
    """Compile handoff's modules to bytecode where their cache is missing or stale; how many modules there are."""
    import compileall

    import handoff

    package = pathlib.Path(handoff.__file__).parent
    if not compileall.compile_dir(package, quiet=1):
        raise RuntimeError(f"could not compile {package} to bytecode")
    return sum(1 for _ in package.rglob("*.py"))


def run_processes(db_url: str, sizes: list[int], work_dir: pathlib.Path, repeat: int = 3, seed: int = 42,
                  progress: Callable[[str], None] | None = None, source_index: bool = False) -> dict[str, Any]:  # fmt: skip
    """Seed each size (its own database, NAME_ROWS) and measure every path as its own process; see the module doc."""
    import shutil

    import sqlalchemy as sa

    from handoff.policy.order import PolicySet
    from handoff_tools.bench_source import ensure_database, ensure_seeded, statements

    say = progress or (lambda _msg: None)
    modules = compiled()  # as an installed handoff is
    work_dir = work_dir.resolve()  # every child runs in it, so every path it is given must be absolute
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    stack = start_stack(work_dir)
    results = []
    try:
        for n in sorted(set(sizes) | {FIXED_ROWS}):
            url = sa.engine.make_url(db_url)
            url = url.set(database=f"{url.database}_{n}")
            engine = sa.create_engine(url)
            ensure_database(engine.url)
            if not ensure_seeded(engine, n, seed, say):
                say(f"reusing {n:,} seeded rows (seed {seed})")
            sql = statements(engine, PolicySet(stack.policy_dir).current())["sql"]
            with engine.connect() as conn:  # the same warm cache for every path
                conn.exec_driver_sql("SELECT count(*) FROM enrollees").scalar()
            engine.dispose()
            text = url.render_as_string(hide_password=False)
            results.append(measure_size(stack, text, sql, n, repeat, say, fixed=n == FIXED_ROWS,
                                        source_index=source_index and n != FIXED_ROWS))  # fmt: skip
    finally:
        stack.stop()
    return {"kind": "processes", "repeat": repeat, "cpus": os.cpu_count(), "bytecode_compiled": modules,
            "sizes": results}  # fmt: skip


def spread(values: list[float]) -> str:
    """`` (lo–hi)`` over the tries, or nothing for a single try."""
    return f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else ""


def _seconds(path: dict[str, float]) -> str:
    lo, hi = path["min_seconds"], path["max_seconds"]
    return f"{path['seconds']:.2f}" + (spread([lo, hi]) if hi > lo else "")


def render(result: dict[str, Any]) -> Any:
    from rich.table import Table

    ranged = result["repeat"] > 1
    t = Table("rows", "selected", "ConnectorX s", "transfer s", "approve s", "release s", "CX ÷ (transfer+release)",
              "peak RSS MB (CX / transfer / release)",
              title=f"Whole processes, median of {result['repeat']} ({result['cpus']} CPUs)"
                    + ("; in brackets the fastest and slowest try, and the ratio's range try by try" if ranged else ""),
              )  # fmt: skip
    for r in result["sizes"]:
        for label, x in ((f"{r['rows']:,}", r), (f"{r['rows']:,} + index", r.get("indexed"))):
            if not x:
                continue
            t.add_row(label, f"{r['selected']:,}", _seconds(x["connectorx"]), _seconds(x["transfer"]),
                      _seconds(x["approve"]), _seconds(x["release"]),
                      f"{x['connectorx_over_handoff']:.2f}x" + spread(x["connectorx_over_handoff_tries"]),
                      f"{x['connectorx']['peak_rss_mb']:.0f} / {x['transfer']['peak_rss_mb']:.0f} / "
                      f"{x['release']['peak_rss_mb']:.0f}")  # fmt: skip
    return t


def fixed_line(result: dict[str, Any]) -> str:
    r = next(x for x in result["sizes"] if "status" in x)
    return (f"fixed costs at {r['rows']:,} rows: transfer {r['transfer']['seconds']:.2f} s checking in threads, "
            f"{r['transfer_processes']['seconds']:.2f} s in a worker process; "
            f"`handoff --help` {r['help']['seconds']:.2f} s, `handoff status` "
            f"{r['status']['seconds']:.2f} s ({r['status_over_connectorx']:.1f}x ConnectorX's whole process, "
            f"{r['connectorx']['seconds']:.2f} s{tries(r['status_over_connectorx_tries'])}); transfer + release "
            f"{r['transfer_release_seconds']:.2f} s ({r['handoff_over_connectorx']:.1f}x"
            f"{tries(r['handoff_over_connectorx_tries'])})")  # fmt: skip


def tries(ratios: list[float]) -> str:
    """``; try by try 1.5x–2.2x``, or nothing for a single try."""
    return f"; try by try {min(ratios):.1f}x–{max(ratios):.1f}x" if len(ratios) > 1 else ""
