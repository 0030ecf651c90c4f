"""Modules a library imports but handoff never uses, loaded only when touched.

Importing GX 1.x imports every core expectation, and one of them (KL divergence) imports altair
and ``scipy.stats`` at module level: more than a third of GX's import time here, for an
expectation no order's suite holds (``docs/benchmarks.md``); likewise ``jsonschema`` (for the
JSON-schema expectation's metric), ``mistune`` (GX's HTML views), ``webbrowser`` (opening
data docs), about 0.08 s of CPU together, and ``boto3`` with s3transfer (its S3 datasources), about
0.05 s; OpenLineage's client imports the
packages of every transport (``evidence.lineage``). ``defer`` puts a stand-in for each in
``sys.modules``; the first attribute read on a stand-in imports the real module, which then
replaces it, so a suite (or transport) that did use one still works, only slower to start.

GX also binds ``declarative_base`` from SQLAlchemy's ORM as it starts, and never calls it; nothing
else handoff runs uses the ORM, whose import is 0.06-0.08 s of CPU here. ``names_only`` lets such a
``from package import name`` bind a forwarder for the length of a block (GX's import), leaving the
package to import as usual afterwards.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Imported by GX at start-up, used only by expectations handoff's suites do not contain, by data docs
# (rendered HTML, opened in a browser) or by its S3 datasources (boto3: handoff's own S3 clients come
# from botocore, ``storage.deliver.client``), never by a validation.
UNUSED_BY_SUITES = ("altair", "scipy.stats", "jsonschema", "mistune", "webbrowser", "boto3")
# What GX imports by name from a package it never otherwise uses while it starts (``names_only``).
BOUND_BY_GX = ("sqlalchemy.orm", ("declarative_base",))
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
            real = importlib.import_module(name)
            for child in _submodules(name):  # imported while the stand-in stood: the package names them
                if not hasattr(real, child):
                    setattr(real, child, sys.modules[f"{name}.{child}"])
            return real


def _submodules(package: str) -> list[str]:
    """The direct submodules of ``package`` imported so far, by their last name."""
    prefix = package + "."
    return [k[len(prefix) :] for k in list(sys.modules) if k.startswith(prefix) and "." not in k[len(prefix) :]]


def _stand_in(name: str) -> Deferred | None:
    """A stand-in for ``name``, or None when it is imported already or not installed."""
    if name in sys.modules:
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:  # not installed: GX's own import then fails or copes, as without us
        return None
    stand_in = Deferred(name)
    stand_in.__spec__ = spec  # importers read __spec__; it must not trigger a load
    return stand_in


def defer(names: tuple[str, ...] = UNUSED_BY_SUITES) -> list[str]:
    """Put a stand-in for each of ``names`` that is not imported yet (and exists); return those deferred."""
    done = []
    with _LOCK:
        for name in names:
            stand_in = _stand_in(name)
            if stand_in is not None:
                sys.modules[name] = stand_in
                done.append(name)
    return done


def _forwarder(stand_in: Deferred, name: str) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(stand_in._load(), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    return forward


@contextmanager
def names_only(package: str, names: tuple[str, ...]) -> Iterator[None]:
    """While the block runs, ``from package import name`` (for each of ``names``) binds a forwarder that
    imports ``package`` when called, and ``package`` itself is not imported; any other use of it (another
    name, an attribute) imports it, as with ``defer``. After the block ``package`` imports as usual."""
    with _LOCK:
        stand_in = _stand_in(package)
        if stand_in is not None:
            # A package: ``from package import x`` asks for __path__ first, which must not load it.
            stand_in.__path__ = list(getattr(stand_in.__spec__, "submodule_search_locations", None) or [])
            for name in names:
                setattr(stand_in, name, _forwarder(stand_in, name))
            sys.modules[package] = stand_in
    try:
        yield
    finally:
        with _LOCK:
            if stand_in is not None and sys.modules.get(package) is stand_in:
                if _submodules(package):  # a submodule came in under the stand-in: the package must too
                    stand_in._load()
                else:
                    del sys.modules[package]


def loaded(name: str) -> bool:
    """Whether ``name`` is imported for real (not absent, not a stand-in)."""
    module = sys.modules.get(name)
    return module is not None and not isinstance(module, Deferred)
