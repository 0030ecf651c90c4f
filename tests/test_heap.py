"""The garbage collector skips long-lived objects during the work, and gets them back after."""

from __future__ import annotations

import gc

from handoff import heap


def test_frozen_excludes_what_lives_now_and_hands_it_back() -> None:
    assert gc.get_freeze_count() == 0
    with heap.frozen():
        assert gc.get_freeze_count() > 0
        with heap.frozen():  # a nested scope leaves the outer one's freeze in place
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0  # a long-lived process keeps nothing frozen afterwards


def test_frozen_hands_objects_back_when_the_work_fails() -> None:
    try:
        with heap.frozen():
            raise RuntimeError("the read failed")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0
