"""What may leave, by column: only the order's permitted columns, in the order file's sequence."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
from support import DENIED, INITIATOR, NOW, POLICY_DIR, execute, read_staged, source_rows, staged_paths

from handoff.policy.order import PolicySet, load_order_file
from handoff.staging.pipeline import StageRequest, stage_batch

SHIPPED_COLUMNS = [
    "msis_ident_num", "birth_dt", "ctznshp_ind", "imgrtn_stus_cd",
    "elgbl_line_1_adr_home", "elgbl_line_2_adr_home", "elgbl_city_name_home", "elgbl_state_cd_home",
    "elgbl_zip_cd_home", "elgbl_cnty_cd_home", "elgbl_line_1_adr_mail", "elgbl_line_2_adr_mail",
    "elgbl_city_name_mail", "elgbl_state_cd_mail", "elgbl_zip_cd_mail", "elgbl_cnty_cd_mail",
    "elgbl_phne_num_home",
]  # fmt: skip


def test_shipped_order_permits_six_categories_and_no_name() -> None:
    order = PolicySet(POLICY_DIR).current()
    assert order.columns == SHIPPED_COLUMNS
    assert not order.name_flag
    assert not set(order.columns) & set(DENIED)


def test_staged_parquet_holds_exactly_the_permitted_columns_in_order(staged) -> None:
    settings, batch, _ = staged
    order = PolicySet(settings.policy_dir).get(batch.order_ref)
    assert batch.status == "staged"
    assert batch.files, "nothing was staged; the seeded source should have in-population rows"
    for path in staged_paths(batch):
        schema = pq.read_schema(path)
        assert schema.names == order.columns, path.name
        raw = path.read_bytes()
        for denied in DENIED:
            assert denied.encode() not in raw, f"{denied} is named inside {path.name}"


def test_staged_rows_carry_no_denied_value(staged) -> None:
    """Denied data cannot hide in a permitted column: no staged cell holds an SSN, email or name."""
    _, batch, url = staged
    table = read_staged(batch)
    ids = table.column("msis_ident_num").to_pylist()
    src = source_rows(url, ids, ["ssn_num", "elgbl_1st_name", "elgbl_last_name", "elgbl_email_addr"])
    cells = {str(v) for col in table.columns for v in col.to_pylist() if v is not None}
    for row in src.values():
        assert row["ssn_num"] is None or row["ssn_num"] not in cells
        assert row["elgbl_email_addr"] is None or row["elgbl_email_addr"] not in cells
        assert row["elgbl_last_name"] not in cells


def test_column_added_to_source_later_never_leaves(fresh_source_url: str, settings) -> None:
    execute(
        fresh_source_url,
        "ALTER TABLE enrollees ADD COLUMN secret_note VARCHAR(80)",
        "UPDATE enrollees SET secret_note = 'SECRET-NOTE-' || msis_ident_num",
    )
    batch = stage_batch(settings, StageRequest(fresh_source_url, initiator=INITIATOR), NOW)

    assert batch.status == "staged"
    assert "secret_note" not in batch.query_sql
    table = read_staged(batch)
    assert "secret_note" not in table.column_names
    assert table.num_rows > 0
    for path in staged_paths(batch):
        raw = path.read_bytes()
        assert b"secret_note" not in raw
        assert b"SECRET-NOTE" not in raw
    for col in table.columns:
        assert not any(isinstance(v, str) and v.startswith("SECRET-NOTE") for v in col.to_pylist())


def test_name_columns_join_only_when_counsel_turns_the_flag_on(tmp_path) -> None:
    """The name flag is the one switch that adds columns; off (as shipped) names never appear."""
    shutil.copytree(POLICY_DIR, tmp_path / "p")
    path = tmp_path / "p" / "orders" / "2025-12-29.yaml"
    text = path.read_text()
    assert "name_flag: false" in text
    path.write_text(text.replace("name_flag: false", "name_flag: true"))
    order = load_order_file(path)
    assert order.columns[-3:] == ["elgbl_1st_name", "elgbl_last_name", "elgbl_mdl_initl_name"]
    assert order.columns[:-3] == SHIPPED_COLUMNS
