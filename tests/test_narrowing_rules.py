"""What `narrowed` may install, rule by rule: each way of permitting more is named, exactly; a
version that only permits less passes. Pure: the shipped order and edited copies of it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from support import POLICY_DIR

from handoff.policy.narrowing import successor_problems, widened
from handoff.policy.order import PolicySet

OLD = PolicySet(POLICY_DIR).current()


def edit(order: Any = OLD, **changes: Any) -> Any:
    return order.model_copy(update={"version": order.version + 1, **changes})


def _scope(**changes: Any) -> Any:
    return OLD.jurisdiction_scope.model_copy(update=changes)


def _conditions(column: str, **changes: Any) -> Any:
    conds = [c.model_copy(update=changes) if c.column == column else c for c in OLD.population.all_of]
    return OLD.population.model_copy(update={"all_of": conds})


TX_OUT = edit(jurisdiction_scope=_scope(overrides={"TX": "excluded", "CA": "excluded"}))
CA_OUT = edit(TX_OUT, jurisdiction_scope=_scope(overrides={"CA": "excluded"}))
FIELDS = dict(OLD.permitted_fields)


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        pytest.param(OLD, edit(permitted_fields={**FIELDS, "phone": [*FIELDS["phone"], "elgbl_email_addr"]}),
                     f"permits columns elgbl_email_addr that {OLD.ref} does not", id="a-column-added"),
        pytest.param(OLD, edit(name_flag=True), "turns the name flag on", id="name-flag"),
        pytest.param(TX_OUT, CA_OUT, "brings TX into scope", id="a-state-brought-in"),
        pytest.param(TX_OUT, edit(TX_OUT, jurisdiction_scope=_scope()), "brings CA, TX into scope", id="two-brought-in"),
        pytest.param(OLD, edit(effective_at=OLD.effective_at - dt.timedelta(days=1)),
                     "takes effect earlier (2026-01-05T00:00:00-08:00)", id="earlier"),
        pytest.param(OLD, edit(source=OLD.source.model_copy(update={"table": "enrollees_all"})),
                     "reads another source table or key", id="another-table"),
        pytest.param(OLD, edit(required_fields=OLD.required_fields[:-1]), "no longer requires imgrtn_stus_cd",
                     id="a-required-field-dropped"),
        pytest.param(OLD, edit(approvals_required=0), "needs fewer approvals (0 < 1)", id="fewer-approvals"),
        pytest.param(OLD, edit(population=OLD.population.model_copy(update={"all_of": OLD.population.all_of[:-1]})),
                     "drops the condition on imgrtn_stus_5_yr_bar_end_dt", id="a-null-test-dropped"),
        pytest.param(OLD, edit(population=_conditions("imgrtn_stus_cd", in_=["3", "4"])),
                     "drops or widens the condition on imgrtn_stus_cd (codes 3)", id="codes-widened"),
        pytest.param(OLD, edit(population=_conditions("imgrtn_stus_5_yr_bar_end_dt", is_null=False)),
                     "drops the condition on imgrtn_stus_5_yr_bar_end_dt", id="a-null-test-inverted"),
    ],
)  # fmt: skip
def test_each_way_of_permitting_more_is_named(old: Any, new: Any, expect: str) -> None:
    found = widened(old, new)
    assert expect in found
    assert len(found) == (2 if "name flag" in expect else 1), found  # the flag also adds the name columns


@pytest.mark.parametrize(
    "new",
    [
        pytest.param(edit(permitted_fields={**FIELDS, "phone": []}), id="a-column-dropped"),
        pytest.param(TX_OUT, id="a-state-taken-out"),
        pytest.param(edit(effective_at=OLD.effective_at + dt.timedelta(days=1)), id="later"),
        pytest.param(edit(approvals_required=2), id="more-approvals"),
        pytest.param(edit(population=_conditions("imgrtn_stus_cd", in_=["3"])), id="same-codes"),
    ],
)
def test_a_version_that_only_permits_less_is_narrower(new: Any) -> None:
    assert widened(OLD, new) == []


def test_every_condition_is_compared_whatever_its_place() -> None:
    null_first = OLD.population.model_copy(update={"all_of": [OLD.population.all_of[-1], *OLD.population.all_of[:-1]]})
    old = edit(population=null_first)
    wider = [c.model_copy(update={"in_": ["3", "4"]}) if c.column == "imgrtn_stus_cd" else c for c in null_first.all_of]
    new = edit(old, population=null_first.model_copy(update={"all_of": wider}))
    assert widened(old, new) == ["drops or widens the condition on imgrtn_stus_cd (codes 3)"]


def _next(**changes: Any) -> Any:
    return OLD.model_copy(update={"version": OLD.version + 1, "supersedes": OLD.ref, **changes})


@pytest.mark.parametrize(
    ("changes", "expect"),
    [
        ({"order_id": "another-order"}, f"order_id 'another-order' is not {OLD.order_id!r}; a different order is a "
                                        "new order file signed by counsel, not a narrowing"),
        ({"version": OLD.version}, f"version {OLD.version} must be greater than {OLD.version}"),
        ({"supersedes": "another-order@v1"}, f"supersedes must be {OLD.ref!r} (found 'another-order@v1')"),
    ],
)  # fmt: skip
def test_only_the_next_version_of_the_same_order_may_narrow_it(changes: dict[str, Any], expect: str) -> None:
    new = _next(**changes)
    assert successor_problems(OLD, new) == [expect]
    assert successor_problems(OLD, _next()) == []
