"""Extract, validate and stage one batch: the part that decides *what* may leave.

Plain Python, no Prefect: ``flows/transfer.py`` wraps these steps as tasks. Fails closed:
one failed GX chunk quarantines the whole batch, and a mismatch between the aggregate
count and the rows actually read does too.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import sqlalchemy as sa

from handoff.checks import deferred
from handoff.checks.chunkcheck import Checked, Checker, CheckProcesses, checked, take_chunks
from handoff.checks.server import start_server, use_processes
from handoff.checks.validate import Failure
from handoff.config import Settings
from handoff.errors import SourceError
from handoff.extract import heap
from handoff.extract import reader as extract
from handoff.extract.parallel import scan_workers
from handoff.extract.snapshot import SourceRead, open_read
from handoff.extract.sortmerge import SortedRuns
from handoff.extract.stage import StagedFile, Stager, parquet_bytes
from handoff.policy.order import Order, PolicySet
from handoff.policy.population import INCLUDED
from handoff.policy.source_model import state_fips
from handoff.policy.suite import SuiteDoc, load_suite, suite_hash
from handoff.signing.statement import Signed
from handoff.state import batch as batches
from handoff.state.schema import open_state, row_quarantine

# ADBC's DB-API module imports ``pyarrow.dataset`` for a bulk ingest handoff never runs, and that imports
# pandas: about 0.2 s before the snapshot's row query can start. Deferred, pandas is first imported by
# GX in the check thread, while the database scans.
UNUSED_BY_ADBC = ("pyarrow.dataset",)
deferred.defer(UNUSED_BY_ADBC)

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (rows done, rows expected)


@dataclass(frozen=True)
class StageRequest:
    """What to stage. ``Lifecycle.transfer`` fills the initiator from the signed transfer request."""

    source_url: str
    states: list[str] = field(default_factory=list)
    initiator: str = "unknown"
    order_ref: str | None = None
    since: dt.datetime | None = None
    flow_run_id: str | None = None
    bucket: str | None = None  # where the batch is to be delivered, recorded with it
    incremental: bool = False
    batch_id: str | None = None  # the id the signed request names
    signed: Signed | None = None  # the operator's signed transfer request
    initiator_key: str | None = None


@dataclass
class Prepared:
    request: StageRequest
    order: Order
    suite: SuiteDoc
    suite_hash: str
    read: SourceRead
    snapshot: dt.datetime
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def plan(self) -> extract.ExtractPlan:
        return self.read.plan

    @property
    def expected_rows(self) -> int:
        return included(self.counts)


def included(counts: dict[str, dict[str, int]] | None) -> int:
    """Rows the aggregate counted as included (0 while unknown)."""
    return sum(r.get(INCLUDED, 0) for r in (counts or {}).values())


@dataclass
class ChunkOutcome:
    files: list[StagedFile] = field(default_factory=list)
    rows_extracted: int = 0
    rows_quarantined: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    by_rule: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    chunks: int = 0
    evaluated: int = 0
    checked_by: set[int] = field(default_factory=set)  # process ids that ran the checks

    def absorb(self, got: Checked, parts: int, runs: SortedRuns) -> None:
        """Count one checked unit of ``parts`` chunks; spill its passing rows (already in id order)
        as a run while no unit has failed."""
        self.chunks += parts
        self.checked_by.add(got.pid)
        self.rows_extracted += got.rows
        self.rows_quarantined += got.diverted.rows
        self.quarantined.extend(got.diverted.entries)
        self.by_rule.update(got.diverted.by_rule)
        if got.verdict is None:
            return
        self.evaluated += got.verdict.evaluated
        if not got.verdict.passed:
            self.failures.extend(got.verdict.failures)
        elif got.clean is not None and not self.failures:
            runs.add(got.clean, presorted=True)

    @property
    def checked_in(self) -> str:
        """Where GX ran, for the report: worker processes (one core each) or this process."""
        workers = self.checked_by - {os.getpid()}
        return f"{len(workers)} worker process{'es' if len(workers) != 1 else ''}" if workers else "this process"


def new_batch_id(now: dt.datetime) -> str:
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def parse_states(values: list[str]) -> list[str]:
    try:
        return sorted({state_fips(v) for v in values})
    except ValueError as exc:
        raise SourceError(str(exc)) from None


def load(settings: Settings, request: StageRequest) -> tuple[Order, SuiteDoc, sa.Engine, list[str] | None]:
    """The order in force (or asked for), its suite, the source engine and the requested FIPS codes."""
    policies = PolicySet(settings.policy_dir)
    order = policies.current(request.order_ref)
    suite = load_suite(policies, order)
    engine = extract.open_source(request.source_url)
    fips = parse_states(request.states) if request.states else None
    return order, suite, engine, fips


def prepare(settings: Settings, request: StageRequest, now: dt.datetime) -> Prepared:
    """Load the order and its suite and open a consistent read of the source."""
    order, suite, engine, fips = load(settings, request)
    parallel = scan_workers(settings.source_parallel, engine.url)
    read = open_read(engine, order, fips, request.since, fast=settings.fast_path, parallel=parallel)
    return Prepared(request, order, suite, suite_hash(suite), read, now)


def process_chunks(
    chunks: Iterator[pa.Table],
    check: Checker,
    stager: Stager,
    workers: int,
    progress: Callable[[int], None] | None = None,
    rows_per_file: int = 50_000,
    processes: bool = False,
    check_rows: int | None = None,
) -> ChunkOutcome:
    """Divert bad rows, validate the rest with GX, then stage what passed in id order.

    Chunks arrive in any order (the source query does not sort). Consecutive chunks are checked
    together, in units of ``check_rows`` rows or a little more (``check_units``; default: one
    chunk per unit): GX's cost per validation is mostly fixed (about 0.2 s for this suite, whatever
    the rows), so fewer, larger units cost less CPU, and more memory. Units are checked on one
    thread (GX holds the GIL, so more threads share one core), or with ``processes`` in
    ``workers`` worker processes (``chunkcheck``). Reading overlaps the checks, with at most one
    unit in flight per checker beyond the one being filled. Each passing unit comes back in id
    order (its rows that passed copied out once, the read chunks then freed) and is spilled as a
    run, and once every unit passed the runs are merged in id order into files of
    ``rows_per_file`` rows (``sortmerge``), encoded on ``workers`` threads (at least two). After
    the first failed unit nothing is staged (the batch will be quarantined), but every unit is
    still checked so the report is complete.
    """
    out = ChunkOutcome()
    workers = max(1, workers)
    checkers = workers if processes else 1
    runs = SortedRuns(stager.partial / f"runs-{stager.prefix or 'batch'}", check.order.source.id_column)
    in_flight: deque[tuple[Future[Checked], int]] = deque()

    def drain(one: Future[Checked], parts: int) -> None:
        out.absorb(checked(one), parts, runs)
        if progress:
            progress(out.rows_extracted)

    # The files are encoded once the checks and the database's scans are done, so every core is free:
    # at least two threads then (Arrow's encoder releases the GIL) beside the merge on this one.
    encoders = max(2, workers)
    procs = CheckProcesses(check, workers) if processes else None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-check", initializer=None if procs else
                                check.warm) as checker, \
             ThreadPoolExecutor(max_workers=encoders, thread_name_prefix="handoff-encode") as pool:  # fmt: skip
            checker.submit(lambda: None)  # start the checking thread (and its warm-up) now

            def submit(unit: list[pa.Table]) -> None:
                parts = len(unit)
                # A check empties the list: the read chunks go once their clean rows are out. (Screening
                # here, on the reading thread, overlapped the last unit's GX but stalled the read: the
                # export then ended later, and the transfer with it; see the README's benchmark.)
                job = procs.submit(take_chunks(unit)) if procs else checker.submit(check, unit)
                in_flight.append((job, parts))
                while len(in_flight) > checkers:
                    drain(*in_flight.popleft())

            for unit in check_units(chunks, check_rows):
                submit(unit)
            while in_flight:
                drain(*in_flight.popleft())
            if not out.failures:
                heap.release()  # what the checks freed goes back to the system before the merge allocates
                _stage_in_order(runs.merged(rows_per_file), stager, pool, encoders)
    finally:
        if procs:
            procs.close()
        runs.discard()
    out.quarantined.sort()  # the scan's order is not the same twice: record diversions by id
    if out.chunks == 0:
        # Still prove the suite on an empty outgoing frame: the column set must match.
        verdict = check.validator().validate(extract.arrow_schema(check.order).empty_table(), check.day)
        out.evaluated += verdict.evaluated
        if not verdict.passed:
            out.failures.extend(verdict.failures)
    return out


def check_units(chunks: Iterator[pa.Table], check_rows: int | None) -> Iterator[list[pa.Table]]:
    """Consecutive chunks grouped into units of at least ``check_rows`` rows (the last may be fewer);
    one chunk per unit without ``check_rows``.

    A unit goes to the checker as soon as it is full. (Holding it for the next chunk, to fold a
    short last chunk into it and save one validation's fixed cost, was tried: ADBC delivers rows in
    bursts about 1.5 s apart at 16M rows, so every unit waited a burst, and the checks finished
    1.9 s later.)
    """
    unit: list[pa.Table] = []
    rows = 0
    for chunk in chunks:
        unit.append(chunk)
        rows += chunk.num_rows
        if check_rows is None or rows >= check_rows:
            yield unit
            unit, rows = [], 0
    if unit:
        yield unit


def _stage_in_order(tables: Iterator[pa.Table], stager: Stager, pool: ThreadPoolExecutor, workers: int) -> None:
    """Encode the merged tables on the pool and write them as part files, in order, ``workers`` ahead."""
    pending: deque[tuple[Future[bytes], int]] = deque()
    for table in tables:
        pending.append((pool.submit(parquet_bytes, table), table.num_rows))
        while len(pending) > workers:
            data, rows = pending.popleft()
            stager.write_bytes(data.result(), rows)
    while pending:
        data, rows = pending.popleft()
        stager.write_bytes(data.result(), rows)


def check_count(out: ChunkOutcome, expected: int) -> None:
    """Fail closed when the rows read differ from the aggregate's count of the same cut."""
    if out.rows_extracted != expected:
        out.failures.append(
            Failure("row_count", "row_count", None, None, [],
                    error=f"read {out.rows_extracted} rows, the aggregate counted {expected}")
        )  # fmt: skip


