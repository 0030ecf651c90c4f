"""The fork server the check worker processes are forked from, and whether to use them at all.

Importing Great Expectations takes seconds of CPU. With checks in worker processes, the fork
server imports it (and ``chunkcheck``) once, on another core, from the moment ``start_server``
is called; each worker is then forked from it with GX loaded. This module loads nothing heavy
itself, so a command can start the server before its own imports.

Workers are never forked from the calling process, whose threads (database driver, S3 client,
Prefect) make a plain ``fork`` unsafe.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

# What the fork server imports once, so that forked workers start with it loaded.
PRELOAD = ["handoff.checks.preload"]


def context() -> Any:
    import multiprocessing as mp  # here: every command imports this module (``main_by_name``)

    try:
        ctx = mp.get_context("forkserver")
    except ValueError:  # no fork server on this platform (Windows): each worker starts afresh
        return mp.get_context("spawn")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def main_by_name() -> None:
    """Let worker processes skip re-running the ``handoff`` console script.

    multiprocessing re-runs the parent's ``__main__`` in every worker it starts, by path when the
    main module has no ``__spec__``, as a console script has not. The script imports the whole
    command line (Typer, settings, SQLAlchemy): about half a second per worker, for nothing. Named
    as ``python -m handoff.cli`` would name it (which multiprocessing does not re-run), the
    script is what it stands for.
    """
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None and _is_console_script(main):
        main.__spec__ = importlib.util.find_spec("handoff.cli.__main__")


def console_script() -> bool:
    """Whether this process is the ``handoff`` console script (not a program that imported handoff)."""
    main = sys.modules.get("__main__")
    return main is not None and _is_console_script(main)


def _is_console_script(main: Any) -> bool:
    path = getattr(main, "__file__", None) or ""
    return os.path.basename(path) in ("handoff", "handoff.exe", "handoff-script.py")


def start_server(wait: bool = False) -> None:
    """Start the fork server now, so its imports overlap the caller's work (idempotent); with
    ``wait``, return once it has loaded them."""
    ctx = context()
    if ctx.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    forkserver.ensure_running()
    if wait:
        probe = ctx.Process(target=int)  # forked only once the server has imported PRELOAD
        probe.start()
        probe.join()


def start_for_transfer(argv: list[str]) -> bool:
    """When this process is ``handoff transfer`` and checks in worker processes (``use_processes``),
    start their fork server now, before the command line's own imports (Typer, Rich, the commands:
    about a quarter of a second), so that it starts importing GX that much sooner. Whether it started.

    Only for the console script, with ``transfer`` as its first argument and no ``--help``. The two
    settings are read as ``handoff.early_settings`` reads them; the command's own settings still
    decide (``cli.lifecycle``), and a configuration error is theirs to report.
    """
    if argv[1:2] != ["transfer"] or "--help" in argv or not console_script():
        return False
    from handoff import early_settings  # not ``handoff.config``: pydantic alone is a tenth of a second

    workers = early_settings.integer("workers") or early_settings.default_workers()
    if not use_processes(early_settings.flag("check_processes"), workers):
        return False
    main_by_name()  # before the server starts: it must not re-run the console script
    start_server()
    return True


def use_processes(setting: bool | None, workers: int) -> bool:
    """Whether to check in worker processes: as configured, else when the machine has cores to spare.

    With fewer than four cores the database's scans and handoff's own work already share the CPU,
    and a worker process costs its start-up and a copy of every chunk; threads win there (see the
    README's benchmark section).
    """
    if workers < 2:
        return False
    return setting if setting is not None else (os.cpu_count() or 1) >= 4
