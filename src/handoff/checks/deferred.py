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
else handoff runs uses the ORM, whose import is 0.06-0.08 s of CPU here (and marshmallow, which GX
imports, binds two validators it calls only when a field loads a value). ``names_only`` lets such a
``from package import name`` bind a forwarder for the length of a block (GX's import), leaving the
package to import as usual afterwards. A module under a package that is not imported yet can be
bound so too (its package is not imported to find it), and a bound name can be called, read from or
subclassed: each imports the real module first. GX's own datasources and expectations that no
handoff suite uses are bound so (``gx_parts``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Imported by GX at start-up, used only by expectations handoff's suites do not contain, by data docs
# (rendered HTML, opened in a browser) or by its S3 datasources (boto3: handoff's own S3 clients come
# from botocore, ``storage.deliver.client``), never by a validation.
UNUSED_BY_SUITES = ("altair", "scipy.stats", "jsonschema", "mistune", "webbrowser", "boto3")
# What GX imports by name from a package it never otherwise uses while it starts (``names_only``).
BOUND_BY_GX = ("sqlalchemy.orm", ("declarative_base",))
# What marshmallow's fields import from its validators when GX first imports marshmallow: the
# validators run only when a field loads a value, which no validation does, and their module
# compiles its e-mail and URL patterns (over every Unicode letter, case-folded) as it is imported:
# about 0.03-0.06 s of CPU here. ``from marshmallow import validate`` there gets the stand-in.
BOUND_BY_MARSHMALLOW = ("marshmallow.validate", ("And", "Length"))
_LOCK = threading.RLock()  # re-entrant: loading one stand-in may load another


class Deferred(types.ModuleType):
    """A stand-in module: the first attribute it lacks imports the real module (thread-safe)."""

    def __getattr__(self, attr: str) -> Any:
        if attr == "__path__" and getattr(self.__spec__, "submodule_search_locations", None) is None:
            raise AttributeError(attr)  # a module, not a package: ``from module import x`` asks first
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


def _imported_under(stand_in: Deferred) -> bool:
    """Whether a submodule was imported while ``stand_in`` stood for its package: the import system sets
    each submodule as an attribute of the package it finds in ``sys.modules``. (Asking ``_submodules``
    scans every module name, once per package bound: 14 ms for GX's 81 when it starts.)"""
    return any(isinstance(v, types.ModuleType) for v in vars(stand_in).values())


def find(name: str) -> importlib.machinery.ModuleSpec | None:
    """Where ``name`` would be imported from, without importing it or any package above it (which
    ``importlib.util.find_spec`` does for a dotted name); None when it is not installed."""
    head, _, rest = name.rpartition(".")
    if not head:
        return _find_top(name)
    package = _package(head, tuple(sys.path))
    if package is None:
        return None
    parent = sys.modules.get(head)
    path = getattr(parent, "__path__", None) or list(package.submodule_search_locations or ())
    return importlib.machinery.PathFinder.find_spec(name, path)


def _find_top(name: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


# Each package above a dotted name, found once per search path: GX's start asks for about 100 modules
# under the same few packages (0.009 s when each looked from the top of ``sys.path`` again, here).
# Only packages that were found are kept, so one installed later is still found.
_PACKAGES: dict[tuple[str, tuple[str, ...]], importlib.machinery.ModuleSpec] = {}


def _package(dotted: str, search: tuple[str, ...]) -> importlib.machinery.ModuleSpec | None:
    """The spec of package ``dotted`` (None when it is missing or a plain module), for ``sys.path`` as ``search``."""
    known = _PACKAGES.get((dotted, search))
    if known is not None:
        return known
    spec = find(dotted)
    if spec is None or spec.submodule_search_locations is None:
        return None
    _PACKAGES[(dotted, search)] = spec
    return spec


def _stand_in(name: str) -> Deferred | None:
    """A stand-in for ``name``, or None when it is imported already or not installed."""
    if name in sys.modules:
        return None
    spec = find(name)
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
                parent, _, child = name.rpartition(".")
                if parent in sys.modules:  # as importing it would: ``import a.b`` then ``a.b.x`` reads it there
                    setattr(sys.modules[parent], child, stand_in)
                done.append(name)
    return done


class Forwarder:
    """A name bound from a stand-in: calling it, reading from it or subclassing it imports the real
    module and uses the real object."""

    def __init__(self, stand_in: Deferred, name: str) -> None:
        self._stand_in, self.__name__, self.__qualname__ = stand_in, name, name
        self._real: list[Any] = []  # the real object, once imported

    def real(self) -> Any:
        if not self._real:
            self._real.append(getattr(self._stand_in._load(), self.__name__))
        return self._real[0]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.real()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)  # copy, pickle and the like ask for protocols: not a reason to import
        return getattr(self.real(), attr)

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[Any, ...]:  # ``class X(bound_name)``
        return (self.real(),)

    def __repr__(self) -> str:
        return f"<{self._stand_in.__name__}.{self.__name__}, imported on first use>"


@contextmanager
def names_only(package: str, names: tuple[str, ...]) -> Iterator[None]:
    """While the block runs, ``from package import name`` (for each of ``names``) binds a forwarder that
    imports ``package`` when called, and ``package`` itself is not imported; any other use of it (another
    name, an attribute) imports it, as with ``defer``. After the block ``package`` imports as usual."""
    with _LOCK:
        stand_in = _stand_in(package)
        if stand_in is not None:
            locations = getattr(stand_in.__spec__, "submodule_search_locations", None)
            if locations is not None:  # a package: ``from package import x`` asks for __path__ first
                stand_in.__path__ = list(locations)
            for name in names:
                setattr(stand_in, name, Forwarder(stand_in, name))
            sys.modules[package] = stand_in
    try:
        yield
    finally:
        with _LOCK:
            if stand_in is not None and sys.modules.get(package) is stand_in:
                if _imported_under(stand_in):  # a submodule came in under the stand-in: the package must too
                    stand_in._load()
                else:
                    del sys.modules[package]


def loaded(name: str) -> bool:
    """Whether ``name`` is imported for real (not absent, not a stand-in)."""
    module = sys.modules.get(name)
    return module is not None and not isinstance(module, Deferred)
