"""The parts of Great Expectations that no handoff suite uses, bound by name only while GX imports.

Importing GX 1.x builds every fluent datasource type it ships (Spark, SQL databases, pandas over
files in S3, GCS, Azure or DBFS, ...: pydantic models, about 0.15 s of CPU here), every core
expectation (about 60 classes, each registering itself, about 0.15 s) and the view that renders its
data docs through jinja2, while handoff validates in-memory pandas frames against suites built by
``policy.suite`` from six expectation types (``suite.EXPECTATION_TYPES``) and never builds data docs.
GX 1.x also ships a second metric framework (``great_expectations.metrics``: a pydantic model per
metric, about 25, roughly 0.06-0.1 s of CPU here) that its package imports whole, for
``Batch.compute_metrics`` and SQL row queries; a validation of a pandas frame computes its metrics
through the providers of ``great_expectations.expectations.metrics`` and never builds one of those
models. ``unused`` lists those modules with the names GX's package files
import from them; ``validate.import_gx`` binds each name to a ``deferred.Forwarder`` for the length
of GX's import, so the module is not run, and imports the expectations a suite names afterwards
(``load_expectation``). Anything that uses a bound name (calls it, reads from it, subclasses it)
imports the real module first, so a suite of another expectation type still validates, only slower
to start; a datasource type not built is not offered by ``context.data_sources`` until then.

The names are read from GX's own ``__init__`` files (``ast``, never imported), so a GX release that
moves them leaves them imported as usual, only slower; ``tests/test_gx_start.py`` notices that.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

from handoff.checks import deferred

EXPECTATIONS = "great_expectations.expectations.core"
DATASOURCES = "great_expectations.datasource.fluent"
METRICS = "great_expectations.metrics"
# The metric base class: the fluent datasources subclass and read it as GX starts, so it is always built.
METRICS_BUILT = (f"{METRICS}.metric",)
# Fluent datasource modules handoff never uses (it adds a pandas datasource with a dataframe asset).
UNUSED_DATASOURCES = (
    "alloy_datasource", "aurora_datasource", "bigquery_datasource", "citus_datasource", "databricks_sql_datasource",
    "fabric", "fabric_datasource", "neon_datasource", "pandas_azure_blob_storage_datasource",
    "pandas_dbfs_datasource", "pandas_file_path_datasource", "pandas_filesystem_datasource",
    "pandas_google_cloud_storage_datasource", "pandas_s3_datasource", "postgres_datasource", "redshift_datasource",
    "snowflake_datasource", "spark_azure_blob_storage_datasource", "spark_datasource", "spark_dbfs_datasource",
    "spark_file_path_datasource", "spark_filesystem_datasource", "spark_google_cloud_storage_datasource",
    "spark_s3_datasource", "sql_datasource", "sql_server_datasource", "sqlite_datasource",
)  # fmt: skip
# Imported by name elsewhere in GX as it starts (``core.validation_definition``): never bound.
ALWAYS_BUILT = ("unexpected_rows_expectation",)
# Data docs' page view: the class that renders GX's HTML pages through jinja2's templates, which its
# render package imports by name as GX starts. handoff's reports are JSON and it never builds data docs;
# jinja2 and the view are about 0.025 s of CPU of GX's start here (``docs/benchmarks.md``).
PAGE_VIEW = ("great_expectations.render.view", ("DefaultJinjaPageView",))
_TYPE = re.compile(r"[a-z][a-z0-9_]*")


def _imports(package: str, nested: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names) for each ``from module import names`` at the top of ``package``'s ``__init__``: its
    own modules, and with ``nested`` the modules of its subpackages too."""
    spec = deferred.find(package)
    if spec is None or spec.origin is None:
        return []
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    out: dict[str, tuple[str, ...]] = {}  # one module may be imported from twice
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or node.module is None or any(a.name == "*" for a in node.names):
            continue
        module = f"{package}.{node.module}" if node.level == 1 else node.module
        if module.rpartition(".")[0] == package or (nested and module.startswith(f"{package}.")):
            out[module] = (*out.get(module, ()), *(a.name for a in node.names))
    return list(out.items())


def unused(expectation_types: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names GX imports from it) for every datasource module in ``UNUSED_DATASOURCES``, every
    core expectation module other than ``expectation_types`` and ``ALWAYS_BUILT``, every metric
    model module other than ``METRICS_BUILT``, and data docs' ``PAGE_VIEW``."""
    keep = {f"{EXPECTATIONS}.{t}" for t in (*expectation_types, *ALWAYS_BUILT)}
    skip = {f"{DATASOURCES}.{m}" for m in UNUSED_DATASOURCES}
    return (
        [(m, names) for m, names in _imports(EXPECTATIONS) if m not in keep]
        + [(m, names) for m, names in _imports(DATASOURCES) if m in skip]
        + [(m, names) for m, names in _imports(METRICS, nested=True) if m not in METRICS_BUILT]
        + [PAGE_VIEW]
    )


def load_expectation(expectation_type: str) -> None:
    """Build the core expectation ``expectation_type`` (registering it with GX) if GX started without
    it; a type that is not one of GX's core expectations is left for GX to refuse by name."""
    module = f"{EXPECTATIONS}.{expectation_type}"
    if module in sys.modules or not _TYPE.fullmatch(expectation_type) or deferred.find(module) is None:
        return
    importlib.import_module(module)
