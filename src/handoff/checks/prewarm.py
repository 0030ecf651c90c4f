"""Starting Great Expectations early: its import and a first context, on a daemon thread.

A transfer spends its first second authorising the signed request, checking the destination and
opening the snapshot, mostly waiting on the database, S3 and ssh; GX's import and first context
take about as long on the CPU. ``start`` at the top of a transfer overlaps the two; the checking
thread ``wait``s for it before building its own validator (two GX contexts are never built at once).
Importing this module loads nothing. ``HANDOFF_GX_PREWARM=0`` turns it off (the benchmark measures
a transfer both ways, side by side).
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)
_lock = threading.Lock()
_thread: threading.Thread | None = None


def start() -> None:
    """Begin warming GX in the background, once per process."""
    global _thread
    if os.environ.get("HANDOFF_GX_PREWARM", "1") == "0":
        return
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm, name="handoff-gx-prewarm", daemon=True)
            _thread.start()


def wait() -> None:
    """Block until a warm-up that was started has finished (at once if none was)."""
    with _lock:
        thread = _thread
    if thread is not None:
        thread.join()


def _warm() -> None:
    try:
        import great_expectations as gx

        from handoff.checks.validate import quiet_gx

        quiet_gx()
        gx.get_context(mode="ephemeral")
    except Exception:  # noqa: BLE001 - the validator builds its own context and says what failed
        log.debug("GX warm-up failed", exc_info=True)
