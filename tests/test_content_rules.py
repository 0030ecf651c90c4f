"""Content rules that hold: disguised SSNs, oversize, control and override characters, unreadable values.

Each bad value is planted in a real source (SQLite and PostgreSQL, the fast ADBC path included),
on a row that meets the population rule. The row is quarantined by Medicaid ID and rule, its value
is written nowhere (staged files, state database, logs, reports), and an ID that itself looks like
an SSN is masked wherever it is shown.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from support import NOW, POLICY_DIR, build_settings, cli_env, execute, files_under, population_ids, read_staged, run_cli

from handoff.staging.pipeline import StageRequest, quarantined_rows, stage_batch

PLANTS: list[tuple[str, str, str]] = [
    ("elgbl_line_1_adr_home", "Apt 4, 918.27.3645", "ssn_like"),
    ("elgbl_line_2_adr_home", "918 / 27 / 3645", "ssn_like"),
    ("elgbl_city_name_home", "\uff19\uff11\uff18-\uff12\uff17-\uff13\uff16\uff14\uff15", "ssn_like"),  # full-width
    ("elgbl_line_1_adr_mail", "x" * 1_000_000, "max_length"),
    ("elgbl_line_2_adr_mail", "12 Main St\u202e", "characters"),  # right-to-left override
    ("elgbl_city_name_mail", "Spring\u200bfield", "characters"),  # zero-width space
    ("elgbl_line_1_adr_home", "123 -- -45 -- -6789", "ssn_like"),  # more than three separators
    ("elgbl_line_2_adr_home", "1 2 3 4 5 6 7 8 9", "ssn_like"),  # a separator between every digit
    ("elgbl_line_1_adr_mail", "123x45x6789", "ssn_like"),  # letters as separators
    ("elgbl_city_name_home", "l23-45-678O", "ssn_like"),  # look-alike letters for digits
]


def _plant(url: str, plants: list[tuple[str, str, str]]) -> dict[str, tuple[str, str, str]]:
    """Each plant on its own in-population row; returns {medicaid_id: plant}."""
    if url.startswith("postgresql"):  # widen what a 60-character column could not hold
        execute(url, *(f"ALTER TABLE enrollees ALTER COLUMN {c} TYPE text" for c, _, _ in plants))
    ids = sorted(population_ids(url))[: len(plants)]
    for i, (column, value, _) in zip(ids, plants, strict=True):
        execute(url, f"UPDATE enrollees SET {column} = :v WHERE msis_ident_num = :i", params={"v": value, "i": i})
    return dict(zip(ids, plants, strict=True))


@pytest.mark.parametrize("fast_path", [True, False], ids=["adbc-if-postgres", "portable"])
def test_disguised_and_oversize_values_are_quarantined_and_written_nowhere(
    fresh_source_url: str, tmp_path: Any, fast_path: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    planted = _plant(fresh_source_url, PLANTS)
    settings = build_settings(tmp_path / "home", fast_path=fast_path)
    batch = stage_batch(settings, StageRequest(fresh_source_url, initiator="t"), NOW)
    assert batch.status == "staged", batch.status_reason
    diverted = set(quarantined_rows(settings, batch.id))
    for medicaid_id, (column, _, rule) in planted.items():
        assert (medicaid_id, f"{rule}:{column}") in diverted
    assert not set(planted) & set(read_staged(batch).column("msis_ident_num").to_pylist())
    secrets = [v for _, v, _ in PLANTS if v[0] != "x"] + ["918-27-3645", "9182-73645", "918273645"]
    for path in files_under(settings.home):
        raw = path.read_bytes()
        for value in secrets:
            assert value.encode("utf-8") not in raw, f"{value!r} written to {path.name}"
        assert b"x" * 1000 not in raw, f"the oversize value reached {path.name}"
    assert not any(v in caplog.text for v in secrets)


@pytest.mark.parametrize("fast_path", [True, False], ids=["adbc-if-postgres", "portable"])
def test_a_value_that_is_not_its_type_quarantines_the_row_without_a_traceback(
    fresh_source_url: str, tmp_path: Any, fast_path: bool
) -> None:
    bad = "notadate 918-27-3645"
    if fresh_source_url.startswith("postgresql"):
        execute(fresh_source_url, "ALTER TABLE enrollees ALTER COLUMN birth_dt TYPE text")
    target = sorted(population_ids(fresh_source_url))[0]
    execute(fresh_source_url, "UPDATE enrollees SET birth_dt = :v WHERE msis_ident_num = :i",
            params={"v": bad, "i": target})  # fmt: skip
    settings = build_settings(tmp_path / "home", fast_path=fast_path)
    batch = stage_batch(settings, StageRequest(fresh_source_url, initiator="t"), NOW)
    assert batch.status == "staged"
    assert (target, "unreadable:birth_dt") in quarantined_rows(settings, batch.id)
    assert target not in read_staged(batch).column("msis_ident_num").to_pylist()
    for path in files_under(settings.home):
        assert b"918-27-3645" not in path.read_bytes(), path.name


def test_an_id_that_looks_like_an_ssn_is_masked_wherever_it_is_shown(make_source: Any, tmp_path: Any) -> None:
    url = make_source("sqlite")
    target = sorted(population_ids(url))[0]
    execute(url, "UPDATE enrollees SET msis_ident_num = '918273645', elgbl_line_2_adr_home = :v "
                 "WHERE msis_ident_num = :i", params={"v": "12 Main St\u202e", "i": target})  # fmt: skip
    settings = build_settings(tmp_path / "home")
    batch = stage_batch(settings, StageRequest(url, initiator="t"), NOW)
    rows = quarantined_rows(settings, batch.id)
    assert rows and all("918273645" not in i for i, _ in rows)
    assert any(i.startswith("masked-") and r == "ssn_like:msis_ident_num" for i, r in rows)
    env = cli_env(settings.home)
    res = run_cli("quarantine", batch.id, "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0 and "918273645" not in res.stdout
    assert any(r["medicaid_id"].startswith("masked-") for r in json.loads(res.stdout)["rows"])
    for path in files_under(settings.home):
        assert b"918273645" not in path.read_bytes(), path.name


SCREENED = [
    "Apt 4, 918.27.3645",
    "918 / 27 / 3645",
    "\uff19\uff11\uff18-\uff12\uff17-\uff13\uff16\uff14\uff15",
    "12 Main St\u202e",
    "Spring\u200bfield",
    "Caf\u00e9 918-27-3645",
    "M\u00fcller Stra\u00dfe 5",
    "\u017f918\u017f27\u017f3645",
    "918\u013227 3645",
    "\u0669\u0661\u0668-\u0662\u0667-\u0663\u0666\u0664\u0665",
    "918-27-3645\n",
    "x" * 61,
    "12 Main St",
    "",
    None,
]


@pytest.mark.parametrize("column", ["elgbl_line_1_adr_home", "elgbl_phne_num_home"])
def test_screened_rules_divert_exactly_what_each_rule_alone_would(column: str) -> None:
    """The row quarantine screens a column's must-not-match rules with one regex and checks only the
    flagged rows rule by rule: the (ID, rule) pairs it records equal each rule run on its own."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.compute as pc

    from handoff.checks import quarantine
    from handoff.policy.order import PolicySet
    from handoff.policy.rules import rules_for

    order = PolicySet(POLICY_DIR).current()
    rules = [r for r in rules_for(order) if r.column == column]
    assert sum(r.kind == "not_match" for r in rules) == 2  # characters and ssn_like: the screened pair
    day = dt.date(2026, 1, 7)
    ids = [f"ID{i:06d}" for i in range(len(SCREENED))]
    # Two chunks in one column, as a read delivers them; a clean-only table takes the no-suspect path.
    table = pa.table({"msis_ident_num": ids, column: pa.chunked_array([SCREENED[:7], SCREENED[7:]], pa.string())})
    _, out = quarantine.divert(table, rules, "msis_ident_num", day)
    expected = set()
    for rule in rules:
        bad = quarantine._violations(table.column(column), rule, day)
        expected |= {(i, rule.id) for i in pc.filter(table.column("msis_ident_num"), bad).to_pylist()}
    assert set(out.entries) == expected
    assert {rid for _, rid in expected} >= {f"ssn_like:{column}", f"characters:{column}"}
    clean = table.filter(pa.array([i not in {e[0] for e in expected} for i in ids]))
    mask, none = quarantine.divert(clean, rules, "msis_ident_num", day)
    assert mask is None and none.rows == 0 and clean.num_rows > 0


