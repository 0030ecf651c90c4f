"""The same transfer works on MariaDB: seeded, counted and staged with identical accounting."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from support import INITIATOR, NOW, population_ids, read_staged

from handoff.extract import reader as extract
from handoff.extract.reader import open_source
from handoff.policy.order import PolicySet
from handoff.policy.population import INCLUDED
from handoff.staging.pipeline import StageRequest, quarantined_rows, stage_batch
from handoff_tools.seed import seed_database


@pytest.mark.postgres  # no "mariadb" marker is registered; this one means "needs a database server"
def test_mariadb_source_stages_a_batch_equal_to_the_aggregate(mariadb_url: str, settings) -> None:
    engine = open_source(mariadb_url)
    assert seed_database(engine, 2000, 7, replace=True, dirty_rate=0.02) == 2000
    order = PolicySet(settings.policy_dir).current()
    included = extract.totals(extract.exclusion_counts(engine, order, None))[INCLUDED]
    engine.dispose()

    batch = stage_batch(settings, StageRequest(mariadb_url, initiator=INITIATOR), NOW)

    assert batch.status == "staged", batch.status_reason
    assert batch.source_url.startswith("mysql+pymysql://")
    assert "`enrollees`" in batch.query_sql
    assert included > 0
    assert batch.rows_staged + batch.rows_quarantined == batch.rows_extracted == included
    staged_ids = set(read_staged(batch).column("msis_ident_num").to_pylist())
    diverted = {i for i, _ in quarantined_rows(settings, batch.id)}
    assert staged_ids | diverted == population_ids(mariadb_url)
    for f in batch.files:
        assert pq.read_schema(f"{batch.staging_path}/{f.name}").names == order.columns
