"""GX in check units: consecutive chunks validated together, the same staged bytes, fewer validations.

GX's cost per validation is mostly fixed, so ``HANDOFF_CHECK_ROWS`` groups read chunks into larger
units. Whatever the unit, the staged files, the row quarantine and the report's chunk count must
be those of one unit per chunk; only the number of GX validations (expectations evaluated) drops.
A failing unit still quarantines the batch and names the rule.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from support import INITIATOR, NOW, POLICY_DIR, build_settings, count_validations, sha256_file, staged_paths

from handoff.checks.chunkcheck import Checker
from handoff.extract import reader as extract
from handoff.extract.snapshot import open_read
from handoff.extract.stage import Stager
from handoff.policy.order import PolicySet
from handoff.policy.suite import load_suite
from handoff.staging.pipeline import (
    ChunkOutcome,
    StageRequest,
    check_units,
    process_chunks,
    quarantined_rows,
    stage_batch,
)


def _process(source_url: str, check: Checker, stager: Stager, *, workers: int, rows_per_file: int,
             processes: bool) -> ChunkOutcome:  # fmt: skip
    """``process_chunks`` over the source read in chunks of 500 rows, checked in units of 1,000."""
    read = open_read(extract.open_source(source_url), check.order, None, None, fast=False)
    try:
        return process_chunks(read.chunks(500), check, stager, workers, None, rows_per_file, processes, check_rows=1000)
    finally:
        read.close()


def test_check_units_stage_the_same_bytes_with_fewer_validations(crowded_source_url: str, tmp_path: Path) -> None:
    runs = {}
    for name, check_rows in [("per-chunk", 1000), ("units", 3000)]:
        settings = build_settings(tmp_path / name, chunk_rows=1000, check_rows=check_rows)
        runs[name] = settings, stage_batch(settings, StageRequest(crowded_source_url, initiator=INITIATOR), NOW)
    (s1, one), (s3, units) = runs["per-chunk"], runs["units"]
    assert one.status == units.status == "staged"
    assert len(units.files) > 1
    assert [sha256_file(p) for p in staged_paths(units)] == [sha256_file(p) for p in staged_paths(one)]
    assert units.rows_quarantined == one.rows_quarantined > 0
    assert quarantined_rows(s3, units.id) == quarantined_rows(s1, one.id)
    chunks = one.validation["chunks"]
    assert units.validation["chunks"] == chunks == 3  # 2,500 rows read in chunks of 1,000
    suite_size = len(load_suite(PolicySet(POLICY_DIR), PolicySet(POLICY_DIR).current())["expectations"])
    assert one.validation["expectations_evaluated"] == suite_size * 3  # one unit per chunk
    assert units.validation["expectations_evaluated"] == suite_size * 1  # one unit of 2,500 rows


def test_a_unit_goes_to_the_checker_as_soon_as_it_is_full() -> None:
    """Units close at ``check_rows`` without waiting for the next chunk (the read comes in bursts);
    the last unit takes what is left, and without ``check_rows`` every chunk is its own unit."""

    def sizes(chunk_rows: list[int], check_rows: int | None) -> list[list[int]]:
        chunks = iter(pa.table({"x": list(range(n))}) for n in chunk_rows)
        return [[c.num_rows for c in unit] for unit in check_units(chunks, check_rows)]

    assert sizes([3, 3, 3, 1], 6) == [[3, 3], [3, 1]]
    assert sizes([3, 3, 3, 3, 2], 6) == [[3, 3], [3, 3], [2]]
    assert sizes([4, 4, 4], 5) == [[4, 4], [4]]
    assert sizes([2], 6) == [[2]]
    assert sizes([3, 3, 1], None) == [[3], [3], [1]]
    assert sizes([], 6) == []

    def one_at_a_time() -> Iterator[pa.Table]:
        yield pa.table({"x": [1, 2, 3]})
        yield pa.table({"x": [4, 5, 6]})
        raise AssertionError("the full unit waited for another chunk")

    assert [u[0].num_rows for u in itertools.islice(check_units(one_at_a_time(), 3), 2)] == [3, 3]


@pytest.mark.parametrize("processes", [False, True], ids=["thread", "processes"])
def test_a_failing_unit_stages_nothing_and_names_the_rule(
    crowded_source_url: str, tmp_path: Path, processes: bool
) -> None:
    order = PolicySet(POLICY_DIR).current()
    suite = load_suite(PolicySet(POLICY_DIR), order)
    no_rows = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0, "max_value": 0},
               "meta": {"rule": "test:no_rows_may_leave"}}  # fmt: skip
    check = Checker(order, {**suite, "expectations": [*suite["expectations"], no_rows]}, NOW.date())
    stager = Stager(tmp_path, "u1")
    out = _process(crowded_source_url, check, stager, workers=2, rows_per_file=1000, processes=processes)
    assert out.chunks == 5 and out.rows_extracted == 2500
    assert [f.rule for f in out.failures] == ["test:no_rows_may_leave"] * 3  # one failure per unit: 2 + 2 + 1 chunks
    assert not stager.files and not list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob("*.arrow"))


def test_the_column_list_is_checked_on_every_unit_without_converting_its_rows(crowded_source_url: str) -> None:
    """The exact-column expectation reads only column names, so GX gets the unit's columns with no
    rows; a unit with an extra column, or one missing, still fails it by name."""
    order = PolicySet(POLICY_DIR).current()
    check = Checker(order, load_suite(PolicySet(POLICY_DIR), order), NOW.date())
    read = open_read(extract.open_source(crowded_source_url), order, None, None, fast=False)
    try:
        chunk = next(iter(read.chunks(500)))
    finally:
        read.close()
    clean = check(chunk).clean  # the rows that pass row quarantine and GX
    assert clean is not None and clean.num_rows > 0
    leaked = clean.append_column("ssn", pa.array(["000-00-0000"] * clean.num_rows))
    missing = clean.drop_columns([order.columns[-1]])
    for table in (leaked, missing):
        verdict = check.validator().validate(table, NOW.date())
        assert not verdict.passed and "exact_columns" in [f.rule for f in verdict.failures]


def test_the_warm_up_builds_the_validator_and_validates_nothing(
    crowded_source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warming up the check thread imports GX and builds its validator while the database scans, and
    runs no validation: one of an empty frame cost about 0.12 s of CPU beside the scan and made the
    first real validation no cheaper. The first unit is then validated with every expectation, by the
    validator the warm-up built."""
    policies = PolicySet(POLICY_DIR)
    order = policies.current()
    suite = load_suite(policies, order)
    seen = count_validations(monkeypatch)
    check = Checker(order, suite, NOW.date())
    check.warm()
    assert seen == []  # no validation ahead of the first unit
    built = check.validator()
    read = open_read(extract.open_source(crowded_source_url), order, None, None, fast=False)
    try:
        unit = next(iter(read.chunks(500)))
    finally:
        read.close()
    got = check(unit)
    assert check.validator() is built
    assert got.verdict is not None and got.verdict.passed and got.verdict.evaluated == len(suite["expectations"])
    assert seen == [got.rows - got.diverted.rows] and seen[0] > 0


