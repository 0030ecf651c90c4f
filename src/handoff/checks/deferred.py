"""Modules a library imports but handoff never uses, loaded only when touched.

Importing GX 1.x imports every core expectation, and one of them (KL divergence) imports altair
and ``scipy.stats`` at module level: more than a third of GX's import time here, for an
expectation no order's suite holds (``docs/benchmarks.md``); likewise ``jsonschema`` (for the
JSON-schema expectation's metric), ``mistune`` (GX's HTML views) and ``webbrowser`` (opening
data docs), about 0.08 s of CPU together; OpenLineage's client imports the
packages of every transport (``evidence.lineage``). ``defer`` puts a stand-in for each in
``sys.modules``; the first attribute read on a stand-in imports the real module, which then
replaces it, so a suite (or transport) that did use one still works, only slower to start.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

# Imported by GX at start-up, used only by expectations handoff's suites do not contain, by data docs
# (rendered HTML, opened in a browser), never by a validation.
UNUSED_BY_SUITES = ("altair", "scipy.stats", "jsonschema", "mistune", "webbrowser")
_LOCK = threading.RLock()  # re-entrant: loading one stand-in may load another


class Deferred(types.ModuleType):
    """A stand-in module: the first attribute it lacks imports the real module (thread-safe)."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def _load(self) -> types.ModuleType:
        name = self.__name__
        with _LOCK:
            if sys.modules.get(name) is self:
                del sys.modules[name]
            return importlib.import_module(name)


def defer(names: tuple[str, ...] = UNUSED_BY_SUITES) -> list[str]:
    """Put a stand-in for each of ``names`` that is not imported yet (and exists); return those deferred."""
    done = []
    with _LOCK:
        for name in names:
            if name in sys.modules:
                continue
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            if spec is None:  # not installed: GX's own import then fails or copes, as without us
                continue
            stand_in = Deferred(name)
            stand_in.__spec__ = spec  # importers read __spec__; it must not trigger a load
            sys.modules[name] = stand_in
            done.append(name)
    return done


def loaded(name: str) -> bool:
    """Whether ``name`` is imported for real (not absent, not a stand-in)."""
    module = sys.modules.get(name)
    return module is not None and not isinstance(module, Deferred)
