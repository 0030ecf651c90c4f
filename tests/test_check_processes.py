"""GX in worker processes: the same staged bytes and quarantine as threads, on other cores.

``HANDOFF_WORKERS=2`` with ``HANDOFF_CHECK_PROCESSES`` (the default) checks chunks in two worker
processes; the staged files, the row quarantine and the report must be exactly what threads in
one process produce. A worker killed mid-batch (the OOM killer, an operator's ``kill``) ends the
stage with one clear error and nothing staged.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pyarrow as pa
import pytest
from support import INITIATOR, NOW, POLICY_DIR, build_settings, count_validations, sha256_file, staged_paths

from handoff.checks.chunkcheck import Checker, CheckerDied
from handoff.extract import reader as extract
from handoff.extract.snapshot import open_read
from handoff.extract.stage import Stager
from handoff.policy.order import PolicySet
from handoff.policy.suite import load_suite
from handoff.staging.pipeline import StageRequest, process_chunks, quarantined_rows, stage_batch


def _stage(url: str, home: Path, processes: bool):  # type: ignore[no-untyped-def]
    settings = build_settings(home, workers=2, check_processes=processes)
    return settings, stage_batch(settings, StageRequest(url, initiator=INITIATOR), NOW)


def test_worker_processes_stage_exactly_what_threads_stage(crowded_source_url: str, tmp_path: Path) -> None:
    s_threads, threads = _stage(crowded_source_url, tmp_path / "threads", processes=False)
    s_procs, procs = _stage(crowded_source_url, tmp_path / "procs", processes=True)

    assert threads.status == procs.status == "staged"
    assert len(procs.files) > 1, "the source should span several files"
    assert [sha256_file(p) for p in staged_paths(procs)] == [sha256_file(p) for p in staged_paths(threads)]
    assert procs.content_hash == threads.content_hash
    assert procs.rows_quarantined == threads.rows_quarantined > 0
    assert quarantined_rows(s_procs, procs.id) == quarantined_rows(s_threads, threads.id)
    assert threads.validation["checked_in"] == "this process"
    assert procs.validation["checked_in"] in ("1 worker process", "2 worker processes")
    assert procs.validation["expectations_evaluated"] == threads.validation["expectations_evaluated"]


def test_workers_2_starts_two_processes_and_the_checks_run_there(crowded_source_url: str, tmp_path: Path) -> None:
    order = PolicySet(POLICY_DIR).current()
    check = Checker(order, load_suite(PolicySet(POLICY_DIR), order), NOW.date())
    read = open_read(extract.open_source(crowded_source_url), order, None, None, fast=False)
    seen: list[set[int]] = []

    def chunks() -> Iterator[pa.Table]:
        for chunk in read.chunks(200):
            seen.append({w.pid for w in _check_workers()})
            yield chunk

    try:
        out = process_chunks(chunks(), check, Stager(tmp_path, "b1"), 2, None, 1000, processes=True)
    finally:
        read.close()
    assert out.chunks > 2 and not out.failures
    assert len(seen[-1]) == 2, "HANDOFF_WORKERS=2 should run two validation processes"
    assert out.checked_by and out.checked_by <= seen[-1], "chunks were checked outside the worker processes"
    assert _check_workers() == [], "the worker processes outlived the stage"


def _check_workers() -> list[psutil.Process]:
    """This process's validation workers: the children of its multiprocessing fork server."""
    servers = [c for c in psutil.Process().children() if "forkserver" in " ".join(c.cmdline())]
    return [w for s in servers for w in s.children()]


def test_a_killed_worker_ends_the_stage_with_one_clear_error_and_nothing_staged(
    crowded_source_url: str, tmp_path: Path
) -> None:
    order = PolicySet(POLICY_DIR).current()
    check = Checker(order, load_suite(PolicySet(POLICY_DIR), order), NOW.date())
    read = open_read(extract.open_source(crowded_source_url), order, None, None, fast=False)

    def chunks_then_kill() -> Iterator[pa.Table]:
        for i, chunk in enumerate(read.chunks(1000)):
            if i == 1:
                workers = _check_workers()
                assert workers, "no validation worker processes to kill"
                for w in workers:
                    os.kill(w.pid, signal.SIGKILL)
            yield chunk

    stager = Stager(tmp_path, "b2")
    try:
        with pytest.raises(CheckerDied, match="validation worker process ended"):
            process_chunks(chunks_then_kill(), check, stager, 2, None, 1000, processes=True)
    finally:
        read.close()
    assert not stager.files
    assert not list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob("*.arrow"))


