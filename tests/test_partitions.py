"""Partitioned staging: the plan, and a partitioned batch equal to the single-partition batch.

``plan_partitions`` packs jurisdictions into groups of about ``partition_rows`` included rows and
cuts a big jurisdiction into id ranges. ``stage_partitioned`` must stage exactly the rows, row
quarantine, exclusion counts and watermark that ``stage_batch`` stages from the same source, on
SQLite (portable read, upper watermark) and on PostgreSQL (ADBC + the coordinator's exported
snapshot), and two sequential partitioned runs must write byte-identical files.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from support import (
    INITIATOR,
    NOW,
    build_settings,
    execute,
    population_ids,
    read_staged,
    sha256_file,
    staged_paths,
)

from handoff.policy.population import INCLUDED
from handoff.policy.source_model import FIPS_BY_ABBR, STATES
from handoff.staging import partition
from handoff.staging.pipeline import StageRequest, quarantined_rows, stage_batch

# The shared 4000-row sources admit about 90 rows; these four states admit CA 15, NY 10, OH 8,
# TX 1, with row-quarantined rows in CA, NY and OH. With 6 rows per partition CA (more than
# 2 x 6) is cut into three id ranges and the others are packed: six partitions, few enough that
# the per-partition validator set-up stays cheap.
STATES_SUBSET = ["CA", "NY", "OH", "TX"]
PARTITION_ROWS = 6


# ----- plan_partitions -------------------------------------------------------------------------
def _counts(included: dict[str, int]) -> dict[str, dict[str, int]]:
    """Counts as ``read_counts`` returns them: by USPS code, included plus some exclusions."""
    out = {abbr: {INCLUDED: n, "citizen": 7} for abbr, n in included.items()}
    out["??"] = {"unknown_jurisdiction": 2}  # no jurisdiction: never a partition
    return out


class _Boundaries:
    """A stand-in for ``_key_boundaries``: records its calls, cuts at made-up ids."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, fips: str, parts: int, n: int) -> list[str]:
        self.calls.append((fips, parts, n))
        return [f"{STATES[fips]}{k:010d}" for k in range(1, parts)]


def _check_cover(plan: list[tuple[list[str], str | None, str | None]], fips: set[str]) -> None:
    """Every jurisdiction in exactly one group or in one unbroken chain of key ranges; plan in FIPS order."""
    whole = [f for group, low, high in plan if low is None and high is None for f in group]
    split = [group for group, low, high in plan if (low, high) != (None, None)]
    assert all(len(g) == 1 for g in split), "a key-range partition covers more than one jurisdiction"
    assert len(whole) == len(set(whole)), "a jurisdiction is in two groups"
    assert not set(whole) & {g[0] for g in split}, "a jurisdiction is both whole and split"
    assert set(whole) | {g[0] for g in split} == fips
    order = [f for group, _, _ in plan for f in group]
    assert order == sorted(order), f"partitions are not contiguous in FIPS order: {plan}"
    for f in {g[0] for g in split}:
        ranges = [(low, high) for group, low, high in plan if group == [f]]
        assert ranges[0][0] is None and ranges[-1][1] is None, "a split jurisdiction lost its open ends"
        assert all(a[1] == b[0] and a[1] is not None for a, b in zip(ranges, ranges[1:], strict=False)), ranges


def test_plan_packs_jurisdictions_into_groups_of_about_partition_rows() -> None:
    included = {"AL": 4, "AK": 5, "AZ": 3, "AR": 0, "CO": 9, "CT": 1, "DE": 10, "DC": 2}  # AR: excluded rows only
    cuts = _Boundaries()
    plan = partition.plan_partitions(_counts(included), 10, cuts)

    assert cuts.calls == [], "no jurisdiction is over 2 x partition_rows, so none is split"
    assert all(low is None and high is None for _, low, high in plan)
    groups = [g for g, _, _ in plan]
    fips = FIPS_BY_ABBR
    assert groups == [
        [fips["AL"], fips["AK"]],                # 4 + 5 = 9; AZ would make 12
        [fips["AZ"], fips["AR"]],                # 3 + 0; CO would make 12
        [fips["CO"], fips["CT"]],                # 9 + 1 = 10 (at the limit is fine)
        [fips["DE"]],                            # 10
        [fips["DC"]],
    ]  # fmt: skip
    sizes = [sum(included.get(STATES[f], 0) for f in g) for g in groups]
    assert all(s <= 10 for s in sizes), sizes
    _check_cover(plan, {fips[a] for a in included})


