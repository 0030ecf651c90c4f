"""What the gates read from the ledger: a batch's validation entry and the order versions it accepted.

A real state database (SQLite, migrated) with entries appended the way handoff appends them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from handoff.authority import in_force
from handoff.extract.stage import StagedFile
from handoff.state import ledger, validated
from handoff.state.schema import open_state

FILES = [StagedFile("part-00001.parquet", 4, 90, "b" * 64), StagedFile("part-00000.parquet", 6, 100, "a" * 64)]


@pytest.fixture
def conn(tmp_path: Path) -> Any:
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.begin() as c:
        yield c
    engine.dispose()


def test_the_newest_validation_entry_of_the_batch_is_the_record(conn: sa.Connection) -> None:
    assert validated.record_for(conn, "b1") is None
    ledger.append(conn, "staged", "op", batch_id="b1",
                  payload={"content_hash": "c" * 64, "rows_staged": 10, "files": validated.files_payload(FILES)})  # fmt: skip
    ledger.append(conn, "staged", "op", batch_id="b2", payload={"content_hash": "d" * 64, "rows_staged": 1})
    first = validated.record_for(conn, "b1")
    assert first is not None and first.content_hash == "c" * 64 and first.rows == 10
    assert [f["name"] for f in first.files or []] == ["part-00000.parquet", "part-00001.parquet"]
    head = ledger.head(conn)
    ledger.append(conn, "revalidated", "op", batch_id="b1", payload={"content_hash": "e" * 64, "rows_staged": "10"})
    again = validated.record_for(conn, "b1")
    assert again is not None and again.seq == head.seq + 1 and again.entry_hash == ledger.head(conn).hash
    assert again.content_hash == "e" * 64 and again.rows is None and again.files is None  # a typed-wrong payload
    assert again.as_dict() == {"ledger_seq": again.seq, "entry_hash": again.entry_hash, "content_hash": "e" * 64,
                               "rows": None, "files": None}  # fmt: skip
    other = validated.record_for(conn, "b2")
    assert other is not None and other.content_hash == "d" * 64


def test_the_newest_accepted_version_wins_by_first_use_or_signed_narrowing(conn: sa.Connection) -> None:
    assert in_force.accepted(conn, "ord") is None
    ledger.append(conn, "order-version", "Counsel", payload={"order_ref": "ord@v1", "file_sha256": "1" * 64})
    ledger.append(conn, "order-version", "Counsel", payload={"order_ref": "other@v7", "file_sha256": "7" * 64})
    ledger.append(conn, "approval-refused", "x", payload={"order_ref": "ord@v9", "new_order_ref": "ord@v9"})
    ledger.append(conn, "order-version", "Counsel", payload={"order_ref": "ord@v1", "file_sha256": "9" * 64})
    first = in_force.accepted(conn, "ord")
    assert first is not None
    # The first acceptance of a version stands, and no other kind of entry ever counts.
    assert (first.ref, first.version, first.file_sha256, first.how, first.seq) == (
        "ord@v1",
        1,
        "1" * 64,
        "first used",
        2,
    )
    statement = json.dumps({"order_file_sha256": "2" * 64})
    ledger.append(conn, "hearing-outcome", "Counsel",
                  payload={"statement": statement, "new_order_ref": "ord@v2", "hearing": "h1"})  # fmt: skip
    ledger.append(conn, "hearing-outcome", "Counsel", payload={"statement": "{}", "new_order_ref": None})
    ledger.append(conn, "order-version", "Counsel", payload={"order_ref": "ord@v1", "file_sha256": "1" * 64})
    best = in_force.accepted(conn, "ord")
    assert best is not None and (best.ref, best.version, best.file_sha256) == ("ord@v2", 2, "2" * 64)
    assert "hearing h1" in best.how
    ledger.append(conn, "hearing-outcome", "Counsel", payload={"statement": "not json", "new_order_ref": "ord@v3"})
    broken = in_force.accepted(conn, "ord")
    assert broken is not None and (broken.version, broken.file_sha256) == (3, None)
    seven = in_force.accepted(conn, "other")
    assert seven is not None and seven.ref == "other@v7"