def test_one_worker_still_encodes_the_files_on_two_threads_in_id_order(
    crowded_source_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files are encoded once the checks and the scans are done, when every core is free: two
    encoder threads work at once even with ``HANDOFF_WORKERS=1``, and the parts still come out in
    order, each holding the next ids."""
    import pyarrow.parquet as pq

    from handoff.staging import pipeline

    both = threading.Barrier(2, timeout=20)  # the first two files must be encoded at the same time
    encoders: list[str] = []
    encode = pipeline.parquet_bytes

    def encoding(table: pa.Table) -> bytes:
        encoders.append(threading.current_thread().name)
        if len(encoders) <= 2:
            both.wait()
        return encode(table)

    monkeypatch.setattr(pipeline, "parquet_bytes", encoding)
    order = PolicySet(POLICY_DIR).current()
    check = Checker(order, load_suite(PolicySet(POLICY_DIR), order), NOW.date())
    stager = Stager(tmp_path, "e1")
    out = _process(crowded_source_url, check, stager, workers=1, rows_per_file=300, processes=False)
    assert not out.failures and len(stager.files) > 3
    assert len(set(encoders)) == 2 and all(name.startswith("handoff-encode") for name in encoders)
    ids = [pq.read_table(stager.partial / f.name).column(order.source.id_column).to_pylist() for f in stager.files]
    assert [f.rows for f in stager.files] == [len(part) for part in ids]
    flat = [i for part in ids for i in part]
    assert flat == sorted(flat, key=str.encode) and len(flat) == out.rows_extracted - out.rows_quarantined
