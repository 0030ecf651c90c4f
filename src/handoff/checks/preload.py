"""What the check workers' fork server imports once, before it forks any worker.

``chunkcheck`` (which installs the import-time shortcuts of ``validate``) and GX (as
``validate.import_gx`` imports it), imported with
no garbage collection while they load (``heap.uncollected``: 1.24-1.34 s instead of 1.55-1.99 s
here), then frozen out of the collector (``gc.freeze``): every worker forked from the server
starts with them loaded and never walks them, so their pages also stay shared with the server.
"""

from __future__ import annotations

import gc

from handoff.extract import heap

with heap.uncollected():
    from handoff.checks import chunkcheck  # noqa: F401 - first: its validate module installs GX's shortcuts
    from handoff.checks.validate import import_gx

    import_gx()
gc.freeze()