def snapshot_day(prep: Prepared) -> dt.date:
    return prep.snapshot.astimezone(prep.order.zone).date()


def extract_validate_stage(
    settings: Settings, prep: Prepared, batch_id: str, progress: Progress | None = None
) -> tuple[ChunkOutcome, Stager]:
    """Stream chunks from the source read through ``process_chunks`` into one batch's staging."""
    processes = use_processes(settings.check_processes, settings.workers)
    if processes:
        start_server()  # its GX import overlaps the database's first scan
    stager: Stager | None = None
    try:
        try:  # the read holds connections and a counting thread: close it whatever fails
            check = Checker(prep.order, prep.suite, snapshot_day(prep))
            stager = Stager(settings.staging_dir, batch_id)
            out = process_chunks(
                prep.read.chunks(settings.chunk_rows), check, stager, settings.workers,
                (lambda done: progress(done, included(prep.read.counted()))) if progress else None,
                settings.chunk_rows, processes, settings.check_rows,
            )  # fmt: skip
            prep.counts, _ = prep.read.counts()
            if progress:  # the snapshot read's counts may only now be known: give the bar its total
                progress(out.rows_extracted, prep.expected_rows)
        finally:
            prep.read.close()
        check_count(out, prep.expected_rows)
    except BaseException:  # nothing staged outlives a run that recorded no batch
        if stager is not None:
            stager.discard()
        raise
    return out, stager


def stage_batch(
    settings: Settings, request: StageRequest, now: dt.datetime, progress: Progress | None = None
) -> batches.Batch:
    """Run extract → validate → stage for one request and return the recorded batch."""
    prep = prepare(settings, request, now)
    batch_id = request.batch_id or new_batch_id(now)
    # Long-lived objects stay out of the collections the work triggers: those alive at the start,
    # then those alive after the read (GX's, when it was first imported during the read).
    with heap.frozen():
        out, stager = extract_validate_stage(settings, prep, batch_id, progress)
    from handoff.staging.record import record

    with heap.frozen():
        return record(settings, prep, batch_id, out, stager, now)


def quarantined_rows(settings: Settings, batch_id: str) -> list[tuple[str, str]]:
    engine = open_state(settings.resolved_state_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(row_quarantine.c.medicaid_id, row_quarantine.c.rule)
            .where(row_quarantine.c.batch_id == batch_id)
            .order_by(row_quarantine.c.id)
        ).all()
    return [(r[0], r[1]) for r in rows]
