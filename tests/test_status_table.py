"""The state machine's table itself: every transition it lists is allowed, every other one refused.

The expected table is written out here by hand from the lifecycle a person reads in the README
(and ``status.py``'s diagram), independently of ``FOLLOWS``: a loosened or tightened table fails.
"""

from __future__ import annotations

import itertools

import pytest

from handoff.errors import StateError
from handoff.state.status import FINAL, OPEN, Status, check

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


def test_only_a_dead_process_on_this_host_gives_up_its_lease_at_once() -> None:
    """A lease's owner is host:pid:token; only an owner on this host whose process is gone is "gone"."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from handoff.state.status import owner_gone, owner_id

    host = socket.gethostname()[:40]
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)  # fmt: skip
    dead = int(child.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert owner_gone(f"{host}:{dead}:abc123") is True
        assert owner_gone(f"{host}:{dead}") is True  # written by hand without a token: still this host's, still gone
        assert owner_gone(f"{host}:{live.pid}:abc123") is False  # alive: its lease stands
        time.sleep(0.3)
        assert live.poll() is None, "asking whether a process lives must not signal it"
        assert owner_gone(f"another-host:{dead}:abc123") is False  # another host's process: unknowable here
        assert owner_gone(owner_id()) is False  # this very process
        assert owner_gone(f"{host}:{os.getpid()}:ffffff") is False  # another run in this process
        for malformed in (None, "", host, f"{host}:", f"{host}:notapid:x", f"{host}:-1:x", f"{host}:0:x"):
            assert owner_gone(malformed) is False, malformed
        from handoff.state.status import process_exists

        assert (process_exists(live.pid), process_exists(dead), process_exists(0), process_exists(-1)) == (
            True, False, False, False)  # fmt: skip
        assert process_exists(1) and owner_gone(f"{host}:1:x") is False  # init always exists
    finally:
        live.kill()
        live.wait()
    assert owner_id().startswith(f"{host}:{os.getpid()}:") and len(owner_id().rsplit(":", 1)[1]) == 6


def test_a_long_host_name_and_a_process_it_may_not_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Owners carry the host name cut to 40 characters; a process this user may not signal is alive."""
    import os
    import socket
    import subprocess
    import sys

    from handoff.state import status

    monkeypatch.setattr(socket, "gethostname", lambda: "h" * 50)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)  # fmt: skip
    owner = f"{status.owner_id().rsplit(':', 2)[0]}:{dead}:abc123"
    assert owner.startswith("h" * 40 + ":") and status.owner_gone(owner) is True

    def denied(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", denied)
    assert status.owner_gone(owner) is False
