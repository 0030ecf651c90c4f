"""The batch state machine: every status, and which status may follow which.

One table (``FOLLOWS``) decides every transition; ``batch.set_status`` refuses any other with a
``StateError``. ``delivering`` carries an owner and a lease (``lease``): a live delivery is never
resumed by another process, an expired one is taken over exactly once.

    staged ─┬─▶ held ◀──▶ awaiting-approval ◀──▶ approved ─▶ delivering ─▶ delivered ─▶ withdrawn
            │     (gates re-evaluated: any of these may follow another)      │  │
            ├─▶ quarantined, empty, rejected, superseded (final)              │  └─▶ failed (final)
            └──────────────────────────────────────────────────────────────── └─▶ held (a stop mid-delivery)
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import secrets
import socket
from dataclasses import dataclass

from handoff.errors import StateError


class Status(enum.StrEnum):
    STAGED = "staged"
    QUARANTINED = "quarantined"
    HELD = "held"
    AWAITING = "awaiting-approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    SUPERSEDED = "superseded"
    EMPTY = "empty"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


# Statuses the gates decide between; a re-evaluation may move a batch among them.
GATED = frozenset({Status.STAGED, Status.HELD, Status.AWAITING, Status.APPROVED})
FOLLOWS: dict[Status, frozenset[Status]] = {
    **{s: GATED | {Status.REJECTED, Status.SUPERSEDED, Status.EMPTY} for s in GATED},
    Status.APPROVED: GATED | {Status.REJECTED, Status.SUPERSEDED, Status.DELIVERING},
    # A lease taken over stays delivering; a stop mid-delivery withdraws the objects and holds it.
    Status.DELIVERING: frozenset({Status.DELIVERING, Status.DELIVERED, Status.FAILED, Status.HELD}),
    Status.DELIVERED: frozenset({Status.WITHDRAWN}),
    Status.QUARANTINED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.SUPERSEDED: frozenset(),
    Status.EMPTY: frozenset(),
    Status.FAILED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}
FINAL = frozenset(s for s, nxt in FOLLOWS.items() if not nxt)
# Batches no gate moves any more (only a withdrawal, from delivered): shown as recorded.
SETTLED = FINAL | {Status.DELIVERED}
# Batches a release looks at: waiting on gates, approved, or mid-delivery (live or crashed).
OPEN = sorted(GATED | {Status.DELIVERING})


def check(batch_id: str, current: str, new: Status) -> None:
    """Refuse a transition the table does not allow, naming both ends."""
    try:
        now = Status(current)
    except ValueError:
        raise StateError(f"batch {batch_id} has an unknown status {current!r}; the state database was edited") from None
    if new != now and new not in FOLLOWS[now]:  # staying put only updates the reason
        raise StateError(f"batch {batch_id} cannot go from {now} to {new}")


def owner_id() -> str:
    """Who holds a delivery lease: this host, this process, this run."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def process_exists(pid: int) -> bool:
    """Whether a process with this id exists on this host (one this user may not signal exists too)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError included: it is there, only not ours
        return True
    return True


def owner_gone(owner: str | None) -> bool:
    """True when the lease's owner is a process on this host that no longer exists (killed, crashed):
    its delivery can be taken over at once instead of waiting out the lease. Another host's owner,
    or a process that still exists (even an unrelated one reusing the id), is never called gone."""
    host, _, rest = (owner or "").partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname()[:40] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return 0 < pid != os.getpid() and not process_exists(pid)


@dataclass(frozen=True)
class Lease:
    """A delivery in flight: who holds it, until when (renewed after every object)."""

    owner: str | None
    until: dt.datetime | None

    def live(self, now: dt.datetime) -> bool:
        return bool(self.owner and self.until and self.until > now)

    def held_by(self, owner: str, now: dt.datetime) -> bool:
        return self.live(now) and self.owner == owner