def test_a_chunk_failing_gx_in_a_worker_process_stages_nothing_and_names_the_rule(
    crowded_source_url: str, tmp_path: Path
) -> None:
    order = PolicySet(POLICY_DIR).current()
    suite = load_suite(PolicySet(POLICY_DIR), order)
    no_rows = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0, "max_value": 0},
               "meta": {"rule": "test:no_rows_may_leave"}}  # fmt: skip
    strict = {**suite, "expectations": [*suite["expectations"], no_rows]}
    check = Checker(order, strict, NOW.date())  # type: ignore[arg-type]
    read = open_read(extract.open_source(crowded_source_url), order, None, None, fast=False)
    stager = Stager(tmp_path, "b3")
    try:
        out = process_chunks(read.chunks(1000), check, stager, 2, None, 1000, processes=True)
    finally:
        read.close()
    assert out.chunks > 1 and os.getpid() not in out.checked_by
    assert {f.rule for f in out.failures} == {"test:no_rows_may_leave"}
    assert len(out.failures) == out.chunks  # every chunk checked, so the report is complete
    assert not stager.files and not list(tmp_path.rglob("*.parquet"))


WORKER_SCRIPT = """
import multiprocessing as mp, os, sys
with open(os.environ["MARKER"], "a") as fh:
    fh.write(__name__ + "\\n")
from handoff.checks import server

if __name__ == "__main__":
    if sys.argv[1] == "by-name":
        server.main_by_name()
    child = mp.get_context("spawn").Process(target=int)
    child.start()
    child.join()
    sys.exit(child.exitcode)
"""


