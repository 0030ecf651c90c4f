"""The tools: `seed`, `demo`, `bench`, and `serve` (Prefect deployments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from handoff.cli.common import (
    JsonOpt,
    _progress,
    app,
    emit_json,
    err,
    out,
    settings,
)
from handoff.errors import HandoffError


# ----- seed ---------------------------------------------------------------------------------
@app.command()
def seed(
    db: Annotated[
        str, typer.Option(help="Source database URL, e.g. sqlite:///source.db or postgresql+psycopg://user@host/db.")
    ],
    rows: Annotated[int, typer.Option(min=1, help="Enrollees to generate.")] = 10_000,
    seed_: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same data.")] = 42,
    replace: Annotated[bool, typer.Option(help="Drop and recreate existing enrollees/claims tables.")] = False,
    dirty_rate: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of rows given a dirty value.")] = 0.005,
) -> None:
    """Create a synthetic T-MSIS-style source (enrollees + claims). Synthetic data only.

    Example: handoff seed --db sqlite:///source.db --rows 100000 --seed 7
    """
    from handoff.extract.reader import open_source
    from handoff_tools.seed import seed_database

    engine = open_source(db, must_exist=False)
    with _progress() as bar:
        task = bar.add_task("seeding enrollees", total=rows)
        n = seed_database(engine, rows, seed_, replace=replace, dirty_rate=dirty_rate,
                          progress=lambda k: bar.advance(task, k))  # fmt: skip
    err.print(f"[green]seeded {n:,} enrollees[/] into {engine.url.render_as_string(hide_password=True)}")


# ----- demo / bench / serve -----------------------------------------------------------------
@app.command()
def demo(
    rows: Annotated[int, typer.Option(min=100, help="Synthetic enrollees to seed.")] = 20_000,
    keep: Annotated[
        bool,
        typer.Option(
            help="Keep the S3 endpoint up afterwards (until Ctrl-C or `handoff local "
            "down`) and print the environment that re-runs every command shown."
        ),
    ] = False,
) -> None:
    """Tell the whole story on embedded defaults: seed, held transfer, outcome, approval, delivery, lineage.

    Uses SQLite, a local S3-compatible endpoint with KMS on loopback, and DEMO keys; ends with the
    recipient's check against the published trust file, passing, then failing for a second batch
    sent after an insider swapped counsel's key on the sender's host.
    Everything lives under HANDOFF_HOME/demo and is recreated on each run.
    Example: handoff demo --rows 50000 --keep
    """
    from handoff_tools.demo import run_demo

    run_demo(settings(), rows, out, keep=keep)


@app.command()
def bench(
    db: Annotated[
        str, typer.Option(help="PostgreSQL URL to seed and read (created if missing).")
    ] = "postgresql+psycopg://postgres@127.0.0.1:5432/handoff_bench",
    rows: Annotated[
        list[int] | None, typer.Option(min=1000, help="Rows to seed; repeat for a scaling line (default 4,000,000).")
    ] = None,
    no_dlt: Annotated[bool, typer.Option("--no-dlt", help="Skip the dlt comparison.")] = False,
    chart: Annotated[
        Path | None,
        typer.Option(
            help="Write a PNG chart here: rows/s and peak RSS vs rows (with --processes: "
            "each process's seconds and peak RSS)."
        ),
    ] = None,
    repeat: Annotated[
        int,
        typer.Option(
            min=1,
            max=5,
            help="Run each SQL-level path and handoff this many times "
            "and keep the fastest (a machine whose speed wanders).",
        ),
    ] = 1,
    processes: Annotated[
        bool,
        typer.Option(
            "--processes",
            help="Time whole processes instead: a ConnectorX export vs `handoff transfer`, `approve` and `release` "
            "(median of --repeat, at least 3), at each --rows and at 5,000 rows, with `--help` and `status`.",
        ),
    ] = False,
    source_index: Annotated[
        bool,
        typer.Option(
            "--source-index",
            help="With --processes: measure each size again with `handoff source advise`'s index and statistics "
            "on the source (built, measured, dropped).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure rows/s and peak memory: raw floor vs dlt vs this governed path, side by side.

    Also measured: the floor without ORDER BY, and the floor plus the exclusion aggregate.
    The SQL-level bound: handoff's aggregate, the unsorted export and a sort in Arrow (and raw-grouped).
    The profile line shows where handoff's time went and, in its timeline, what the end waited for.
    With several --rows, each size gets its own database (NAME_ROWS) and a scaling line is printed.
    With --processes, every path is timed as the process a user runs (what a run costs before its first row).
    Example: handoff bench --rows 1000000 --rows 16000000 --chart bench.png
    """
    import sqlalchemy as sa

    if source_index and not processes:
        raise HandoffError("--source-index measures whole processes: add --processes")
    if processes:
        _bench_processes(db, rows or [], max(3, repeat), source_index, as_json, chart)
        return

    from handoff_tools import bench as bench_mod

    sizes = rows or [4_000_000]
    results = []
    for n in sizes:
        url = db
        if len(sizes) > 1:
            base = sa.engine.make_url(db)
            url = base.set(database=f"{base.database}_{n}").render_as_string(hide_password=False)
        results.append(bench_mod.run_bench(url, n, work_dir=settings().home / "bench", include_dlt=not no_dlt,
                                           progress=lambda m: err.print(m, markup=False), repeat=repeat))  # fmt: skip
    if chart:
        bench_mod.plot(results, chart)
    if as_json:
        emit_json(results[0] if len(results) == 1 else results)
        return
    for r in results:
        out.print(bench_mod.render_table(r))
        out.print(bench_mod.profile_line(r), markup=False)
    if len(results) > 1:
        out.print(bench_mod.scaling_line(results), markup=False)