CODE_COLUMNS = ["ctznshp_ind", "imgrtn_stus_cd", "elgbl_state_cd_home", "elgbl_state_cd_mail"]


def _code_values(codes: tuple[str, ...]) -> Any:
    """Values a code column may hold: its codes (mostly), near misses, disguised digits, nulls."""
    from hypothesis import strategies as st

    near = st.sampled_from(["", " ", "ca", "C A", "9", "99", "Z", "918-27-3645", "\uff19", "\u202e1", "x" * 61,
                            "\u00e9", "12\n", "N\u200b"])  # fmt: skip
    return st.one_of(st.sampled_from(codes), st.sampled_from(codes), near, st.text(max_size=12), st.none())


@pytest.mark.parametrize("column", CODE_COLUMNS)
def test_a_code_column_diverts_exactly_what_each_rule_read_on_every_row_would(column: str) -> None:
    """A code column's other rules read only the rows outside its code set (no code breaks them):
    for any values, the masks equal every rule read on every row."""
    import datetime as dt

    import pyarrow as pa
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from handoff.checks import quarantine
    from handoff.policy.order import PolicySet
    from handoff.policy.rules import rules_for

    rules = [r for r in rules_for(PolicySet(POLICY_DIR).current()) if r.column == column]
    [member] = [r for r in rules if r.kind == "in_set"]
    assert {r.kind for r in rules} >= {"in_set", "not_match", "max_length"}
    day = dt.date(2026, 1, 7)
    assert quarantine._codes_pass(member, tuple(r for r in rules if r.kind not in ("in_set", "not_null")), day)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(_code_values(member.values), max_size=40), st.integers(0, 40))
    def same(values: list[str | None], cut: int) -> None:
        col = pa.chunked_array([values[:cut], values[cut:]], pa.string())  # two chunks, as a read gives them
        got = {rid: m.to_pylist() for rid, m in quarantine._column_checks(col, rules, day)}
        want = {rid: m.to_pylist() for rid, m in quarantine._each_rule(col, rules, day)}
        assert got == want

    same()


