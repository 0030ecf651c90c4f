"""Starting Great Expectations without its generated pandas reader assets, which handoff never uses.

Importing GX 1.x builds a pydantic model for every ``pandas.read_*`` function, twice (for the
pandas datasource and for the file-path datasources), by reading each function's signature and
docstring: about a fifth of GX's import time here (``docs/benchmarks.md``). handoff validates
in-memory frames only (``add_pandas(...).add_dataframe_asset``), never a CSV or Parquet asset.

``skip`` installs an import hook that, once GX's ``dynamic_pandas`` module has run, makes it list
no reader functions. GX copes with that by design (a reader a pandas build lacks is skipped the
same way): the pandas datasource then offers the dataframe asset (and GX's own hand-written BigQuery
asset) and nothing else. What a validation computes is unchanged: the dataframe asset is not
generated. Should a GX release rename the function, the hook patches nothing and GX starts as
before, only slower. The hook holds for the whole process: a program that embeds handoff and wants
GX's file-reading assets for itself imports GX before handoff's checks, and keeps them.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

MODULE = "great_expectations.datasource.fluent.dynamic_pandas"
_LOCK = threading.Lock()


def _no_readers(blacklist: Sequence[str] | None = None) -> list[tuple[str, Any]]:
    return []


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.inner.exec_module(module)
        if hasattr(module, "_extract_io_methods"):
            module._extract_io_methods = _no_readers  # type: ignore[attr-defined]


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:  # fmt: skip
        if fullname != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def skip() -> bool:
    """Install the hook before GX is imported (idempotent); whether it is in place (False when GX was
    imported before it could be)."""
    with _LOCK:
        if "great_expectations" in sys.modules:
            return any(isinstance(f, _Finder) for f in sys.meta_path)
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())
        # The file-path datasources, left with no asset type, each log a warning as GX registers them.
        logging.getLogger("great_expectations.datasource.fluent.sources").setLevel(logging.ERROR)
        return True


def skipped() -> bool:
    """Whether GX was started without the generated reader assets (the pandas datasource offers none)."""
    module = sys.modules.get(MODULE)
    return module is not None and getattr(module, "_extract_io_methods", None) is _no_readers
