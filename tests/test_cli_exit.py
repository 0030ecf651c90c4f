"""A command (or a Prefect flow-run process) ends when its work is done: the interpreter's last
garbage collection, half a second once GX is loaded, is skipped; every exit handler still runs and
the output is complete."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import atexit, sys
    marker = sys.argv[1]
    sys.argv = ["handoff", "--help"]

    class Cycle:  # kept alive by a cycle once this module is cleared at exit
        def __init__(self):
            self.me = self

        def __del__(self, _open=open, _marker=marker):
            with _open(_marker, "a") as fh:
                fh.write("collected at exit\\n")

    KEEP = Cycle()
    atexit.register(lambda: open(marker, "a").write("exit handler ran\\n"))
    from handoff.cli import main

    main()
    """
)


def test_the_command_exits_without_the_final_collection_and_still_runs_exit_handlers(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(marker)], capture_output=True, text=True, timeout=120,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Usage" in out.stdout and "transfer" in out.stdout  # the help, flushed in full
    assert marker.read_text() == "exit handler ran\n"


def test_without_the_command_the_interpreter_collects_at_exit(tmp_path: Path) -> None:
    """The control: the same script, not running the command, has its cycle collected at exit."""
    marker = tmp_path / "marker"
    script = SCRIPT.replace("from handoff.cli import main\n\nmain()", "")
    out = subprocess.run([sys.executable, "-c", script, str(marker)], capture_output=True, text=True, timeout=120,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(marker.read_text().splitlines()) == ["collected at exit", "exit handler ran"]


def test_a_prefect_flow_run_process_also_exits_without_the_final_collection(tmp_path: Path) -> None:
    """Prefect's process worker starts a process per flow run; the release flow (its work stubbed out
    here: nothing to release) leaves that process to end the same way."""
    marker = tmp_path / "marker"
    script = SCRIPT.replace(
        "from handoff.cli import main\n\nmain()",
        "import flows.release as release\n\nrelease.release_task = lambda: ([], [])\n"
        "print(release.release_flow.fn().name)",
    )
    out = subprocess.run([sys.executable, "-c", script, str(marker)], capture_output=True, text=True, timeout=300,
                         check=False, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "Completed"
    assert marker.read_text() == "exit handler ran\n"
