"""One exception hierarchy for the whole product.

Every message says what happened and what to do next. The CLI prints a ``HandoffError``
as one line and exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HandoffError(Exception):
    """Base class: a problem the user or operator can act on."""

    exit_code: int = 2


class ConfigError(HandoffError):
    """Configuration is missing or malformed."""


class PolicyError(HandoffError):
    """A court-order policy file or suite is malformed, missing or inconsistent."""


class SourceError(HandoffError):
    """The source database cannot be read as the policy requires."""


class ValidationFailed(HandoffError):
    """Outgoing data failed validation; the batch is quarantined."""


class CheckerDied(HandoffError):
    """A validation worker process ended before answering; nothing of the batch was staged."""


class GateError(HandoffError):
    """A gate refused an action (held, unauthorised approver, voided approval)."""


class SignatureError(GateError):
    """A signed statement does not verify: bad signature, wrong role, unlisted or expired key."""


class DeliveryError(HandoffError):
    """Upload to, or verification in, the handoff bucket failed; the next release may resume it."""


class DeliveryFailed(DeliveryError):
    """A delivery that cannot complete (changed or missing file, failed verification): never retried."""


class DeliveryStopped(DeliveryError):
    """An emergency stop interrupted a delivery before its manifest."""


class LeaseLost(DeliveryError):
    """Another process took this delivery over (its lease had expired); this one stops touching it."""


class StateError(HandoffError):
    """The state database or ledger is missing, inconsistent or tampered with."""


class NotFound(HandoffError):
    """A batch, hearing or order named by the user does not exist."""
