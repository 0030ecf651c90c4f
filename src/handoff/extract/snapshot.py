"""A consistent read of the source: the rows that leave and the counts that explain them.

Two implementations with one interface:

* ``PortableRead`` (SQLite, MariaDB, any dialect): fixes an upper watermark first, counts, then
  streams rows through SQLAlchemy.
* ``PostgresSnapshot`` (PostgreSQL with the ADBC driver): exports one REPEATABLE READ snapshot,
  runs the aggregate on it in a background thread while ADBC streams the rows in Arrow from
  the same snapshot (binary COPY under the hood). Both reads see exactly the same data, so
  no watermark pre-scan is needed and the count check is exact.

ADBC streams only statements without bind parameters, so the fast path renders SQLAlchemy's
statement with literal values. The only literals are the order's codes (validated to
``[A-Za-z0-9]``), FIPS codes and the incremental watermark, all rendered by SQLAlchemy's own
dialect literal processors; nothing user-typed reaches the SQL text.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from handoff.errors import SourceError
from handoff.extract import reader as extract
from handoff.policy.order import Order

_SAFE_LITERAL = re.compile(r"^[A-Za-z0-9_ :.\-]*$")


class SourceRead(Protocol):
    plan: extract.ExtractPlan
    kind: str  # which path read the source, for the transfer's report

    def counts(self) -> tuple[dict[str, dict[str, int]], dt.datetime | None]: ...

    def counted(self) -> dict[str, dict[str, int]] | None:
        """The counts if they are known already (never waits), for progress totals."""
        ...

    def chunks(self, chunk_rows: int) -> Iterator[pa.Table]: ...

    def close(self) -> None: ...


def fast_path_available(engine: Engine) -> bool:
    if engine.dialect.name != "postgresql":
        return False
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
    except ImportError:
        return False
    return True


class PortableRead:
    kind = "portable: counts, then rows, through SQLAlchemy"

    """Counts, then rows, each through SQLAlchemy.

    ``bounded`` (and no ``watermark`` given): the aggregate runs first and its newest change
    becomes the upper watermark of the row query, so counts and rows describe the same cut
    with two scans, not a watermark scan besides.
    """

    def __init__(
        self, engine: Engine, order: Order, fips: list[str] | None, since: dt.datetime | None,
        watermark: dt.datetime | None = None, key_range: tuple[str | None, str | None] | None = None,
        bounded: bool = True, parallel: int | None = None,
    ) -> None:  # fmt: skip
        self.engine, self.order, self.fips, self.parallel = engine, order, fips, parallel
        self._counts: dict[str, dict[str, int]] | None = None
        self.plan = extract.plan(engine, order, fips, since, watermark=watermark, key_range=key_range)
        if bounded and watermark is None:
            self._counts, newest = self._count(None)
            self.plan = extract.plan(engine, order, fips, since, watermark=newest, key_range=key_range,
                                     table=self.plan.table, raw=self.plan.raw,
                                     scope_indexed=self.plan.scope_indexed)  # fmt: skip

    def _setup(self, conn: sa.Connection) -> sa.Connection:
        if self.engine.dialect.name == "postgresql":
            for statement in session_setup(self.parallel):
                conn.exec_driver_sql(statement)
        return conn

    def _count(self, until: dt.datetime | None) -> tuple[dict[str, dict[str, int]], dt.datetime | None]:
        stmt = self.plan.counts(self.order, self.fips, until)
        with self.engine.connect() as conn:
            return extract.read_counts(self._setup(conn), stmt)

    def counts(self) -> tuple[dict[str, dict[str, int]], dt.datetime | None]:
        if self._counts is None:
            self._counts = self._count(self.plan.watermark)[0]
        return self._counts, self.plan.watermark

    def counted(self) -> dict[str, dict[str, int]] | None:
        return self._counts

    def chunks(self, chunk_rows: int) -> Iterator[pa.Table]:
        with self.engine.connect() as conn:
            yield from extract.stream_on(self._setup(conn), self.order, self.plan.statement, chunk_rows)

    def close(self) -> None:
        self.engine.dispose()


def literal_sql(statement: sa.ClauseElement, engine: Engine) -> str:
    """Render a statement (or clause) with literal values, refusing any literal outside the safe set."""
    compiled = statement.compile(dialect=engine.dialect)
    for name, value in compiled.params.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            text = item.isoformat(sep=" ") if isinstance(item, dt.datetime) else str(item)
            if not _SAFE_LITERAL.match(text):
                raise SourceError(f"refusing to inline parameter {name}: unexpected characters")
    return str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


def libpq_uri(url: sa.engine.URL) -> str:
    """``postgresql+psycopg://…`` → ``postgresql://…`` for libpq-style clients (ADBC, ConnectorX, psycopg).

    The query is percent-encoded: SQLAlchemy writes a space as ``+``, which libpq keeps as a plus, so
    ``options=-c a=1 -c b=2`` reached ADBC's session as one broken setting."""
    from urllib.parse import quote

    text = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    pairs = [(k, v) for k, values in url.query.items() for v in ((values,) if isinstance(values, str) else values)]
    return text + ("?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs) if pairs else "")


class PostgresSnapshot:
    """Counts and rows from one exported PostgreSQL snapshot; counts run concurrently."""

    kind = "PostgreSQL snapshot, rows through ADBC"

    def __init__(
        self, engine: Engine, order: Order, fips: list[str] | None, since: dt.datetime | None,
        key_range: tuple[str | None, str | None] | None = None, snapshot_id: str | None = None,
        parallel: int | None = None,
    ) -> None:  # fmt: skip
        """Export a snapshot and count on it concurrently, or join ``snapshot_id`` (a partition)."""
        self.engine, self.order, self.fips, self.parallel = engine, order, fips, parallel
        self.plan = extract.plan(engine, order, fips, since, key_range=key_range)
        self._result: tuple[dict[str, dict[str, int]], dt.datetime | None] | None = None
        self._error: BaseException | None = None
        self.conn: sa.Connection | None = None
        self._rows: tuple[Any, Any] | None = None  # ADBC connection and cursor on the snapshot
        if snapshot_id is not None:
            self.snapshot_id = snapshot_id
            self._result = ({}, None)
            self._thread = threading.Thread(target=lambda: None)
            self._thread.start()
            return
        self.conn = engine.connect()
        self.snapshot_id = export_snapshot(self.conn, parallel)
        # The row session is opened before the aggregate starts: connecting (ADBC reads the type
        # catalogue) took 0.2-0.3 s once the aggregate and GX warm-up had the CPU, 0.05 s before.
        try:
            self._rows = self._open_rows()
        except BaseException:
            self.conn.close()
            raise
        stmt = self.plan.counts(order, fips)
        self._thread = threading.Thread(target=self._count, args=(stmt,), name="handoff-counts", daemon=True)
        self._thread.start()

    def _count(self, stmt: extract.CountsQuery) -> None:
        assert self.conn is not None
        try:
            self._result = extract.read_counts(self.conn, stmt)
        except BaseException as exc:  # noqa: BLE001 - re-raised in counts()
            self._error = exc

    def counted(self) -> dict[str, dict[str, int]] | None:
        if self._thread.is_alive() or self._result is None:
            return None
        return self._result[0]

    def counts(self) -> tuple[dict[str, dict[str, int]], dt.datetime | None]:
        self._thread.join()
        if isinstance(self._error, SourceError):  # already one line that names no value
            raise self._error
        if self._error is not None:
            # The driver's message may quote a value from the source: name the error, never the value.
            code = getattr(getattr(self._error, "orig", self._error), "sqlstate", None)
            raise SourceError(f"counting exclusions failed: {type(self._error).__name__}"
                              + (f" (SQLSTATE {code})" if code else "") + "; check the source table") from None  # fmt: skip
        assert self._result is not None
        counts, newest = self._result
        self.plan.watermark = newest
        return counts, newest

    def _open_rows(self) -> tuple[Any, Any]:
        """An ADBC session that has joined the snapshot, ready for the row query."""
        import adbc_driver_postgresql.dbapi as adbc

        conn = adbc.connect(libpq_uri(self.engine.url))
        try:
            cur = conn.cursor()
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute(f"SET TRANSACTION SNAPSHOT '{self.snapshot_id}'")
            for statement in session_setup(self.parallel):
                cur.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn, cur

    def _close_rows(self) -> None:
        if self._rows is not None:
            conn, cur = self._rows
            self._rows = None
            try:
                cur.close()
            finally:
                conn.close()

    def chunks(self, chunk_rows: int) -> Iterator[pa.Table]:
        schema = extract.arrow_schema(self.order)
        sql = literal_sql(self.plan.statement, self.engine)
        if self._rows is None:
            self._rows = self._open_rows()
        try:
            cur = self._rows[1]
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            yield from rechunk(reader, schema, chunk_rows)
        finally:
            self._close_rows()

    def close(self) -> None:
        self._close_rows()
        self._thread.join()
        if self.conn is None:
            self.engine.dispose()
            return
        try:
            self.conn.rollback()
        finally:
            self.conn.close()
            self.engine.dispose()


# PostgreSQL's JIT compiles a query's expressions before running it. For these scans it costs far
# more than it saves: measured on 4M rows, the exclusion aggregate took 1.74 s with JIT (1.6 s of it
# compiling, in three processes) and 1.29 s without; the row query 0.87 s and 0.64 s.
# Written as set_config so a PostgreSQL-compatible server without the setting is left alone
# instead of failing the transaction; ``true`` makes it local to the transaction (SET LOCAL).
NO_JIT = "SELECT set_config('jit', 'off', true) WHERE current_setting('jit', true) IS NOT NULL"


def session_setup(parallel: int | None) -> list[str]:
    """What every PostgreSQL source session runs first: JIT off and how many parallel workers each scan
    may use (``extract.parallel``; None: the server's), local to the transaction."""
    setup = [NO_JIT]
    if parallel is not None:
        setup.append(f"SELECT set_config('max_parallel_workers_per_gather', '{int(parallel)}', true)")
    return setup


def export_snapshot(conn: sa.Connection, parallel: int | None = None) -> str:
    """Start a REPEATABLE READ transaction on ``conn`` and export its snapshot for other sessions."""
    conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    for statement in session_setup(parallel):
        conn.exec_driver_sql(statement)
    return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar())


