"""handoff: court-governed transfer of Medicaid enrollee records to an S3 handoff bucket.

The domain modules here are plain typed Python; ``flows/`` composes them into Prefect flows
and ``handoff.cli`` exposes them on the command line.
"""

from __future__ import annotations

import os

# Telemetry off before any library that reports usage is imported.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from handoff.errors import (  # noqa: E402
    ConfigError,
    DeliveryError,
    DeliveryFailed,
    DeliveryStopped,
    GateError,
    HandoffError,
    NotFound,
    PolicyError,
    SignatureError,
    SourceError,
    StateError,
    ValidationFailed,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DeliveryError",
    "DeliveryFailed",
    "DeliveryStopped",
    "GateError",
    "HandoffError",
    "NotFound",
    "PolicyError",
    "SignatureError",
    "SourceError",
    "StateError",
    "ValidationFailed",
    "__version__",
]