def test_a_code_set_holding_a_code_another_rule_refuses_is_read_row_by_row() -> None:
    """Where a code in the set itself breaks another of the column's rules (an order listing a
    disguised or overlong code), every rule reads every row: the code is still diverted."""
    import datetime as dt

    import pyarrow as pa

    from handoff.checks import quarantine
    from handoff.policy.rules import OTHER_CHARACTERS, Rule

    odd = "C\u200b"  # a zero-width space inside a code
    rules = [Rule("code_set:c", "in_set", "c", ("A", odd)), Rule("characters:c", "not_match", "c", pattern=OTHER_CHARACTERS),
             Rule("max_length:c", "max_length", "c", max_length=1)]  # fmt: skip
    day = dt.date(2026, 1, 7)
    assert not quarantine._codes_pass(rules[0], tuple(rules[1:]), day)
    col = pa.chunked_array([["A", odd, "B", None]], pa.string())
    masks = {rid: m.to_pylist() for rid, m in quarantine._column_checks(col, rules, day)}
    assert masks == {"code_set:c": [False, False, True, False], "characters:c": [False, True, False, False],
                     "max_length:c": [False, True, False, False]}  # fmt: skip


EVASIONS = ["123 -- -45 -- -6789", "1 2 3 4 5 6 7 8 9", "123x45x6789", "l23-45-6789", "123-45-678O",
            "918|27|3645", "918-27-3645", "SSN 918273645.", "I23-4S-6789", "9I8 Z7 B6o5", "9 1 8 - 2 7 - 3 6 4 5"]  # fmt: skip
