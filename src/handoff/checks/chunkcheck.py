"""Checking one chunk: row quarantine, then Great Expectations, in threads or in worker processes.

A ``Checker`` types a unit of chunks (``pipeline.check_units``), diverts bad rows
(``quarantine``) and validates the rest with GX. GX runs Python under the GIL (with this suite,
about 0.3 s per validation plus 2 µs a row), so threads share one core; ``CheckProcesses`` runs
the same ``Checker`` in ``n`` worker processes, each with its own GX context, so
``HANDOFF_WORKERS=N`` uses N cores. Units travel as Arrow buffers (pickled record batches, no
pandas round trip on the way); only the rows that passed come back.

Workers are forked from a fork server that imported this module and GX once (``start_server``
starts it while the database works), so a transfer starts its workers in milliseconds, and never
from the calling process, whose threads (database driver, S3 client, Prefect) make a plain
``fork`` unsafe. ``use_processes`` decides between processes and threads.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from handoff.checks import quarantine, server
from handoff.checks.validate import ChunkVerdict, SuiteValidator
from handoff.errors import CheckerDied
from handoff.extract import heap, readable, sortmerge
from handoff.extract import reader as extract
from handoff.policy.order import Order
from handoff.policy.rules import rules_for
from handoff.policy.suite import SuiteDoc

log = logging.getLogger(__name__)


@dataclass
class Checked:
    """One chunk after row quarantine and GX validation."""

    rows: int
    diverted: quarantine.RowQuarantine
    verdict: ChunkVerdict | None
    clean: pa.Table | None  # the rows that passed, in id order, to be merged with the others
    pid: int = field(default_factory=os.getpid)  # the process that checked it


class Checker:
    """Per-thread validators: GX assets must not be shared between threads (see TRAPS.md)."""

    def __init__(self, order: Order, suite: SuiteDoc, day: dt.date) -> None:
        self.order, self.suite, self.day = order, suite, day
        self.rules = rules_for(order)
        self.schema = extract.arrow_schema(order)
        self.local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {"order": self.order, "suite": self.suite, "day": self.day}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["order"], state["suite"], state["day"])  # type: ignore[misc]

    def validator(self) -> SuiteValidator:
        v = getattr(self.local, "validator", None)
        if v is None:
            v = self.local.validator = SuiteValidator(self.suite, self.order.source.id_column)
        return v

    def warm(self) -> None:
        """Build this thread's validator (importing GX and starting its context) before the first unit comes.

        It validates nothing: an empty frame's validation (about 0.12 s of CPU) once ran here to pay
        GX's first-validation setup while the database scanned, but the first real validation now
        costs the same after it as without it (``docs/benchmarks.md``), so it only took CPU from the scan.
        """
        try:
            self.validator()
        except Exception:  # noqa: BLE001 - the real validation raises it again, with context
            log.debug("validator warm-up failed", exc_info=True)

    def __call__(self, unit: pa.Table | list[pa.Table]) -> Checked:
        """Quarantine, then validate, one unit: a table, or a list of chunks that this call empties,
        so that the read rows are freed once the rows that passed are copied out, in id order."""
        heap.release()  # what the last unit's checks freed, on this thread, before this one allocates
        chunk = unit if isinstance(unit, pa.Table) else take_chunks(unit)
        rows, key = chunk.num_rows, self.order.source.id_column
        typed, unreadable = readable.as_typed(chunk, self.schema)
        del chunk
        bad, diverted = quarantine.divert(typed, self.rules, key, self.day, unreadable)
        clean = sortmerge.in_key_order(typed, key, bad)
        del typed, unreadable, bad
        if not clean.num_rows:
            return Checked(rows, diverted, None, None)
        verdict = self.validator().validate(clean, self.day)
        return Checked(rows, diverted, verdict, clean if verdict.passed else None)


def take_chunks(chunks: list[pa.Table]) -> pa.Table:
    """The chunks as one table; the list is emptied, so the caller no longer holds them."""
    table = chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks)
    chunks.clear()
    return table


_WORKER: Checker | None = None


def _start(checker: Checker) -> None:
    """A worker's initializer: keep the checker and build its validator."""
    global _WORKER
    _WORKER = checker
    checker.warm()


def _check(chunk: pa.Table) -> Checked:
    assert _WORKER is not None, "worker started without a checker"
    return _WORKER(chunk)


class CheckProcesses:
    """``n`` worker processes running one ``Checker``; ``submit`` returns a future ``Checked``."""

    def __init__(self, checker: Checker, n: int) -> None:
        self.pool = ProcessPoolExecutor(
            max_workers=n, mp_context=server.context(), initializer=_start, initargs=(checker,)
        )
        # Every worker (and its warm-up) starts now, while the scan starts, from another thread: a worker
        # is forked only once the fork server has imported GX, and meanwhile the caller reads (were it
        # to wait, the database's export would stall on a full socket; 16M rows on two cores, worker
        # processes: 9.03-9.17 s against 9.24-9.41 s, alternating).
        self.start_error: BaseException | None = None
        self.starting = threading.Thread(target=self._start_workers, args=(n,), name="handoff-workers", daemon=True)
        self.starting.start()

    def _start_workers(self, n: int) -> None:
        try:
            for _ in range(n):
                self.pool.submit(int)
        except BaseException as exc:  # noqa: BLE001 - the first submit raises it again
            self.start_error = exc

    def submit(self, chunk: pa.Table) -> Future[Checked]:
        self.starting.join()  # the first unit waits for the workers, the reading before it did not
        try:
            if self.start_error is not None:
                raise self.start_error
            return self.pool.submit(_check, chunk)
        except BrokenProcessPool:
            raise _died() from None

    def close(self) -> None:
        self.starting.join()
        self.pool.shutdown(wait=True, cancel_futures=True)


def checked(future: Future[Checked]) -> Checked:
    """The future's answer; a worker that died (killed, out of memory) is one clear error."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise _died() from None


def _died() -> CheckerDied:
    return CheckerDied(
        "a validation worker process ended before it answered (killed, or out of memory?); nothing was "
        "staged: run the transfer again, with fewer HANDOFF_WORKERS or smaller HANDOFF_CHUNK_ROWS"
    )
