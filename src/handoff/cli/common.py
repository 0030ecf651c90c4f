"""What every command shares: the Typer apps, the consoles, settings, signing and printing an outcome."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from handoff.config import Settings, load_settings
from handoff.terminal import SafeConsole, plain

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(
    help="Move only what a court permitted, only when permitted, only after a person with the authority signed it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Show, build and test the court-order policy.", no_args_is_help=True)
court_app = typer.Typer(help="The court calendar: hearings and their outcomes.", no_args_is_help=True)
hearing_app = typer.Typer(help="Add and list hearings.", no_args_is_help=True)
hold_app = typer.Typer(help="Emergency stop: holds every release and stops a delivery in flight.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify the ledger; list disclosures.", no_args_is_help=True)
trust_app = typer.Typer(help="The reviewed trust file: who may sign what.", no_args_is_help=True)
source_app = typer.Typer(help="The source database, from the agency DBA's side (handoff only reads it).",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(policy_app, name="policy")
app.add_typer(court_app, name="court")
court_app.add_typer(hearing_app, name="hearing")
app.add_typer(hold_app, name="hold")
app.add_typer(audit_app, name="audit")
app.add_typer(trust_app, name="trust")
app.add_typer(source_app, name="source")

# Piped output keeps whole lines: wide tables are not truncated and an error stays one line.
# Every string they render is cleaned of control and escape sequences (handoff.terminal); a value from
# outside inside a markup line also goes through plain().
out = SafeConsole(width=None if sys.stdout.isatty() else 200)
err = SafeConsole(stderr=True, width=None if sys.stderr.isatty() else 10_000)
_overrides: dict[str, Any] = {}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key", help="Sign here with this SSH key (a private key, or its .pub with the key loaded in ssh-agent)."
    ),
]
SignatureOpt = Annotated[
    Path | None,
    typer.Option(
        "--signature", help="A signature made elsewhere: `ssh-keygen -Y sign -n NAMESPACE -f KEY FILE` writes FILE.sig."
    ),
]
SignedOpt = Annotated[
    Path | None,
    typer.Option(
        "--signed", help="The statement file --signature covers (default: the signature's path without .sig)."
    ),
]
StatementOpt = Annotated[
    bool,
    typer.Option("--statement", help="Print the exact statement to sign (canonical JSON) and exit; sign it elsewhere."),
]


def settings() -> Settings:
    return load_settings(**_overrides)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _signed(doc: dict[str, Any], statement: bool, key: Path | None, signature: Path | None,
            signed: Path | None) -> Any:  # fmt: skip
    """Print the statement (``--statement``) and exit, or return it signed (``--key``/``--signature``)."""
    from handoff.signing import statement as st

    if statement:
        data = st.canonical(doc)
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        err.print(f"sign it: ssh-keygen -Y sign -n {st.NAMESPACE[doc['kind']]} -f ~/.ssh/id_ed25519 FILE  "
                  "(then pass --signature FILE.sig)", markup=False, highlight=False)  # fmt: skip
        raise typer.Exit(0)
    return st.obtain(doc, key, signature, signed)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"


@app.callback()
def _main(
    home: Annotated[
        Path | None, typer.Option(help="State and staging folder (env HANDOFF_HOME; default ./.handoff).")
    ] = None,
    state_url: Annotated[str | None, typer.Option(help="State database URL (env HANDOFF_STATE_URL).")] = None,
    policy_dir: Annotated[
        Path | None, typer.Option(help="Policy folder with orders/ and suites/ (env HANDOFF_POLICY_DIR).")
    ] = None,
) -> None:
    """Court-governed transfer of Medicaid enrollee records to an S3 handoff bucket.

    Configuration order: flags, HANDOFF_* environment variables, handoff.toml, defaults.
    """
    _overrides.update(home=home, state_url=state_url, policy_dir=policy_dir)


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # long work only

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)  # fmt: skip


# ----- transfer lifecycle --------------------------------------------------------------------
def _lifecycle():  # type: ignore[no-untyped-def]
    from handoff.transfer import Lifecycle

    return Lifecycle(settings())


def _print_outcome(o: Any, with_error: bool = True) -> None:
    b = o.batch
    colour = {"delivered": "green", "quarantined": "red", "held": "yellow", "rejected": "red", "failed": "red",
              "withdrawn": "magenta"}.get(b.status, "cyan")  # fmt: skip
    out.print(f"batch [bold]{plain(b.id)}[/]  [{colour}]{plain(b.status)}[/]  ({plain(b.order_ref)})")
    out.print(
        f"  rows: {b.rows_extracted:,} extracted, {b.rows_quarantined:,} row-quarantined, {b.rows_staged:,} staged"
    )
    excl = b.excluded.get("totals", {})
    if excl:
        out.print("  excluded by reason: " + plain(", ".join(f"{k}={v:,}" for k, v in sorted(excl.items()))))
    if b.validation.get("read_path"):
        out.print(f"  read: {plain(b.validation['read_path'])}")
    if b.validation.get("checked_in"):
        out.print(f"  checked (GX): in {plain(b.validation['checked_in'])}")
    if b.status_reason:
        out.print(f"  why: {plain(b.status_reason)}")
    if o.gates:
        from handoff.release.report import gate_table

        out.print(gate_table(o.gates))
    if o.manifest_key:
        out.print(f"  manifest: s3://{plain(b.bucket)}/{plain(o.manifest_key)}")
    if with_error and getattr(o, "error", None):
        out.print(f"  [red]delivery failed:[/] {plain(o.error)}")
