"""The ``handoff`` command line: a thin layer over the library, one module per command group.

Every command has ``--help`` with an example; most have ``--json``. A user mistake prints one
line and exits 2; only a bug shows a traceback.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from handoff.extract import heap

heap.register_end()  # first, before anything registers an exit handler: it must run after all of them
from handoff.checks import server  # noqa: E402

server.start_for_transfer(sys.argv)  # before the imports below: the check workers' fork server, if any

# Commands that start without garbage collection (each calls ``heap.starting`` first thing): as the
# console script, from here, so that the command line's own imports are not collected either (about
# 90 young collections, 13-17 ms of each of these commands here, for no garbage).
STARTING = ("transfer", "approve", "release", "status")
if sys.argv[1:2] and sys.argv[1] in STARTING and server.console_script():
    heap.starting()

import typer  # noqa: E402

from handoff.cli import court, evidence, hold, lifecycle, policy, tools  # noqa: E402, F401 - registers the commands
from handoff.cli.common import app, err, out  # noqa: E402
from handoff.errors import HandoffError  # noqa: E402

_RETIRED_OPTIONS = {
    "--as": "no typed name decides anything any more: sign with --key KEY (or --statement, then --signature FILE)",
    "--initiator": "who started a transfer is the key that signed its request: pass --key KEY",
}


# Typer carries its own copy of click: reach its UsageError through a public subclass.
UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def app_for(argv: list[str]) -> typer.Typer:
    """The command line that runs ``argv``. When its first word names a command or group, only that
    one is built with the app's own options: building all ~60 (every parameter's annotation read) took
    0.02-0.04 s of every process here, for one. Anything else (global options first, ``--help``, a
    mistyped name) gets the whole command line, so its help and "no such command" list every command."""
    name = argv[1] if len(argv) > 1 else ""
    commands = [c for c in app.registered_commands
                if (c.name or typer.main.get_command_name(getattr(c.callback, "__name__", ""))) == name]  # fmt: skip
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    one = copy.copy(app)  # the same app (its callback, options and settings), with the one command
    one.registered_commands, one.registered_groups = commands, groups
    return one


def main() -> None:
    server.main_by_name()
    heap.skip_final_collection()
    try:
        _main()
    except SystemExit as exc:
        if server.console_script():  # a program that called main() ends as it chooses
            heap.end_when_done(exc.code)
        raise


def _main() -> None:
    try:
        code = typer.main.get_command(app_for(sys.argv)).main(prog_name="handoff", standalone_mode=False)
    except UsageError as exc:
        ctx: Any = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `handoff`, `handoff hold`
            out.print(ctx.get_help(), markup=False, highlight=False)
            sys.exit(2)
        retired = _RETIRED_OPTIONS.get(getattr(exc, "option_name", "") or "")
        where = f"handoff {ctx.command_path.removeprefix('handoff').strip()}".strip() if ctx else "handoff"
        message = exc.format_message()  # type: ignore[attr-defined]
        said = f"{message}: {retired}" if retired else f"{message} (see `{where} --help`)"
        err.print(f"error: {said}", style="red", markup=False, highlight=False)
        sys.exit(2)
    except typer.Abort:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except HandoffError as exc:
        err.print(f"error: {exc}", style="red", markup=False, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:
        if not type(exc).__module__.startswith("botocore"):
            raise  # a bug: the traceback is for us
        # S3 unreachable, no credentials, an endpoint that is not S3: the environment, not a bug.
        err.print(f"error: S3 could not be used ({type(exc).__name__}: {exc}); check AWS_ENDPOINT_URL_S3 (or "
                  "AWS_ENDPOINT_URL), the network and your AWS credentials", style="red", markup=False,
                  highlight=False)  # fmt: skip
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
