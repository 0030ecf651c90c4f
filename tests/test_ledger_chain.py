"""The hash chain itself, on a real SQLite state database: each way a row can be changed, removed or
re-linked is named by its sequence number and what is wrong; an intact chain counts every row.
Fast: these run under mutation testing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from handoff.state import ledger
from handoff.state.schema import ledger as table
from handoff.state.schema import open_state

AT = dt.datetime(2026, 1, 7, 18, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    made = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    with made.begin() as conn:
        for i, kind in enumerate(("staged", "approved", "delivered")):
            ledger.append(conn, kind, "handoff", batch_id="b1", order_ref="o@v1", payload={"n": i}, at=AT)
    yield made
    made.dispose()


def _verify(engine: Any) -> ledger.Verification:
    with engine.connect() as conn:
        return ledger.verify(conn)


def test_an_intact_chain_counts_every_row_from_the_opening_entry(engine: Any) -> None:
    with engine.connect() as conn:
        kinds = [e.kind for e in ledger.entries(conn)]
        head = ledger.head(conn)
        first = ledger.entries(conn)[0]
    assert kinds == [ledger.OPENED, "staged", "approved", "delivered"]
    assert _verify(engine) == ledger.Verification(True, 4)
    assert head.seq == 4 and head.as_dict() == {"seq": 4, "hash": head.hash} and len(head.hash) == 64
    assert first.prev_hash == ledger.GENESIS and first.payload["ledger_id"]


def test_a_missing_row_is_named_by_its_number(engine: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.seq == 3))
    assert _verify(engine) == ledger.Verification(False, 2, 3, "row 3 is missing")


def test_a_row_relinked_to_another_predecessor_is_named(engine: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.seq == 4).values(prev_hash="f" * 64))
    assert _verify(engine) == ledger.Verification(False, 3, 4, "its prev_hash does not match the row before it")


@pytest.mark.parametrize(
    ("column", "value"),
    [("payload", json.dumps({"n": 99})), ("actor", "someone else"), ("kind", "rejected"), ("at", "2026-01-08"),
     ("batch_id", "b2"), ("order_ref", "o@v2")],
)  # fmt: skip
def test_any_field_changed_after_it_was_written_is_named(engine: Any, column: str, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.seq == 2).values({column: value}))
    assert _verify(engine) == ledger.Verification(False, 1, 2, "its content was changed after it was written")


def test_an_empty_ledger_verifies_with_nothing_checked_and_has_no_name(tmp_path: Path) -> None:
    engine = open_state(f"sqlite:///{tmp_path / 'empty.db'}")
    with engine.connect() as conn:
        assert ledger.verify(conn) == ledger.Verification(True, 0)
        assert ledger.head(conn) == ledger.Head(0, ledger.GENESIS) and ledger.ledger_id(conn) is None
    engine.dispose()