# Lawful address lines (numbers, unit letters, PO boxes, rural routes), IDs and phone numbers.
ORDINARY = ["1234 Main St", "Apt 999", "12 Oak Hill Rd", "CA0000123456", "IL0000123456", "OH0000123456",
            "5551234567", "555-123-4567", "Lakeview", "PO Box 1204", "Unit 12, 3456 Elm St",
            "1600 Pennsylvania Ave NW", "350 Fifth Ave Ste 5000", "100 Bayou Blvd Apt 12B", "PO Box 12045",
            "One Microsoft Way", "4059 Mt Lee Dr", "Rural Route 2 Box 152", "W1234 County Rd S",
            "12-B Solo Ct", "2100 S Boston St #1206", "Bldg 5, Rm 210", "Oslo", "N89W16785 Main St",
            "Springfield", "Boise"]  # fmt: skip


def test_the_ssn_rule_means_the_same_to_python_arrow_and_postgresql() -> None:
    """Separators of any length, a letter between groups and look-alike letters are all an SSN, in each
    engine that applies the rule (GX's Python ``re``, the row quarantine's RE2, PostgreSQL's ``~``);
    IDs, phone numbers and street addresses are not."""
    import re

    import pyarrow as pa
    import pyarrow.compute as pc
    import sqlalchemy as sa

    from handoff.policy.rules import SSN_LIKE, looks_like_ssn

    values = EVASIONS + ORDINARY
    want = [True] * len(EVASIONS) + [False] * len(ORDINARY)
    assert [bool(re.search(SSN_LIKE, v)) for v in values] == want
    assert [looks_like_ssn(v) for v in values] == want
    assert pc.match_substring_regex(pa.array(values), SSN_LIKE).to_pylist() == want
    try:
        engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        with engine.connect() as conn:
            got = [
                conn.execute(sa.text("SELECT CAST(:v AS text) ~ :p"), {"v": v, "p": SSN_LIKE}).scalar() for v in values
            ]
    except sa.exc.OperationalError as exc:
        from support import unavailable

        unavailable(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc.orig}")
        return
    assert got == want


def test_each_rule_says_what_it_checks_in_words() -> None:
    """What `policy show`, the suite's notes and quarantine reports say for each kind of rule."""
    from handoff.policy.rules import OTHER_CHARACTERS, SSN_LIKE, Rule

    said = [
        (Rule("r", "not_null", "c").describe(), "c must not be null"),
        (Rule("r", "in_set", "c", ("A", "B")).describe(), "c must be one of A, B"),
        (Rule("r", "match", "c", pattern="^[0-9]{5}$").describe(), "c must match ^[0-9]{5}$"),
        (Rule("r", "not_match", "c", pattern=OTHER_CHARACTERS).describe(), "c must hold only printable ASCII and Latin letters (no control or format characters)"),
        (Rule("r", "not_match", "c", pattern=SSN_LIKE).describe(), "c must not contain an SSN-like number"),
        (Rule("r", "max_length", "c", max_length=60).describe(), "c must be at most 60 characters"),
        (Rule("r", "date_between", "c", min_date="1900-01-01T00:00:00").describe(), "c must be a date from 1900-01-01T00:00:00 to the snapshot date"),
    ]  # fmt: skip
    for got, want in said:
        assert got == want


def _unit(**columns: Any) -> Any:
    import pyarrow as pa

    return pa.table({k: pa.array(v, pa.date32() if k.endswith("_dt") else pa.string()) for k, v in columns.items()})


def test_a_unit_of_one_row_that_breaks_a_rule_is_diverted() -> None:
    """A unit can be a single row (a short last chunk): its row is diverted like any other, and the
    report counts exactly the rules it broke, once each."""
    import datetime as dt

    from handoff.checks import quarantine
    from handoff.policy.order import PolicySet
    from handoff.policy.rules import rules_for

    rules = rules_for(PolicySet(POLICY_DIR).current())
    day = dt.date(2026, 1, 7)
    row = {r.column: ["CA0000123456" if r.column == "msis_ident_num" else None] for r in rules}
    bad, out = quarantine.divert(_unit(**row), rules, "msis_ident_num", day)
    nulls = {r.id for r in rules if r.kind == "not_null" and r.column != "msis_ident_num"}
    assert nulls and bad is not None and bad.to_pylist() == [True]
    assert out.rows == 1 and set(out.by_rule) == nulls and set(out.by_rule.values()) == {1}
    assert sorted(out.entries) == sorted(("CA0000123456", rid) for rid in nulls)


