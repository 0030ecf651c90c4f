"""The benchmark's source: a PostgreSQL database per size, seeded once (a marker table says with what),
and the statements every measured path runs, as literal SQL."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from handoff_tools.bench_children import MARKER_TABLE, SOURCE_TABLE

if TYPE_CHECKING:
    from handoff.policy.order import Order

Progress = Callable[[str], None]


def ensure_database(url: sa.engine.URL) -> None:
    """Create the benchmark's PostgreSQL database when it does not exist yet."""
    from handoff.errors import SourceError

    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).first()
            if not exists:
                # A bench beside this one may have made it meanwhile: then it exists, which is all this needs.
                with contextlib.suppress(sa.exc.IntegrityError, sa.exc.ProgrammingError):
                    conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    except sa.exc.OperationalError as exc:
        raise SourceError(
            f"cannot reach PostgreSQL at {url.render_as_string(hide_password=True)}: {exc.orig}"
        ) from None
    finally:
        admin.dispose()


def _seeded_already(engine: sa.Engine, rows: int, seed: int) -> bool:
    insp = sa.inspect(engine)
    if not (insp.has_table(SOURCE_TABLE) and insp.has_table(MARKER_TABLE)):
        return False
    with engine.connect() as conn:
        marker = conn.exec_driver_sql(f'SELECT seed, "rows" FROM "{MARKER_TABLE}"').all()
        if [tuple(r) for r in marker] != [(seed, rows)]:
            return False
        count = conn.exec_driver_sql(f'SELECT count(*) FROM "{SOURCE_TABLE}"').scalar()
    return count == rows


def ensure_seeded(engine: sa.Engine, rows: int, seed: int, progress: Progress | None = None) -> bool:
    """Seed ``rows`` enrollees unless the marker says this exact (rows, seed) is there. True if seeded."""
    from handoff_tools.seed import seed_database

    if _seeded_already(engine, rows, seed):
        return False
    with engine.begin() as conn:  # no stale marker if seeding is interrupted
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{MARKER_TABLE}"')
    if progress:
        progress(f"seeding {rows:,} rows (seed {seed})")
    seed_database(engine, rows, seed, replace=True)
    with engine.connect() as conn:
        # Set hint bits and the visibility map now, so the first measured scan is not penalised.
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f'VACUUM ANALYZE "{SOURCE_TABLE}"')
    settle(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{MARKER_TABLE}" (seed bigint NOT NULL, "rows" bigint NOT NULL, '
                             "seeded_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        conn.exec_driver_sql(f'INSERT INTO "{MARKER_TABLE}" (seed, "rows") VALUES ({int(seed)}, {int(rows)})')
    return True


def settle(engine: sa.Engine) -> bool:
    """Write out what seeding (or an index build) left in PostgreSQL's buffers now, with a CHECKPOINT,
    so that the checkpointer does not write gigabytes beside the first measured try (on this 2-core
    machine the first 8M transfer after seeding took 8.6 s, the next ones 6.5-7.9 s). Needs
    superuser or ``pg_checkpoint``; without either the bench goes on unsettled. True if it ran."""
    try:
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")
    except sa.exc.DBAPIError:
        return False
    return True


def statements(engine: sa.Engine, order: Order) -> dict[str, str]:
    """The SQL every path runs, as literal text: the extractor's statement for the current order
    (all in-scope jurisdictions, no watermark bound: the fast path's snapshot is the cut), the same
    sorted by the server (the earlier design), and the exclusion accounting in both forms."""
    from handoff.extract import reader as extract
    from handoff.extract.snapshot import literal_sql

    the_plan = extract.plan(engine, order, None)
    stmt = the_plan.statement
    id_col = the_plan.table.c[order.source.id_column]
    case = extract.counts_statement(the_plan.table, order, the_plan.fips, form="case")  # per-row CASE
    raw = extract.counts_statement(the_plan.table, order, the_plan.fips, raw=the_plan.raw)  # reason per group
    coded = extract.counts_statement(the_plan.table, order, the_plan.fips, raw=the_plan.raw, form="coded")
    forms = {"coded": ("coded (CASE per row)", coded), "raw-grouped": ("raw-grouped", raw)}
    mine = extract.counts_form(engine)
    (label, counts), (other_label, other) = forms.pop(mine), next(iter(forms.values()))
    return {
        "form": label,  # the aggregate handoff runs on this database
        "counts_sql": literal_sql(counts.statement, engine),
        "other_form": other_label,
        "other_sql": literal_sql(other.statement, engine),
        "sql": literal_sql(stmt, engine),  # what handoff runs: no ORDER BY
        "sorted_sql": literal_sql(stmt.order_by(id_col), engine),
        "case_sql": literal_sql(case.statement, engine),
        "where_sql": literal_sql(stmt.whereclause, engine) if stmt.whereclause is not None else "",
        "order_sql": literal_sql(id_col, engine),
    }