def test_plan_splits_a_jurisdiction_over_twice_partition_rows_into_key_ranges() -> None:
    # CA (06) sits between small states: the groups either side of it must not merge across it.
    included = {"AL": 2, "AK": 3, "AZ": 4, "AR": 1, "CA": 35, "CO": 3, "CT": 2, "DE": 20, "DC": 21}
    cuts = _Boundaries()
    plan = partition.plan_partitions(_counts(included), 10, cuts)

    fips = FIPS_BY_ABBR
    # ceil(n / partition_rows) ranges for CA (35) and DC (21); DE (20) is exactly 2x: not split.
    assert cuts.calls == [(fips["CA"], 4, 35), (fips["DC"], 3, 21)]
    ca = [(low, high) for g, low, high in plan if g == [fips["CA"]]]
    assert ca == [(None, "CA0000000001"), ("CA0000000001", "CA0000000002"),
                  ("CA0000000002", "CA0000000003"), ("CA0000000003", None)]  # fmt: skip
    assert [(low, high) for g, low, high in plan if g == [fips["DC"]]] == [
        (None, "DC0000000001"),
        ("DC0000000001", "DC0000000002"),
        ("DC0000000002", None),
    ]
    assert [fips["DE"]] in [g for g, _, _ in plan]
    _check_cover(plan, {fips[a] for a in included})
    # More partitions than groups of whole jurisdictions: the split ones add ranges.
    assert len(plan) == len({tuple(g) for g, _, _ in plan}) + 3 + 2


def test_plan_with_few_distinct_ids_keeps_ranges_contiguous() -> None:
    """Boundaries that come back short (duplicate cut ids dropped) still cover the jurisdiction."""
    plan = partition.plan_partitions({"TX": {INCLUDED: 100}}, 10, lambda f, k, n: ["TX5"])
    assert plan == [([FIPS_BY_ABBR["TX"]], None, "TX5"), ([FIPS_BY_ABBR["TX"]], "TX5", None)]
    assert partition.plan_partitions({"TX": {INCLUDED: 100}}, 10, lambda f, k, n: []) == [
        ([FIPS_BY_ABBR["TX"]], None, None)
    ]


# ----- stage_partitioned against stage_batch, on a real source ------------------------------------
class _Recorder:
    """A sequential runner that keeps the specs it ran."""

    def __init__(self, before: Any = None) -> None:
        self.specs: list[partition.PartitionSpec] = []
        self.before = before

    def __call__(self, specs: list[partition.PartitionSpec]) -> list[partition.PartitionResult]:
        self.specs = list(specs)
        if self.before:
            self.before()
        return partition.sequential(specs)


@pytest.fixture
def boundary_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int, list[str]]]:
    calls: list[tuple[str, int, int, list[str]]] = []
    real = partition._key_boundaries

    def spy(conn, read, order, fips, parts, n):  # type: ignore[no-untyped-def]
        out = real(conn, read, order, fips, parts, n)
        calls.append((fips, parts, n, out))
        return out

    monkeypatch.setattr(partition, "_key_boundaries", spy)
    return calls


