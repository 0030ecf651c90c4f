"""A command (or a Prefect flow-run process) ends when its work is done: the interpreter's last
garbage collection, half a second once GX is loaded, is skipped, and the console script ends once its
exit handlers ran, without tearing down every module; every exit handler still runs, the output is
complete and the exit status is the command's."""

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


CONSOLE = textwrap.dedent(
    """
    import atexit, importlib, runpy, sys
    marker, script, *args = sys.argv[1:]


    class Torn:  # held only by a module that nothing else refers to: the interpreter's teardown frees it
        def __del__(self, _open=open, _marker=marker):
            with _open(_marker, "a") as fh:
                fh.write("torn down\\n")


    if args[0] == "early":  # an exit handler registered before handoff's command line is imported
        atexit.register(lambda: open(marker, "a").write("early handler ran\\n"))
        args = args[1:]
    import handoff.cli
    atexit.register(lambda: open(marker, "a").write("exit handler ran\\n"))  # as a library does later
    importlib.import_module("holder").KEEP = Torn()
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")  # the console script, as its file
    """
)


def _console(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    marker = tmp_path / "marker"
    (tmp_path / "holder.py").write_text("KEEP = None\n")
    script = Path(sys.executable).with_name("handoff")
    out = subprocess.run([sys.executable, "-c", CONSOLE, str(marker), str(script), *args], capture_output=True,
                         text=True, timeout=120, check=False, cwd=tmp_path)  # fmt: skip
    return out, sorted(marker.read_text().splitlines()) if marker.exists() else []


def test_the_console_script_ends_once_every_exit_handler_ran(tmp_path: Path) -> None:
    """The ``handoff`` command ends as soon as its exit handlers (its own and its libraries') have run,
    without tearing down every module and object (0.03-0.05 s after a transfer here): the output is
    complete and the exit status is the command's, for success and for a user mistake alike."""
    out, marks = _console(tmp_path, "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Usage" in out.stdout and "transfer" in out.stdout and out.stdout.rstrip().endswith("╯")
    assert marks == ["exit handler ran"], "the handler ran; the teardown (which frees what holder held) did not"
    (tmp_path / "marker").unlink()
    out, marks = _console(tmp_path, "transfr")
    assert out.returncode == 2 and out.stderr.startswith("error: No such command 'transfr'"), out.stderr
    assert marks == ["exit handler ran"]


def test_an_exit_handler_registered_before_the_command_line_keeps_the_usual_end(tmp_path: Path) -> None:
    """A handler registered before handoff's command line was imported would run after the early end,
    so there is none: the interpreter ends as usual and every handler runs."""
    out, marks = _console(tmp_path, "early", "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert marks == ["early handler ran", "exit handler ran", "torn down"]