@pytest.mark.parametrize(("how", "runs"), [("by-name", ["__main__"]), ("by-path", ["__main__", "__mp_main__"])])
def test_a_worker_started_from_the_handoff_script_does_not_run_the_script_again(
    how: str, runs: list[str], tmp_path: Path
) -> None:
    """Worker processes start without re-running the ``handoff`` console script (and importing the
    whole command line, half a second each); the control shows multiprocessing's default."""
    import subprocess
    import sys

    script = tmp_path / "handoff"  # named as the console script is
    script.write_text(WORKER_SCRIPT)
    marker = tmp_path / "runs"
    out = subprocess.run([sys.executable, str(script), how], env={**os.environ, "MARKER": str(marker)},
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert marker.read_text().splitlines() == runs


EARLY_SCRIPT = """
import json, sys
from handoff.checks import server

seen = {"started": False}
real = server.start_server


def spy(wait=False):
    seen.update(started=True, command_line_loaded="typer" in sys.modules or "handoff.cli.common" in sys.modules)
    real(wait)


server.start_server = spy
import handoff.cli  # as the console script does, with this process's arguments

from multiprocessing import forkserver

seen["server_running"] = forkserver._forkserver._forkserver_pid is not None
print(json.dumps(seen))
"""


@pytest.mark.parametrize(
    ("argv", "processes", "expected"),
    [
        (["transfer", "--db", "sqlite:///x.db"], "true", {"started": True, "command_line_loaded": False,
                                                           "server_running": True}),
        (["transfer", "--db", "sqlite:///x.db"], "false", {"started": False, "server_running": False}),
        (["status"], "true", {"started": False, "server_running": False}),
        (["transfer", "--help"], "true", {"started": False, "server_running": False}),
    ],
)  # fmt: skip
def test_a_transfer_checking_in_processes_starts_their_server_before_the_command_line_loads(
    argv: list[str], processes: str, expected: dict[str, bool], tmp_path: Path
) -> None:
    """``handoff transfer`` with checks in worker processes starts the fork server (which imports GX on
    another core) before importing Typer and the commands; no other command, nor threads, starts it."""
    import subprocess
    import sys

    script = tmp_path / "handoff"  # named as the console script is
    script.write_text(EARLY_SCRIPT)
    env = {**os.environ, "HANDOFF_HOME": str(tmp_path / "home"), "HANDOFF_CHECK_PROCESSES": processes,
           "HANDOFF_WORKERS": "2"}  # fmt: skip
    out = subprocess.run([sys.executable, str(script), *argv], env=env, capture_output=True, text=True, timeout=120,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


def test_a_worker_builds_its_validator_first_and_validates_only_units(
    crowded_source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What each forked worker runs first builds its GX validator and validates nothing (an empty
    frame's validation only took CPU from the scan); the first unit handed over is then checked in
    the worker, with every expectation."""
    from handoff.checks import chunkcheck

    policies = PolicySet(POLICY_DIR)
    order = policies.current()
    suite = load_suite(policies, order)
    seen = count_validations(monkeypatch)
    first = Checker(order, suite, NOW.date())
    chunkcheck._start(first)  # what each forked worker runs first
    assert seen == [] and chunkcheck._WORKER is first and getattr(first.local, "validator", None) is not None

    procs = chunkcheck.CheckProcesses(Checker(order, suite, NOW.date()), 1)
    read = open_read(extract.open_source(crowded_source_url), order, None, None, fast=False)
    try:
        unit = next(iter(read.chunks(500)))
        got = chunkcheck.checked(procs.submit(unit))
        assert got.verdict is not None and got.verdict.passed and got.pid != os.getpid()
        assert got.verdict.evaluated == len(suite["expectations"])
    finally:
        read.close()
        procs.close()


SLOW_PRELOAD = """
import os, pathlib, time
go, seen = pathlib.Path(os.environ["GO"]), pathlib.Path(os.environ["GO"] + ".preloaded")
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:  # the fork server's imports, held up until told
    time.sleep(0.05)
import handoff.checks.preload  # noqa: E402,F401
seen.write_text("done")
"""

START_WHILE_PRELOADING = """
import json, os, pathlib, sys
from handoff.checks import chunkcheck, server
from handoff.extract import reader as extract
from handoff.extract.snapshot import open_read
from handoff.policy.order import PolicySet
from handoff.policy.suite import load_suite
import datetime as dt

server.PRELOAD[:] = ["slow_preload"]
policies = PolicySet(pathlib.Path(sys.argv[1]))
order = policies.current()
checker = chunkcheck.Checker(order, load_suite(policies, order), dt.date(2026, 1, 7))
procs = chunkcheck.CheckProcesses(checker, 1)
preloaded_first = pathlib.Path(os.environ["GO"] + ".preloaded").exists()
pathlib.Path(os.environ["GO"]).write_text("go")  # the caller read on meanwhile; now let the server finish
read = open_read(extract.open_source(sys.argv[2]), order, None, None, fast=False)
try:
    got = chunkcheck.checked(procs.submit(next(iter(read.chunks(500)))))
finally:
    read.close()
    procs.close()
print(json.dumps({"returned_before_the_server_was_ready": not preloaded_first,
                  "passed": got.verdict is not None and got.verdict.passed, "in_a_worker": got.pid != os.getpid()}))
"""


def test_the_caller_reads_on_while_the_fork_server_is_still_importing(crowded_source_url: str, tmp_path: Path) -> None:
    """Starting the workers does not wait for the fork server's imports (GX: seconds of CPU on a busy
    machine), so the rows keep flowing from the database meanwhile; the first unit then waits for a
    worker and is checked there. The server's imports are held until the caller has moved on."""
    import json
    import subprocess
    import sys

    (tmp_path / "slow_preload.py").write_text(SLOW_PRELOAD)
    env = {**os.environ, "GO": str(tmp_path / "go"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", START_WHILE_PRELOADING, str(POLICY_DIR), crowded_source_url],
                         env=env, capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "returned_before_the_server_was_ready": True, "passed": True, "in_a_worker": True}  # fmt: skip
