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


def test_each_row_is_hashed_in_the_documented_form_so_an_auditor_can_recompute_it(tmp_path: Path) -> None:
    """payload: sorted-key compact JSON (other types as text); hash: SHA-256 of the compact JSON list
    [seq, at, kind, actor, batch_id, order_ref, payload, prev_hash]."""
    import hashlib

    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    payload = {"z": 1, "a": {"y": [1, 2], "b": AT}}
    with engine.begin() as conn:
        written = ledger.append(conn, "staged", "Ada", batch_id="b1", order_ref="o@v1", payload=payload, at=AT)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(table).order_by(table.c.seq)))
    engine.dispose()
    assert rows[1].payload == '{"a":{"b":"2026-01-07 18:00:00+00:00","y":[1,2]},"z":1}'
    for row in rows:
        body = json.dumps([row.seq, row.at, row.kind, row.actor, row.batch_id, row.order_ref, row.payload,
                           row.prev_hash], separators=(",", ":"))  # fmt: skip
        assert hashlib.sha256(body.encode()).hexdigest() == row.hash
    assert written == ledger.Entry(2, "2026-01-07T18:00:00.000000+00:00", "staged", "Ada", "b1", "o@v1", payload,
                                   rows[0].hash, rows[1].hash)  # fmt: skip
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.connect() as conn:
        read = ledger.entries(conn, batch_id="b1")
    engine.dispose()
    assert [(e.seq, e.at, e.kind, e.actor, e.order_ref, e.hash) for e in read] == [
        (2, written.at, "staged", "Ada", "o@v1", written.hash)]  # fmt: skip


def test_the_opening_entry_names_the_ledger_with_a_random_id_at_the_first_entrys_time(engine: Any) -> None:
    with engine.connect() as conn:
        opened, first = ledger.entries(conn)[:2]
        name = ledger.ledger_id(conn)
    assert (opened.kind, opened.actor, opened.at) == (ledger.OPENED, "handoff", first.at)
    assert name == opened.payload["ledger_id"] and len(name) == 16 and int(name, 16) >= 0
    assert (first.batch_id, first.order_ref, first.actor) == ("b1", "o@v1", "handoff")


def test_a_ledger_opened_before_ledger_ids_is_named_by_its_first_hash(tmp_path: Path) -> None:
    engine = open_state(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        conn.execute(table.insert().values(seq=1, at="2025-12-01T00:00:00+00:00", kind="staged", actor="handoff",
                                           batch_id=None, order_ref=None, payload="{}", prev_hash=ledger.GENESIS,
                                           hash="c" * 64))  # fmt: skip
        assert ledger.ledger_id(conn) == "c" * 16
        conn.execute(sa.update(table).values(kind=ledger.OPENED, payload="{}"))  # an opening entry without an id
        assert ledger.ledger_id(conn) == "c" * 16
        entry = ledger.append(conn, "approved", "Bo", at=AT)
        assert (entry.seq, entry.prev_hash) == (2, "c" * 64)  # appended after the newest row, not a new opening
    engine.dispose()


def test_a_row_restored_out_of_its_insertion_order_keeps_the_chain(engine: Any) -> None:
    """Rows are read by sequence number, never by where the database happens to keep them."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(table).where(table.c.seq == 2)).mappings().one()
        conn.execute(sa.delete(table).where(table.c.seq == 2))
        conn.execute(table.insert().values(**row))  # restored from a backup: now stored last
    assert _verify(engine) == ledger.Verification(True, 4)
    with engine.connect() as conn:
        assert [e.seq for e in ledger.entries(conn)] == [1, 2, 3, 4]
