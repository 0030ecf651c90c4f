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
# handoff does no linear algebra, but numpy's OpenBLAS starts a thread per extra core as numpy loads,
# each spinning for about 0.08 s of CPU before it sleeps (measured here): CPU taken from the scans
# and the checks, in every process and in every check worker. One thread unless the user says more.
BLAS_THREADS_DEFAULTED = "OPENBLAS_NUM_THREADS" not in os.environ  # the bench runs other tools without it
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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