def test_the_report_counts_each_rule_by_the_rows_it_flagged_and_no_other() -> None:
    """``by_rule`` names only rules that flagged a row, each with its count (positive); a clean unit
    gives no mask at all, so nothing is filtered."""
    import datetime as dt

    from handoff.checks import quarantine
    from handoff.policy.rules import Rule

    rules = [Rule("not_null:c", "not_null", "c"), Rule("code_set:c", "in_set", "c", ("A", "B")),
             Rule("max_length:d", "max_length", "d", max_length=2)]  # fmt: skip
    day = dt.date(2026, 1, 7)
    table = _unit(id=["1", "2", "3", "4", "5"], c=["A", "Z", None, "Q", "B"], d=["ok", "ok", "no!", "ok", "ok"])
    bad, out = quarantine.divert(table, rules, "id", day)
    assert bad is not None and bad.to_pylist() == [False, True, True, True, False]
    assert dict(out.by_rule) == {"code_set:c": 2, "not_null:c": 1, "max_length:d": 1}
    assert out.rows == 3
    assert sorted(out.entries) == [("2", "code_set:c"), ("3", "max_length:d"), ("3", "not_null:c"), ("4", "code_set:c")]
    mask, none = quarantine.divert(table.slice(0, 1), rules, "id", day)
    assert mask is None and none.rows == 0 and not none.by_rule and not none.entries


def test_a_diverted_row_without_an_id_is_named_as_such() -> None:
    import datetime as dt

    from handoff.checks import quarantine
    from handoff.policy.rules import Rule

    rules = [Rule("max_length:d", "max_length", "d", max_length=2)]
    _, out = quarantine.divert(_unit(id=[None, "2"], d=["far too long", "ok"]), rules, "id", dt.date(2026, 1, 7))
    assert out.entries == [(quarantine.NULL_ID, "max_length:d")]


@pytest.mark.parametrize(("min_date", "first_allowed"), [("2000-01-01T00:00:00", "2000-01-01"), (None, "1900-01-01")])
def test_a_date_rule_holds_a_date_between_its_minimum_and_the_snapshot(
    min_date: str | None, first_allowed: str
) -> None:
    """The rule's own minimum (1900-01-01 where it names none) and the snapshot day are both allowed;
    a day before the one or after the other is diverted."""
    import datetime as dt

    from handoff.checks import quarantine
    from handoff.policy.rules import Rule

    first, day = dt.date.fromisoformat(first_allowed), dt.date(2026, 1, 7)
    rule = Rule("impossible_date:birth_dt", "date_between", "birth_dt", min_date=min_date)
    dates = [first - dt.timedelta(days=1), first, day, day + dt.timedelta(days=1), None]
    _, out = quarantine.divert(_unit(id=["a", "b", "c", "d", "e"], birth_dt=dates), [rule], "id", day)
    assert sorted(out.entries) == [("a", rule.id), ("d", rule.id)]


def test_a_code_set_that_names_no_code_diverts_every_value() -> None:
    """Fail closed: a column held to an empty set of codes lets no value through (a null is the
    not-null rule's to name)."""
    import datetime as dt

    from handoff.checks import quarantine
    from handoff.policy.rules import Rule

    rule = Rule("code_set:c", "in_set", "c", ())
    _, out = quarantine.divert(_unit(id=["1", "2", "3"], c=["A", "", None]), [rule], "id", dt.date(2026, 1, 7))
    assert sorted(out.entries) == [("1", "code_set:c"), ("2", "code_set:c")]


def test_a_column_with_two_format_rules_diverts_a_value_that_matches_neither() -> None:
    """Only must-not-match rules are screened together; must-match rules are each read on every row,
    so a value breaking both is named by both."""
    import datetime as dt

    from handoff.checks import quarantine
    from handoff.policy.rules import Rule

    rules = [Rule("letters:c", "match", "c", pattern="^[A-Z]+$"), Rule("short:c", "match", "c", pattern="^.{1,3}$")]
    _, out = quarantine.divert(_unit(id=["1", "2", "3"], c=["ABC", "abcd", "AB1"]), rules, "id", dt.date(2026, 1, 7))
    assert sorted(out.entries) == [("2", "letters:c"), ("2", "short:c"), ("3", "letters:c")]
