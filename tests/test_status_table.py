"""The state machine's table itself: every transition it lists is allowed, every other one refused.

The expected table is written out here by hand from the lifecycle a person reads in the README
(and ``status.py``'s diagram), independently of ``FOLLOWS``: a loosened or tightened table fails.
"""

from __future__ import annotations

import itertools

import pytest

from handoff.errors import StateError
from handoff.status import FINAL, OPEN, Status, check

S = Status
GATED = {S.STAGED, S.HELD, S.AWAITING, S.APPROVED}
ALLOWED: set[tuple[Status, Status]] = {
    *((a, b) for a in GATED for b in GATED | {S.REJECTED, S.SUPERSEDED}),
    *((a, S.EMPTY) for a in (S.STAGED, S.HELD, S.AWAITING)),
    (S.APPROVED, S.DELIVERING),
    (S.DELIVERING, S.DELIVERED), (S.DELIVERING, S.FAILED), (S.DELIVERING, S.HELD),
    (S.DELIVERED, S.WITHDRAWN),
}  # fmt: skip


@pytest.mark.parametrize(("current", "new"), list(itertools.product(Status, Status)), ids=lambda s: str(s))
def test_a_transition_is_allowed_exactly_when_the_lifecycle_lists_it(current: Status, new: Status) -> None:
    if current == new or (current, new) in ALLOWED:
        check("b1", str(current), new)
    else:
        with pytest.raises(StateError, match=f"cannot go from {current} to {new}"):
            check("b1", str(current), new)


def test_final_and_open_statuses() -> None:
    assert {S.QUARANTINED, S.REJECTED, S.SUPERSEDED, S.EMPTY, S.FAILED, S.WITHDRAWN} == FINAL
    assert set(OPEN) == GATED | {S.DELIVERING}


def test_an_edited_unknown_status_is_refused_by_name() -> None:
    with pytest.raises(StateError, match="unknown status 'shipped'"):
        check("b1", "shipped", S.DELIVERED)
