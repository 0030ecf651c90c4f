"""What may leave, by person: only people the population rule admits, and every one of them accounted for."""

from __future__ import annotations

from support import population_ids, read_staged, source_rows

from handoff.extract import reader as extract
from handoff.policy.order import PolicySet
from handoff.policy.population import INCLUDED
from handoff.staging.pipeline import quarantined_rows

RULE_COLUMNS = [
    "ctznshp_ind",
    "imgrtn_stus_cd",
    "imgrtn_vrfctn_ind",
    "imgrtn_stus_5_yr_bar_end_dt",
    "submtg_state_cd",
]


def test_every_staged_row_meets_the_population_rule_in_the_source(staged) -> None:
    _, batch, url = staged
    ids = read_staged(batch).column("msis_ident_num").to_pylist()
    assert ids and len(ids) == len(set(ids)) == batch.rows_staged

    src = source_rows(url, ids, RULE_COLUMNS)
    assert set(src) == set(ids), "a staged Medicaid ID does not exist in the source"
    offenders = [
        i for i, r in src.items()
        if not (r["ctznshp_ind"] == "0" and r["imgrtn_stus_cd"] == "3" and r["imgrtn_vrfctn_ind"] == "1"
                and r["imgrtn_stus_5_yr_bar_end_dt"] is None)
    ]  # fmt: skip
    assert offenders == []


def test_staged_plus_row_quarantined_equals_the_aggregate_included_count(staged) -> None:
    settings, batch, url = staged
    order = PolicySet(settings.policy_dir).get(batch.order_ref)
    engine = extract.open_source(url)
    try:
        included = extract.totals(extract.exclusion_counts(engine, order, None))[INCLUDED]
    finally:
        engine.dispose()

    quarantined = quarantined_rows(settings, batch.id)
    assert batch.rows_staged + batch.rows_quarantined == included
    assert batch.rows_extracted == included
    assert sum(batch.excluded["included_by_jurisdiction"].values()) == included

    # The same people, by ID, as a hand-written query of the rule: nobody lost, nobody extra.
    staged_ids = set(read_staged(batch).column("msis_ident_num").to_pylist())
    diverted_ids = {i for i, _ in quarantined}
    assert not staged_ids & diverted_ids
    assert staged_ids | diverted_ids == population_ids(url)


def test_every_seeded_dirty_kind_is_diverted_by_row_quarantine(staged) -> None:
    settings, batch, url = staged
    rules = {r for _, r in quarantined_rows(settings, batch.id)}
    for expected in ("ssn_like:elgbl_line_2_adr_home", "zip_format:elgbl_zip_cd_home",
                     "phone_format:elgbl_phne_num_home", "impossible_date:birth_dt"):  # fmt: skip
        assert expected in rules
        assert batch.quarantined_by_rule[expected] >= 1
    assert sum(batch.quarantined_by_rule.values()) >= batch.rows_quarantined > 0


def test_excluded_people_are_counted_by_reason(staged) -> None:
    """Everyone not disclosed is counted under one reason; the reasons plus included cover the table."""
    settings, batch, url = staged
    totals = batch.excluded["totals"]
    for reason in (
        "citizen_or_national",
        "lawful_status_category",
        "status_not_verified",
        "five_year_bar_date",
    ):
        assert totals.get(reason, 0) > 0, reason
    assert any(k.startswith("null_") for k in totals)
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        total_rows = conn.execute(sa.text("SELECT count(*) FROM enrollees")).scalar()
    engine.dispose()
    assert sum(totals.values()) + batch.rows_extracted == total_rows


def test_progress_reports_rows_against_the_counted_total(source_url: str, tmp_path) -> None:
    """The progress bar and the flow's progress artifact get a total, and end at it."""
    from support import INITIATOR, NOW, build_settings

    from handoff.staging.pipeline import StageRequest, stage_batch

    calls: list[tuple[int, int]] = []
    settings = build_settings(tmp_path / "home", chunk_rows=1000)
    batch = stage_batch(settings, StageRequest(source_url, initiator=INITIATOR), NOW,
                        lambda done, expected: calls.append((done, expected)))  # fmt: skip
    assert len(calls) >= 2, calls
    assert calls[-1] == (batch.rows_extracted, batch.rows_extracted)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    if source_url.startswith("sqlite"):  # the portable read counts before it reads: a total from the start
        assert all(expected == batch.rows_extracted for _, expected in calls)
