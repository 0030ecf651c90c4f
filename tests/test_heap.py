"""The garbage collector skips long-lived objects during the work, and gets them back after."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from handoff.extract import heap


def test_frozen_excludes_what_lives_now_and_hands_it_back() -> None:
    assert gc.get_freeze_count() == 0
    with heap.frozen():
        assert gc.get_freeze_count() > 0
        with heap.frozen():  # a nested scope leaves the outer one's freeze in place
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0  # a long-lived process keeps nothing frozen afterwards


def test_frozen_hands_objects_back_when_the_work_fails() -> None:
    try:
        with heap.frozen():
            raise RuntimeError("the read failed")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc (Linux)")
def test_release_hands_freed_memory_back_to_the_system() -> None:
    """Arrow's pool keeps what was freed (RSS stays up) until ``release`` returns it."""
    heap.release()  # start from nothing kept, so the buffers below take new memory
    before = _rss_mb()
    base = pa.array(np.arange(20_000))
    buffers = [pc.add(base, i) for i in range(1200)]  # ~190 MB from Arrow's pool, in 160 KB buffers
    assert _rss_mb() - before > 150
    del buffers
    gc.collect()
    kept = _rss_mb() - before
    heap.release()
    assert _rss_mb() - before < kept - 100, "freed memory stayed with the allocator"


STARTING = """
import gc, json
from handoff.extract import heap

seen = {"before": gc.isenabled()}
heap.starting()  # a command starts: imports, clients
seen["starting"] = gc.isenabled()
with heap.frozen():  # its work
    seen["work"] = gc.isenabled()
seen["after"] = gc.isenabled()
with heap.frozen():  # later work in the same process leaves collection as it is
    seen["again"] = gc.isenabled()
print(json.dumps(seen))
"""


def test_a_command_starts_without_collection_and_its_work_collects() -> None:
    """A short-lived command does not collect while it starts; its work (row checks, GX) does, so the
    garbage a long transfer makes is still collected (in a fresh interpreter: the switch is process-wide)."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", STARTING], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == {"before": True, "starting": False, "work": True, "after": True, "again": True}


def test_the_work_leaves_collection_off_where_the_embedding_program_turned_it_off() -> None:
    """Without ``starting`` (a Prefect worker, a program embedding handoff), the work does not turn on
    a collector its host turned off."""
    gc.disable()
    try:
        with heap.frozen():
            assert not gc.isenabled()
    finally:
        gc.enable()


def test_what_a_burst_of_imports_makes_during_the_work_stays_out_of_its_collections() -> None:
    """GX imports in the check thread once the work has begun: what that import makes lives as long
    as the process, so it joins what the work froze (a collection would walk it twice, for no
    garbage: 0.07-0.1 s of a 5,000-row transfer), and is handed back with it when the work ends."""
    with heap.frozen():
        before = gc.get_freeze_count()
        with heap.uncollected():
            made = [[i] for i in range(50_000)]  # stands in for the modules and classes an import makes
            assert not gc.isenabled()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + 50_000
        del made
    assert gc.get_freeze_count() == 0


def test_a_burst_outside_the_work_freezes_nothing() -> None:
    """Outside ``frozen`` (a fork server's preload freezes for itself) a burst only pauses collection:
    nothing is frozen that no block would hand back."""
    with heap.uncollected():
        made = [[i] for i in range(10_000)]
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
    del made


EARLY = """
import gc, json, sys
from handoff.extract import heap

seen = {"started": False}
real = heap.starting


def spy():
    seen.update(started=True, command_line_loaded="typer" in sys.modules or "handoff.cli.common" in sys.modules)
    real()


heap.starting = spy
import handoff.cli  # as the console script does, with this process's arguments

seen["collecting"] = gc.isenabled()
print(json.dumps(seen))
"""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status"], {"started": True, "command_line_loaded": False, "collecting": False}),
        (["release", "--json"], {"started": True, "command_line_loaded": False, "collecting": False}),
        (["hold", "show"], {"started": False, "collecting": True}),  # not one of them: as before
    ],
)
def test_the_commands_that_start_uncollected_do_so_before_the_command_line_loads(
    argv: list[str], expected: dict[str, bool], tmp_path: Path
) -> None:
    """``handoff status`` (and transfer, approve, release) turns collection off before importing Typer,
    the commands and their settings, not only once Typer calls it; other commands collect as usual."""
    import json
    import subprocess
    import sys

    script = tmp_path / "handoff"  # named as the console script is
    script.write_text(EARLY)
    out = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, timeout=120,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


def test_each_command_started_early_starts_uncollected_itself() -> None:
    """The early start changes only when collection stops: each of those commands still calls
    ``heap.starting`` itself (run from Prefect, a test or ``python -m``, it is the only call)."""
    import inspect

    import handoff.cli
    from handoff.cli.common import app

    callbacks = {c.name or c.callback.__name__: c.callback for c in app.registered_commands if c.callback}
    for name in handoff.cli.STARTING:
        assert "heap.starting()" in inspect.getsource(callbacks[name]), name
