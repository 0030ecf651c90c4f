"""GX's expectation configurations built once per call, type names remembered: the same answers.

``checks.expectation_config`` replaces three of GX's ``Expectation`` methods with the same code
reading the expectation's configuration once per call instead of once per key, and remembers the
type name each class name turns into. Every answer must be GX's own (the order's suite, and
Hypothesis-made expectations of every type handoff's suites use, and any class name), a
validation's verdict and report must be the same, and a GX whose functions changed keeps its own.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import NOW, POLICY_DIR

from handoff.checks import expectation_config, validate
from handoff.extract import reader as extract
from handoff.policy.order import PolicySet
from handoff.policy.suite import load_suite

validate.import_gx()
import great_expectations.expectations.expectation as gx_expectation  # noqa: E402
import great_expectations.util as gx_util  # noqa: E402
from great_expectations.expectations.expectation import Expectation  # noqa: E402
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration  # noqa: E402
from great_expectations.expectations.registry import _registered_expectations  # noqa: E402

NAMES = tuple(expectation_config.REPLACEMENTS)
GX_METHODS = {name: expectation_config.ORIGINALS[name] for name in NAMES}


def _suite_validator() -> validate.SuiteValidator:
    policies = PolicySet(POLICY_DIR)
    order = policies.current()
    return validate.SuiteValidator(load_suite(policies, order), order.source.id_column)


def _answers(expectation: Any, methods: dict[str, Any]) -> list[Any]:
    """Every answer the three methods give for ``expectation``: each key it has, and one it does not."""
    out: list[Any] = [list(methods["_get_domain_kwargs"](expectation).items()),
                      list(methods["_get_success_kwargs"](expectation).items())]  # fmt: skip
    keys = [*expectation.domain_keys, *expectation.success_keys, *expectation.configuration.kwargs, "no_such_kwarg"]
    out += [(key, methods["_get_success_kwarg"](expectation, key, "fallback")) for key in keys]
    return out


def test_gx_methods_are_replaced_where_gx_is_the_release_they_were_written_from() -> None:
    assert expectation_config.installed()
    assert set(expectation_config.ORIGINALS) == {*NAMES, "camel_to_snake"}
    assert expectation_config.ORIGINALS["camel_to_snake"] is gx_util.camel_to_snake
    for name in expectation_config.ORIGINALS:  # GX's own, as found: the source the replacements were written from
        assert expectation_config.fingerprint(expectation_config.ORIGINALS[name]) == \
            expectation_config.KNOWN[name]  # fmt: skip


def test_the_orders_expectations_read_the_same_as_with_gxs_own_methods(caplog: pytest.LogCaptureFixture) -> None:
    validator = _suite_validator()
    expectations = validator.whole_suite(NOW.date()).expectations
    assert len(expectations) == validator.size > 10
    mine = {name: getattr(Expectation, name) for name in NAMES}
    for expectation in expectations:
        with caplog.at_level(logging.WARNING, logger="great_expectations.expectations.expectation"):
            caplog.clear()
            theirs = _answers(expectation, GX_METHODS)
            warned_theirs = [r.getMessage() for r in caplog.records]
            caplog.clear()
            ours = _answers(expectation, mine)
            warned_ours = [r.getMessage() for r in caplog.records]
        assert ours == theirs
        assert warned_ours == warned_theirs and any("no_such_kwarg" in w for w in warned_ours)


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
COLUMN = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
KWARGS = {
    "expect_column_values_to_not_be_null": st.fixed_dictionaries({"column": COLUMN}, optional={
        "mostly": st.floats(0, 1)}),
    "expect_column_values_to_be_in_set": st.fixed_dictionaries({"column": COLUMN, "value_set": st.lists(TEXT, max_size=4)},
                                                               optional={"mostly": st.floats(0, 1)}),
    "expect_column_values_to_match_regex": st.fixed_dictionaries({"column": COLUMN, "regex": st.sampled_from(
        [r"^\d{5}$", r"^[A-Z]+$", r"."])}, optional={"mostly": st.floats(0, 1)}),
    "expect_column_values_to_not_match_regex": st.fixed_dictionaries({"column": COLUMN, "regex": st.sampled_from(
        [r"\d{3}-\d{2}-\d{4}", r"[^ -~]"])}),
    "expect_column_values_to_be_between": st.fixed_dictionaries({"column": COLUMN, "min_value": st.sampled_from(
        ["1900-01-01", "2000-06-30"])}, optional={"max_value": st.sampled_from(["2026-12-31"]), "strict_min": st.booleans()}),
    "expect_table_columns_to_match_ordered_list": st.fixed_dictionaries({"column_list": st.lists(COLUMN, max_size=5)}),
}  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_expectation_of_the_suites_types_reads_the_same(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(KWARGS)))
    kwargs = data.draw(KWARGS[kind])
    meta = data.draw(st.fixed_dictionaries({}, optional={"rule": TEXT}))
    expectation = ExpectationConfiguration(type=kind, kwargs=kwargs, meta=meta).to_domain_obj()
    mine = {name: getattr(Expectation, name) for name in NAMES}
    assert _answers(expectation, mine) == _answers(expectation, GX_METHODS)


@given(name=st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,40}", fullmatch=True) | st.text(max_size=20))
def test_a_class_name_turns_into_the_type_gx_gives_it(name: str) -> None:
    assert gx_expectation.camel_to_snake(name) == gx_util.camel_to_snake(name)
    assert gx_expectation.camel_to_snake(name) == gx_util.camel_to_snake(name)  # remembered: the same again


def test_every_registered_expectation_is_named_as_gx_names_it() -> None:
    assert len(_registered_expectations) >= 6
    for expectation_type, registered in list(_registered_expectations.items()):
        assert gx_expectation.camel_to_snake(registered.__name__) == expectation_type


class _Counted:
    """Counts every configuration GX builds, as it builds it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.built = 0
        real = Expectation.configuration

        def counting(expectation: Any) -> Any:
            self.built += 1
            return real.fget(expectation)

        monkeypatch.setattr(Expectation, "configuration", property(counting))


