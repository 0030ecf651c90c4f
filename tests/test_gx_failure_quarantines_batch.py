"""Great Expectations is the last line: if dirty rows reach it, the whole batch is quarantined."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import NOW, approve, build_settings, files_under, ledger_kinds, source_rows, transfer

from handoff.checks import quarantine
from handoff.errors import GateError
from handoff.transfer import Lifecycle

CHECKED_RULES = {
    "text:elgbl_line_2_adr_home": "elgbl_line_2_adr_home",  # SSN shape, characters, length: one expectation
    "zip_format:elgbl_zip_cd_home": "elgbl_zip_cd_home",
    "phone_format:elgbl_phne_num_home": "elgbl_phne_num_home",
    "impossible_date:birth_dt": "birth_dt",
}


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    """Chunks checked in this process: the patch below cannot reach worker processes."""
    return build_settings(tmp_path / "home", check_processes=False)


@pytest.fixture
def row_quarantine_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let every row through row quarantine (as handoff.checks.chunkcheck calls it), so only GX stands guard."""

    def let_everything_through(table, rules, id_column, snapshot, unreadable=None):  # type: ignore[no-untyped-def]
        return None, quarantine.RowQuarantine()

    monkeypatch.setattr("handoff.checks.chunkcheck.quarantine.divert", let_everything_through)


@pytest.mark.usefixtures("row_quarantine_disabled")
def test_gx_failure_quarantines_the_whole_batch(source_url: str, settings, s3) -> None:
    life = Lifecycle(settings)
    out = transfer(life, source_url, s3.name, NOW)
    batch = out.batch

    assert batch.status == "quarantined"
    assert batch.rows_staged == 0 and batch.content_hash is None
    assert out.gates == []
    staging = settings.staging_dir
    assert not any(staging.iterdir()), "a quarantined batch published (or left) a staging folder"
    assert "quarantined" in ledger_kinds(life, batch.id)

    report_path = settings.quarantine_dir / batch.id / "report.json"
    assert Path(batch.staging_path) == report_path.parent.resolve()
    report = json.loads(report_path.read_text())
    assert report["result"] == "failed"
    failed = {f["rule"]: f for f in report["failed_expectations"]}
    assert set(CHECKED_RULES) <= set(failed)

    # Each failure names the offending rows by Medicaid ID, and those rows really are bad ...
    for rule, column in CHECKED_RULES.items():
        ids = failed[rule]["medicaid_ids"]
        assert ids and failed[rule]["unexpected_count"] == len(ids)
        values = source_rows(source_url, ids, [column])
        assert set(values) == set(ids)
        # ... but the report never carries the offending values themselves.
        text = report_path.read_text()
        for row in values.values():
            v = row[column]
            shown = v.isoformat() if isinstance(v, dt.date) else str(v)
            assert shown not in text, f"{rule}: offending value copied into the report"

    # Nothing anywhere under HANDOFF_HOME carries the SSN-like values either.
    ssn_ids = failed["text:elgbl_line_2_adr_home"]["medicaid_ids"]
    planted = [r["elgbl_line_2_adr_home"] for r in source_rows(source_url, ssn_ids, ["elgbl_line_2_adr_home"]).values()]
    for path in files_under(settings.home):
        raw = path.read_bytes()
        assert not any(p.encode() in raw for p in planted), path


@pytest.mark.usefixtures("row_quarantine_disabled")
def test_quarantined_batch_cannot_be_approved(sqlite_source_url: str, settings, s3) -> None:
    life = Lifecycle(settings)
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    assert batch.status == "quarantined"
    with pytest.raises(GateError, match="quarantined"):
        approve(life, batch.id, "ada", NOW)
    assert life.release(NOW) == []
    with life.engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM approvals")).scalar()
    assert n == 0


def test_a_small_unit_and_a_large_one_are_judged_the_same(sqlite_source_url: str, settings, s3,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Up to WHOLE_UNIT_ROWS rows GX sees the unit as one batch; above, one batch per column. The same
    rows get the same verdict either way: clean rows pass, broken values fail under the same rules,
    counted alike and naming the same rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from support import read_staged

    from handoff.checks import validate
    from handoff.policy.suite import load_suite

    life = Lifecycle(settings)
    batch = transfer(life, sqlite_source_url, s3.name, NOW).batch
    assert batch.rows_staged > 3 and batch.status == "held"  # staged; the hearing outcome is not on record
    clean = read_staged(batch)
    order = life.policies.current()
    broken = clean
    for column, value in (("elgbl_zip_cd_home", "ABCDE"), ("elgbl_phne_num_home", "12")):
        i = broken.schema.get_field_index(column)
        values = pc.if_else(pa.array([n < 3 for n in range(broken.num_rows)]), value, broken.column(i))
        broken = broken.set_column(i, column, values)
    validator = validate.SuiteValidator(load_suite(life.policies, order), order.source.id_column)

    def judged(table: pa.Table, whole_up_to: int) -> tuple[bool, int, list[tuple[Any, ...]]]:
        monkeypatch.setattr(validate, "WHOLE_UNIT_ROWS", whole_up_to)
        v = validator.validate(table, NOW.date())
        return v.passed, v.evaluated, sorted((f.rule, f.column, f.unexpected_count, tuple(sorted(f.medicaid_ids)))
                                             for f in v.failures)  # fmt: skip

    frames: list[list[str]] = []
    to_frame = validate._frame
    monkeypatch.setattr(validate, "_frame", lambda t: frames.append(t.column_names) or to_frame(t))
    assert judged(clean, 0) == judged(clean, clean.num_rows) == (True, validator.size, [])
    id_column = order.source.id_column
    # A clean unit's columns are checked alone: the ID is beside none but its own (and the table's list).
    assert [f for f in frames if len(f) > 1] == [clean.column_names] * 2  # the table's, and the whole unit
    assert [f for f in frames if len(f) == 1 and f != [id_column]] and [id_column] in frames
    frames.clear()
    by_column, whole = judged(broken, 0), judged(broken, broken.num_rows)
    assert by_column == whole
    assert {tuple(f) for f in frames if len(f) == 2} == {(id_column, "elgbl_zip_cd_home"),
                                                         (id_column, "elgbl_phne_num_home")}  # fmt: skip
    assert whole[0] is False and {(r, c, n) for r, c, n, _ in whole[2]} == {
        ("zip_format:elgbl_zip_cd_home", "elgbl_zip_cd_home", 3),
        ("phone_format:elgbl_phne_num_home", "elgbl_phne_num_home", 3),
    }