def _ids_in_state(url: str, fips: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stmt = sa.text("SELECT msis_ident_num FROM enrollees WHERE submtg_state_cd = :f")
            return set(conn.execute(stmt, {"f": fips}).scalars())
    finally:
        engine.dispose()


def _sorted_rows(batch: Any) -> pa.Table:
    table = read_staged(batch)
    return table.sort_by("msis_ident_num")


def _request(url: str) -> StageRequest:
    return StageRequest(url, STATES_SUBSET, initiator=INITIATOR)


def _stage(settings: Any, url: str, runner: Any = partition.sequential) -> Any:
    return partition.stage_partitioned(settings, _request(url), NOW, partition_rows=PARTITION_ROWS, runner=runner)


@pytest.fixture(scope="module")
def single(source_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, str]:
    """(settings, batch, url): the single-partition batch of the same request, from each shared source."""
    settings = build_settings(tmp_path_factory.mktemp("single-home"))
    return settings, stage_batch(settings, _request(source_url), NOW), source_url


def test_partitioned_batch_equals_single_batch(single, tmp_path, boundary_calls) -> None:
    settings, single, url = single
    assert settings.chunk_rows == 1000 and single.status == "staged"
    assert len(single.files) == 1, "the single run fits one chunk of 1000 rows"
    recorder = _Recorder()
    part_settings = build_settings(tmp_path / "home")
    batch = _stage(part_settings, url, recorder)

    # The plan really cut jurisdictions into key ranges, with real ids from the source.
    split = {f for f, *_ in boundary_calls}
    assert split == {FIPS_BY_ABBR["CA"]}, boundary_calls
    assert [(f, parts) for f, parts, *_ in boundary_calls] == [(FIPS_BY_ABBR["CA"], 3)]
    assert all(cuts and cuts == sorted(cuts) for *_, cuts in boundary_calls)
    # Each cut is the id at k/parts of the jurisdiction's included rows, in id order.
    [(_, parts, n, cuts)] = boundary_calls
    ca = sorted(population_ids(url) & _ids_in_state(url, FIPS_BY_ABBR["CA"]))
    assert n == len(ca) and cuts == [ca[k * n // parts] for k in range(1, parts)]
    assert any(s.key_low is not None for s in recorder.specs)
    groups = {tuple(s.fips) for s in recorder.specs}
    assert len(recorder.specs) > len(groups), "no jurisdiction was split into several partitions"
    per_fips = Counter(f for s in recorder.specs for f in s.fips)
    assert {f for f, n in per_fips.items() if n > 1} == split
    if url.startswith("postgresql"):  # the fast path: every partition joins the coordinator's snapshot
        assert all(s.fast and s.snapshot_id for s in recorder.specs)
        assert len({s.snapshot_id for s in recorder.specs}) == 1
    else:
        assert all(not s.fast and s.snapshot_id is None and s.watermark for s in recorder.specs)

    assert batch.status == "staged", batch.status_reason
    assert len(batch.files) > len(single.files), "partitions should write more, smaller files"
    assert [f.name for f in batch.files] == [f"part-{i:05d}.parquet" for i in range(len(batch.files))]
    assert _sorted_rows(batch).equals(_sorted_rows(single))
    assert batch.rows_staged == single.rows_staged == sum(f.rows for f in batch.files)
    assert batch.rows_extracted == single.rows_extracted
    assert batch.rows_quarantined == single.rows_quarantined > 0
    assert sorted(quarantined_rows(part_settings, batch.id)) == sorted(quarantined_rows(settings, single.id))
    assert batch.quarantined_by_rule == single.quarantined_by_rule
    assert batch.excluded == single.excluded
    assert batch.excluded["totals"] == single.excluded["totals"]
    assert batch.watermark == single.watermark and batch.watermark is not None
    assert batch.since is None and single.since is None
    assert batch.jurisdictions == single.jurisdictions
    assert batch.validation["result"] == "passed"
    # The batch folder holds exactly its part files (partition files were renamed, none left over).
    folder = staged_paths(batch)[0].parent
    assert sorted(p.name for p in folder.iterdir()) == [f.name for f in batch.files]


def test_sequential_partitioned_runs_are_byte_identical(source_url: str, tmp_path) -> None:
    first = _stage(build_settings(tmp_path / "one"), source_url)
    second = _stage(build_settings(tmp_path / "two"), source_url)
    assert first.status == second.status == "staged"
    assert first.id != second.id

    def files(b: Any) -> list[tuple[str, int, str]]:
        return [(f.name, f.rows, f.sha256) for f in b.files]

    assert files(first) == files(second)
    assert [sha256_file(p) for p in staged_paths(first)] == [f.sha256 for f in first.files]
    assert [sha256_file(p) for p in staged_paths(second)] == [f.sha256 for f in second.files]
    assert first.content_hash == second.content_hash is not None


@pytest.mark.postgres
def test_partitions_read_the_coordinators_snapshot(make_source, tmp_path) -> None:
    """Rows changed or deleted after the coordinator's cut, before the partitions run, do not leak in."""
    url = make_source("postgresql")
    single = stage_batch(build_settings(tmp_path / "single"), _request(url), NOW)
    ids = sorted(read_staged(single).column("msis_ident_num").to_pylist())
    changed, deleted = ids[:20], ids[20:25]

    def meanwhile() -> None:
        execute(url,
                "UPDATE enrollees SET elgbl_city_name_home = 'Changed Meanwhile', updated_at = :at "
                f"WHERE msis_ident_num IN ({', '.join(repr(i) for i in changed)})",
                f"DELETE FROM enrollees WHERE msis_ident_num IN ({', '.join(repr(i) for i in deleted)})",
                params={"at": NOW.replace(tzinfo=None)})  # fmt: skip

    recorder = _Recorder(before=meanwhile)
    batch = _stage(build_settings(tmp_path / "part"), url, recorder)
    assert recorder.specs and all(s.fast and s.snapshot_id for s in recorder.specs)
    assert batch.status == "staged", batch.status_reason
    assert _sorted_rows(batch).equals(_sorted_rows(single))
    assert batch.watermark == single.watermark
    assert batch.excluded == single.excluded