def _bench_processes(db: str, rows: list[int], repeat: int, source_index: bool, as_json: bool,
                     chart: Path | None) -> None:  # fmt: skip
    """``bench --processes``: every path as its own process; the table and the fixed-cost line, or JSON;
    with ``chart``, a PNG of each process's seconds and peak RSS."""
    from handoff_tools import bench_processes
    from handoff_tools.bench_report import plot_processes

    result = bench_processes.run_processes(db, rows, settings().home / "bench-processes", repeat=repeat,
                                           progress=lambda m: err.print(m, markup=False),
                                           source_index=source_index)  # fmt: skip
    if chart:
        plot_processes(result, chart)
    if as_json:
        emit_json(result)
        return
    out.print(bench_processes.render(result))
    out.print(bench_processes.fixed_line(result), markup=False)


@app.command()
def serve(
    db: Annotated[
        str | None,
        typer.Option(
            help="Source database URL, without a password (it would be stored in the deployment's parameters in clear)."
        ),
    ] = None,  # fmt: skip
    db_env: Annotated[
        str | None,
        typer.Option(
            help="Or: the name of an environment variable on the worker that holds the source URL, password included."
        ),
    ] = None,  # fmt: skip
    db_secret: Annotated[
        str | None,
        typer.Option(help="Or: the name of a Prefect Secret block holding the source URL, password included."),
    ] = None,  # fmt: skip
    bucket: Annotated[str | None, typer.Option(help="Recipient S3 bucket (env HANDOFF_BUCKET).")] = None,
    group: Annotated[
        list[str] | None, typer.Option(help="Jurisdiction group NAME=ST,ST (repeatable); default one group 'all'.")
    ] = None,
    transfer_cron: Annotated[str, typer.Option(help="Cron for transfers, in the court's time zone.")] = "0 2 * * *",
    release_cron: Annotated[str, typer.Option(help="Cron for release runs.")] = "0 * * * *",
    approval_timeout: Annotated[
        int, typer.Option(help="Seconds a run waits for approval before leaving the batch awaiting.")
    ] = 3600,
) -> None:
    """Serve the transfer (daily, per jurisdiction group, incremental) and release (hourly) deployments.

    The deployments reference the source's credentials, never embed them: give --db-env VAR (read
    on the worker at run time) or --db-secret BLOCK; a --db URL with a password is refused.
    Needs a Prefect API (PREFECT_API_URL). Example: handoff serve --db-env HANDOFF_SOURCE_DB_URL --group west=CA,OR,WA
    """
    from handoff.state.source_ref import reference

    source = reference(db, db_env, db_secret)
    groups: dict[str, list[str]] = {}
    for g in group or []:
        name, sep, states = g.partition("=")
        if not sep or not name.strip():
            raise HandoffError(f"--group {g!r} should look like west=CA,OR,WA")
        groups[name.strip()] = [s.strip().upper() for s in states.split(",") if s.strip()]
    from flows.serve import serve_all

    serve_all(source, bucket or settings().bucket, groups or {"all": []}, transfer_cron=transfer_cron,
              release_cron=release_cron, approval_timeout_s=approval_timeout)  # fmt: skip


local_app = typer.Typer(help="A local S3 + KMS endpoint with handoff's buckets, for trying handoff without AWS.",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(local_app, name="local")


@local_app.command("up")
def local_up() -> None:
    """Start the local S3 + KMS endpoint, create a versioned handoff bucket, an Object Lock audit bucket and
    a KMS key, print the environment to export (also written to HOME/local.env), and stay up until stopped.

    Example: handoff local up   (then, in another shell: source .handoff/local.env)
    """
    from handoff_tools.local_stack import up

    up(settings().home, say=lambda line: out.print(line, markup=False, highlight=False, soft_wrap=True))


@local_app.command("down")
def local_down() -> None:
    """Stop the local stack `handoff local up` started (its buckets are forgotten).

    Example: handoff local down
    """
    from handoff_tools.local_stack import down

    out.print(f"stopped the local stack (pid {down(settings().home)})")
