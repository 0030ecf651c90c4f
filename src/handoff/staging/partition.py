"""Partitioned staging: one batch split into jurisdiction x key-range partitions.

A coordinator fixes one consistent cut of the source (an exported PostgreSQL snapshot held
open, or an upper watermark elsewhere), counts exclusions once, and plans partitions of about
``partition_rows`` included rows: jurisdictions packed into groups, and a jurisdiction larger
than that split into id ranges. Each partition runs ``run_partition`` (plain, picklable, so
Prefect can map it over a Dask cluster) and writes its files into the batch's staging folder;
``combine`` names them part-NNNNN in partition order. The same plan gives byte-identical
files whichever runner executes the partitions.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from handoff.checks.chunkcheck import Checker
from handoff.checks.validate import Failure
from handoff.config import Settings
from handoff.extract import reader as extract
from handoff.extract.parallel import scan_workers
from handoff.extract.snapshot import PortableRead, export_snapshot, fast_path_available, open_read
from handoff.extract.stage import StagedFile, Stager
from handoff.policy.order import PolicySet
from handoff.policy.population import INCLUDED, where_clause
from handoff.policy.source_model import FIPS_BY_ABBR
from handoff.policy.suite import load_suite, suite_hash
from handoff.staging.pipeline import (
    ChunkOutcome,
    Prepared,
    StageRequest,
    check_count,
    load,
    new_batch_id,
    process_chunks,
    snapshot_day,
)
from handoff.staging.record import record


@dataclass(frozen=True)
class PartitionSpec:
    """Everything one partition needs, as plain values (it may run in another process)."""

    index: int
    fips: list[str]
    key_low: str | None
    key_high: str | None
    source_url: str
    policy_dir: str
    order_ref: str
    since: str | None
    watermark: str | None
    snapshot_id: str | None
    fast: bool
    chunk_rows: int
    workers: int
    staging_dir: str
    batch_id: str
    day: str
    parallel: int | None = None
    check_rows: int | None = None  # rows GX validates at once (``process_chunks``)


@dataclass
class PartitionResult:
    index: int
    files: list[dict[str, Any]] = field(default_factory=list)
    rows_extracted: int = 0
    rows_quarantined: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    by_rule: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    chunks: int = 0
    evaluated: int = 0
    checked_by: list[int] = field(default_factory=list)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def run_partition(spec: PartitionSpec) -> PartitionResult:
    """Extract, divert, validate and stage one partition into the batch's staging folder."""
    policies = PolicySet(Path(spec.policy_dir))
    order = policies.get(spec.order_ref)
    suite = load_suite(policies, order)
    engine = extract.open_source(spec.source_url)
    read = open_read(engine, order, spec.fips, _parse(spec.since), spec.fast, watermark=_parse(spec.watermark),
                     key_range=(spec.key_low, spec.key_high), snapshot_id=spec.snapshot_id,
                     parallel=spec.parallel)  # fmt: skip
    check = Checker(order, suite, dt.date.fromisoformat(spec.day))
    stager = Stager(Path(spec.staging_dir), spec.batch_id, prefix=f"p{spec.index:05d}")
    try:
        # Threads, not worker processes: the partitions are the processes (and Dask's are daemonic).
        out = process_chunks(
            read.chunks(spec.chunk_rows), check, stager, spec.workers, None, spec.chunk_rows, check_rows=spec.check_rows
        )
    finally:
        read.close()
    return PartitionResult(
        spec.index, [f.as_dict() for f in stager.files], out.rows_extracted, out.rows_quarantined,
        out.quarantined, dict(out.by_rule), [f.as_dict() for f in out.failures], out.chunks, out.evaluated,
        sorted(out.checked_by),
    )  # fmt: skip


