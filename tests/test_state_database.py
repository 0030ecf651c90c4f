"""The state database on PostgreSQL and MariaDB: a full delivery is recorded and the ledger verifies."""

from __future__ import annotations

import pytest
from support import NOW, approve, build_settings, ledger_kinds, record_upheld, transfer

from handoff.state import ledger
from handoff.transfer import Lifecycle


@pytest.mark.postgres
def test_full_delivery_with_state_on_a_server_database(
    server_state_url: str, sqlite_source_url: str, s3, tmp_path, audit_bucket
) -> None:
    settings = build_settings(
        tmp_path / "home",
        state_url=server_state_url,
        bucket=s3.name,
        kms_key_id=s3.kms_key_id,
        audit_bucket=audit_bucket,
    )
    life = Lifecycle(settings)
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    assert batch.status == "held"
    assert len(batch.jurisdictions) == 51  # every state and DC: the widest watermark key
    record_upheld(life)
    approve(life, batch.id, "ada", NOW)

    [done] = life.release(NOW)

    assert done.batch.status == "delivered"
    assert len(s3.object_keys()) == len(batch.files) + 1
    assert ledger_kinds(life, batch.id).count("delivered") == 1
    assert life.watermark(batch.order_id, batch.jurisdictions) is not None
    with life.engine.connect() as conn:
        assert ledger.verify(conn).ok
    assert not (tmp_path / "home" / "state.db").exists()
    life.engine.dispose()