def _broken_unit() -> pa.Table:
    """Rows that break the suite where GX sees them: the order's columns, one null ID and one bad code."""
    order = PolicySet(POLICY_DIR).current()
    schema = extract.arrow_schema(order)
    rows = 30
    cols: list[pa.Array] = []
    for f in schema:
        if pa.types.is_date(f.type):
            cols.append(pa.array([dt.date(1980, 1, 1)] * rows, type=f.type))
        else:
            cols.append(pa.array([None if f.name == order.source.id_column and i == 3 else "X" for i in range(rows)],
                                 type=f.type))  # fmt: skip
    return pa.table(cols, schema=schema)


def test_a_validation_gives_the_same_report_from_far_fewer_configurations(monkeypatch: pytest.MonkeyPatch) -> None:
    unit = _broken_unit()
    day = NOW.date()

    def run(methods: dict[str, Any]) -> tuple[validate.ChunkVerdict, int]:
        validator = _suite_validator()  # (which installs the replacements: GX's own are set after)
        with monkeypatch.context() as m:
            for name, fn in methods.items():
                m.setattr(Expectation, name, fn)
            counted = _Counted(m)
            verdict = validator.validate(unit, day)
            return verdict, counted.built

    theirs, built_theirs = run(GX_METHODS)
    ours, built_ours = run(dict(expectation_config.REPLACEMENTS))
    assert not ours.passed and ours.failures
    assert [f.as_dict() for f in ours.failures] == [f.as_dict() for f in theirs.failures]
    assert (ours.passed, ours.evaluated, ours.expected, ours.rows) == \
        (theirs.passed, theirs.evaluated, theirs.expected, theirs.rows)  # fmt: skip
    assert built_ours * 3 < built_theirs * 2  # 3,586 against 6,248 here: a third fewer at least


def test_a_gx_whose_methods_changed_keeps_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GX release whose methods differ from those the replacements were written from is left alone,
    and the same GX as written from gets them (idempotent)."""
    monkeypatch.setattr(gx_expectation, "camel_to_snake", gx_util.camel_to_snake)
    for name in NAMES:
        monkeypatch.setattr(Expectation, name, expectation_config.ORIGINALS[name])
    assert not expectation_config.installed()

    def changed(self: Any) -> dict[str, Any]:  # a release that reads its domain kwargs another way
        return {key: None for key in self.domain_keys}

    monkeypatch.setattr(Expectation, "_get_domain_kwargs", changed)
    assert expectation_config.install() is False
    assert Expectation.__dict__["_get_domain_kwargs"] is changed
    assert Expectation.__dict__["_get_success_kwargs"] is expectation_config.ORIGINALS["_get_success_kwargs"]

    monkeypatch.setattr(Expectation, "_get_domain_kwargs", expectation_config.ORIGINALS["_get_domain_kwargs"])
    assert expectation_config.install() is True and expectation_config.install() is True
    assert expectation_config.installed()
    assert gx_expectation.camel_to_snake.__wrapped__ is gx_util.camel_to_snake  # type: ignore[attr-defined]


def test_a_function_whose_source_cannot_be_read_matches_nothing() -> None:
    scope: dict[str, Any] = {}
    exec("def camel_to_snake(name):\n    return name\n", scope)  # no file to read it back from
    assert expectation_config.fingerprint(scope["camel_to_snake"]) == ""
    assert expectation_config.fingerprint(len) == ""
    assert expectation_config.fingerprint(gx_util.camel_to_snake) == expectation_config.KNOWN["camel_to_snake"]


def test_a_gx_whose_type_names_come_another_way_keeps_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    def other(name: str) -> str:  # a release that names its types another way
        return name.lower()

    monkeypatch.setattr(gx_expectation, "camel_to_snake", other)
    assert expectation_config.install() is False
    assert gx_expectation.camel_to_snake is other and not expectation_config.installed()