def _key_boundaries(conn: sa.Connection, read: Any, order: Any, fips: str, parts: int, n: int) -> list[str]:
    """Ids that cut one jurisdiction's included rows into ``parts`` ranges of about equal size."""
    table = read.plan.table
    id_col = table.c[order.source.id_column]
    ranked = (sa.select(id_col.label("id"), sa.func.row_number().over(order_by=id_col).label("rn"))
              .where(where_clause(table, order, [fips]),
                     extract._since_clause(table, order, read.plan.since, read.plan.watermark))
              .subquery())  # fmt: skip
    # One pass over the jurisdiction's rows for every cut, not one sorted pass per cut.
    cuts = sorted({k * n // parts + 1 for k in range(1, parts)})
    out: list[str] = []
    for value in conn.execute(sa.select(ranked.c.id).where(ranked.c.rn.in_(cuts)).order_by(ranked.c.rn)).scalars():
        if value is not None and (not out or value > out[-1]):
            out.append(str(value))
    return out


def plan_partitions(
    counts: dict[str, dict[str, int]], partition_rows: int, boundaries: Callable[[str, int, int], list[str]]
) -> list[tuple[list[str], str | None, str | None]]:
    """Pack jurisdictions (FIPS) into groups of about ``partition_rows`` included rows; split big ones."""
    sizes = sorted(((FIPS_BY_ABBR[j], r.get(INCLUDED, 0)) for j, r in counts.items() if j in FIPS_BY_ABBR))
    out: list[tuple[list[str], str | None, str | None]] = []
    group: list[str] = []
    size = 0
    for fips, n in sizes:
        if n > 2 * partition_rows:
            if group:  # close the open group first: groups stay contiguous, partitions in FIPS order
                out.append((group, None, None))
                group, size = [], 0
            cuts = boundaries(fips, -(-n // partition_rows), n)
            edges: list[str | None] = [None, *cuts, None]
            out.extend(([fips], edges[i], edges[i + 1]) for i in range(len(edges) - 1))
            continue
        if group and size + n > partition_rows:
            out.append((group, None, None))
            group, size = [], 0
        group.append(fips)
        size += n
    if group:
        out.append((group, None, None))
    return out


Runner = Callable[[list[PartitionSpec]], Iterable[PartitionResult]]


def sequential(specs: list[PartitionSpec]) -> list[PartitionResult]:
    return [run_partition(s) for s in specs]


def stage_partitioned(
    settings: Settings,
    request: StageRequest,
    now: dt.datetime,
    partition_rows: int,
    runner: Runner = sequential,
) -> Any:
    """Stage one batch as many partitions run by ``runner``; return the recorded batch."""
    order, suite, engine, fips = load(settings, request)
    fast = settings.fast_path and fast_path_available(engine)
    batch_id = request.batch_id or new_batch_id(now)
    conn = engine.connect()
    try:
        snapshot_id = export_snapshot(conn) if fast else None
        # Plans the statement; off the fast path it also counts and fixes the upper watermark (the cut).
        read = PortableRead(engine, order, fips, request.since, bounded=not fast)
        if fast:  # the snapshot is the cut; its newest change is the watermark
            counts, watermark = extract.read_counts(conn, read.plan.counts(order, fips))
            read.plan.watermark = watermark
        else:
            counts, watermark = read.counts()
        prep = Prepared(request, order, suite, suite_hash(suite), read, now, counts)
        parts = plan_partitions(counts, partition_rows, lambda f, k, n: _key_boundaries(conn, read, order, f, k, n))
        day = snapshot_day(prep).isoformat()
        specs = [
            PartitionSpec(i, p_fips, low, high, request.source_url, str(settings.policy_dir), order.ref,
                          _iso(read.plan.since), None if fast else _iso(watermark), snapshot_id, fast,
                          settings.chunk_rows, settings.workers, str(settings.staging_dir), batch_id, day,
                          scan_workers(settings.source_parallel, engine.url), settings.check_rows)
            for i, (p_fips, low, high) in enumerate(parts)
        ]  # fmt: skip
        Stager(settings.staging_dir, batch_id)  # creates the batch's partial folder
        results = sorted(runner(specs), key=lambda r: r.index)
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()
    out, stager = combine(settings, batch_id, results)
    check_count(out, prep.expected_rows)
    return record(settings, prep, batch_id, out, stager, now)


def combine(settings: Settings, batch_id: str, results: list[PartitionResult]) -> tuple[ChunkOutcome, Stager]:
    """Merge partition results in partition order; name their files part-NNNNN."""
    stager = Stager(settings.staging_dir, batch_id, prefix="combine")
    out = ChunkOutcome()
    files: list[StagedFile] = []
    by_rule: Counter[str] = Counter()
    for r in results:
        files.extend(StagedFile(**f) for f in r.files)
        out.rows_extracted += r.rows_extracted
        out.rows_quarantined += r.rows_quarantined
        out.quarantined.extend(tuple(q) for q in r.quarantined)  # type: ignore[misc]
        by_rule.update(r.by_rule)
        out.failures.extend(Failure(**f) for f in r.failures)
        out.chunks += r.chunks
        out.evaluated += r.evaluated
        out.checked_by.update(r.checked_by)
    out.by_rule = by_rule
    stager.adopt(files)
    return out, stager


__all__ = ["PartitionResult", "PartitionSpec", "asdict", "combine", "plan_partitions", "run_partition",
           "sequential", "stage_partitioned"]  # fmt: skip