def rechunk(batches: Any, schema: pa.Schema, chunk_rows: int) -> Iterator[pa.Table]:
    """Re-cut a stream of record batches into tables of exactly ``chunk_rows`` (last one shorter).

    Chunks then match the portable path's, so both paths write byte-identical files.
    """
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        # Named as the order names them, typed as the source sent them: ``readable`` types them (a
        # cast here would raise on a bad value, with the value in its message).
        batch = pa.RecordBatch.from_arrays(batch.columns, names=schema.names)
        schema = batch.schema
        pending.append(batch)
        size += batch.num_rows
        while size >= chunk_rows:
            table = pa.Table.from_batches(pending, schema=schema)
            yield table.slice(0, chunk_rows).combine_chunks()
            rest = table.slice(chunk_rows)
            pending = rest.to_batches() if rest.num_rows else []
            size = rest.num_rows
    if size:
        yield pa.Table.from_batches(pending, schema=schema).combine_chunks()


def open_read(
    engine: Engine, order: Order, fips: list[str] | None, since: dt.datetime | None, fast: bool = True, *,
    watermark: dt.datetime | None = None, key_range: tuple[str | None, str | None] | None = None,
    snapshot_id: str | None = None, parallel: int | None = None,
) -> SourceRead:  # fmt: skip
    """The fast snapshot read on PostgreSQL with ADBC, the portable read elsewhere."""
    if fast and fast_path_available(engine):
        return PostgresSnapshot(engine, order, fips, since, key_range, snapshot_id, parallel)
    return PortableRead(engine, order, fips, since, watermark, key_range, parallel=parallel)
