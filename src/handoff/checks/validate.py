"""Great Expectations validation of everything that would leave, failing closed.

A chunk passes only when GX reports success, evaluated exactly as many expectations as the
suite holds, and none raised. Reports name failed expectations and the Medicaid IDs of
offending rows, never the offending values: GX's COMPLETE format copies values into its
result, so results are stripped here and the raw object is never logged or written.

Every expectation runs on every row. The table-level expectations (the exact column list) see
the whole chunk; each column's expectations see that column alone, as one GX batch per column,
because GX copies the frame it is given once per column expectation, and see it again beside the
ID only where one failed, to name the rows. A small unit (up to ``WHOLE_UNIT_ROWS`` rows) is one
batch for the whole suite, where GX's set-up per batch costs more than the copies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from handoff.checks import deferred, expectation_config, field_copies, gx_parts, reader_assets
from handoff.errors import PolicyError
from handoff.extract import heap
from handoff.policy.rules import SNAPSHOT_PARAM, mask_id
from handoff.policy.suite import EXPECTATION_TYPES, SuiteDoc

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
deferred.defer()  # before GX is imported (here, or by the fork server after this module)
reader_assets.skip()
field_copies.install()
MAX_IDS_PER_EXPECTATION = 1000
# Up to this many rows a unit is one GX batch for the whole suite: a batch per column costs about
# 0.05 s more per validation (GX's batch and validator set-up, 18 times), and saves ~1 µs a row.
WHOLE_UNIT_ROWS = 20_000
# Table-level expectations that read only the frame's column names, never a row.
SCHEMA_ONLY = frozenset(
    {
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_to_exist",
    }
)


@dataclass
class Failure:
    expectation: str
    rule: str
    column: str | None
    unexpected_count: int | None
    medicaid_ids: list[str]
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "rule": self.rule,
            "column": self.column,
            "unexpected_count": self.unexpected_count,
            "medicaid_ids": self.medicaid_ids,
            "error": self.error,
        }


@dataclass
class ChunkVerdict:
    passed: bool
    evaluated: int
    expected: int
    rows: int
    failures: list[Failure] = field(default_factory=list)


def _no_fingerprints() -> None:
    """Stop GX hashing every DataFrame on get_batch (about 1.3 s per million rows; TRAPS.md).

    The fingerprint is only a batch marker; handoff fingerprints content itself (SHA-256 of
    every staged file), so GX's is pure cost. GX skips it for frames above HASH_THRESHOLD.
    """
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0


def import_gx(expectation_types: tuple[str, ...] = EXPECTATION_TYPES) -> Any:
    """``great_expectations``, imported without SQLAlchemy's ORM, which it binds one name from and never
    uses, without marshmallow's validators (``deferred.BOUND_BY_MARSHMALLOW``), and without building the
    datasources, expectations and metric models that handoff's suites do not use (``deferred.names_only``,
    ``gx_parts``); each still imports whenever anything uses it, and a suite names its expectations as
    it loads (``SuiteValidator``)."""
    with contextlib.ExitStack() as bound:
        if "great_expectations" not in sys.modules:
            for package, names in [deferred.BOUND_BY_GX, deferred.BOUND_BY_MARSHMALLOW,
                                   *gx_parts.unused(expectation_types)]:  # fmt: skip
                bound.enter_context(deferred.names_only(package, names))
        import great_expectations as gx

        importlib.import_module("great_expectations.expectations")
    expectation_config.install()  # one configuration per kwarg read, not one per key; type names remembered
    for expectation_type in expectation_types:
        gx_parts.load_expectation(expectation_type)
    return gx


def _quiet_gx() -> None:
    for name in ("great_expectations", "great_expectations.core", "great_expectations.expectations"):
        logging.getLogger(name).setLevel(logging.ERROR)


class SuiteValidator:
    """Validates Arrow chunks against one suite. Not thread-safe: one per worker thread."""

    def __init__(self, suite_doc: SuiteDoc, id_column: str) -> None:
        with heap.uncollected():  # GX's import and context: long-lived objects, no garbage
            self._start(suite_doc, id_column)

    def _start(self, suite_doc: SuiteDoc, id_column: str) -> None:
        gx = import_gx()
        _quiet_gx()
        _no_fingerprints()
        self.id_column = id_column
        self._doc = suite_doc
        self._suites: dict[str, Any] = {}
        self._whole: dict[str, Any] = {}
        expectations = self._expectations(None)
        if not expectations:
            raise PolicyError(f"suite {suite_doc.get('name')} is empty; an empty suite proves nothing")
        self.size = len(expectations)
        self.context = gx.get_context(mode="ephemeral")
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        except Exception:  # noqa: BLE001 - progress bars are cosmetic
            pass
        asset = self.context.data_sources.add_pandas("outgoing").add_dataframe_asset("chunk")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        # The table-level expectations see the whole frame, each column's a frame of that column
        # and the ID (``_validate_domains``), each a batch of the one batch definition.
        self.domains = list(dict.fromkeys(_domain(e) for e in expectations))

    def _expectations(self, snapshot: str | None) -> list[Any]:
        """Expectation objects, with ``$PARAMETER`` references bound to concrete values.

        Binding here, instead of passing ``expectation_parameters`` to GX, avoids GX's
        pyparsing-based parameter parser, which is not thread-safe (it raised TypeErrors
        when two threads validated at once).
        """
        from great_expectations.exceptions import ExpectationNotFoundError
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        out = []
        for i, e in enumerate(self._doc["expectations"]):
            kwargs = {
                k: (snapshot if isinstance(v, dict) and v.get("$PARAMETER") == SNAPSHOT_PARAM and snapshot else v)
                for k, v in (e.get("kwargs") or {}).items()
            }
            try:
                gx_parts.load_expectation(str(e["type"]))
                conf = ExpectationConfiguration(type=e["type"], kwargs=kwargs, meta=e.get("meta"))
                out.append(conf.to_domain_obj())
            except (ExpectationNotFoundError, KeyError, TypeError, ValueError) as exc:
                raise PolicyError(
                    f"suite {self._doc.get('name')}: expectation #{i} ({e.get('type')}) cannot be loaded: "
                    f"{exc}; fix the suite with `handoff policy build`"
                ) from None
        return out

    def suite_for(self, snapshot: dt.date) -> dict[str | None, Any]:
        """The suite's expectations, bound to ``snapshot``, as one GX suite per domain (``_domain``)."""
        from great_expectations.core import ExpectationSuite

        key = f"{snapshot.isoformat()}T23:59:59"
        if key not in self._suites:
            parts: dict[str | None, list[Any]] = {domain: [] for domain in self.domains}
            for e in self._expectations(key):
                parts[_domain(e)].append(e)
            name = str(self._doc.get("name"))
            self._suites[key] = {d: ExpectationSuite(name=f"{name}:{d or 'table'}", expectations=es)
                                 for d, es in parts.items()}  # fmt: skip
        return self._suites[key]

    def whole_suite(self, snapshot: dt.date) -> Any:
        """The suite's expectations, bound to ``snapshot``, as one GX suite (for a small unit)."""
        from great_expectations.core import ExpectationSuite

        key = f"{snapshot.isoformat()}T23:59:59"
        if key not in self._whole:
            self._whole[key] = ExpectationSuite(name=str(self._doc.get("name")), expectations=self._expectations(key))
        return self._whole[key]

    def _validate_domains(self, table: pa.Table, snapshot: dt.date) -> list[Any]:
        """Every expectation's result: a boolean-only pass per domain, COMPLETE (row IDs) where one failed.

        Each domain's frame is converted from Arrow on its own (``_frame``), so pandas holds one
        column at a time (two for a failure's report), never the whole chunk: GX filters the frame it
        is given once per column expectation (non-null rows), copying every column (200,000 clean
        rows, each column alone instead of beside the ID: 0.386 -> 0.355 s of CPU). A unit of up to
        ``WHOLE_UNIT_ROWS`` rows is one frame and one batch for the whole suite instead: the same
        expectations on the same rows, with GX's set-up paid once.
        """
        if table.num_rows <= WHOLE_UNIT_ROWS:
            return self._validate_part(_frame(table), self.whole_suite(snapshot))
        results = []
        for domain, suite in self.suite_for(snapshot).items():
            part = self._part(table, domain, suite)
            alone = self._alone(part, domain)
            if alone is None:
                results.extend(self._validate_part(_frame(part), suite))
            else:
                results.extend(self._validate_part(_frame(alone), suite, with_ids=part))
        return results

    def _alone(self, part: pa.Table, domain: str | None) -> pa.Table | None:
        """A column's values without the ID beside them, for the boolean pass: GX copies every column
        of the frame once per expectation, and the ID is read only for a failure's report. None for
        the table's expectations, the ID's own and a column the table lacks."""
        if domain is None or domain == self.id_column or part.column_names != [self.id_column, domain]:
            return None
        return part.select([domain])

    def _validate_part(self, part: Any, suite: Any, with_ids: pa.Table | None = None) -> list[Any]:
        """``suite``'s results on the frame ``part``: boolean-only, then COMPLETE (row IDs) if anything
        failed, on ``part`` or, where ``part`` is a column alone, on ``with_ids`` (its rows with the ID)."""
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": part})
        # A passing chunk needs only booleans; GX's COMPLETE format filters the whole frame once
        # per expectation even when nothing failed. Only a failing part is re-run for row IDs.
        result = batch.validate(suite, result_format="BOOLEAN_ONLY")
        if not (
            result.success
            and len(result.results) == len(suite.expectations)
            and not any(r.exception_info and _raised(r.exception_info) for r in result.results)
        ):
            if with_ids is not None:
                batch = self.batch_definition.get_batch(batch_parameters={"dataframe": _frame(with_ids)})
            result = batch.validate(
                suite,
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": [self.id_column],
                    "include_unexpected_rows": False,
                    "return_unexpected_index_query": False,
                    "partial_unexpected_count": 0,
                },
            )
        return list(result.results)

    def _part(self, table: pa.Table, domain: str | None, suite: Any) -> pa.Table:
        """The rows and columns one domain's expectations read.

        A column's: that column and the ID, every row. The table's: every column, and no rows when
        each of its expectations reads only the column list (``SCHEMA_ONLY``), so the whole chunk
        is never converted at once. A column the table lacks: the whole table, where its
        expectations fail by name.
        """
        if domain is None:
            schema_only = all(e.expectation_type in SCHEMA_ONLY for e in suite.expectations)
            return table.slice(0, 0) if schema_only else table
        cols = list(dict.fromkeys([self.id_column, domain]))
        return table.select(cols) if set(cols) <= set(table.column_names) else table

    def validate(self, table: pa.Table, snapshot: dt.date) -> ChunkVerdict:
        try:
            results = self._validate_domains(table, snapshot)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            failure = Failure("convert", "convert", None, None, [], error=type(exc).__name__)
            return ChunkVerdict(False, 0, self.size, table.num_rows, [failure])
        failures: list[Failure] = []
        for r in results:
            raised = bool(r.exception_info and _raised(r.exception_info))
            if r.success and not raised:
                continue
            cfg = r.expectation_config
            res = r.result or {}
            ids = [
                mask_id(str(row.get(self.id_column)))
                for row in (res.get("unexpected_index_list") or [])[:MAX_IDS_PER_EXPECTATION]
                if isinstance(row, dict)
            ]
            failures.append(
                Failure(
                    expectation=cfg.type if cfg else "?",
                    rule=str((cfg.meta or {}).get("rule", "?")) if cfg else "?",
                    column=(cfg.kwargs or {}).get("column") if cfg else None,
                    unexpected_count=res.get("unexpected_count"),
                    medicaid_ids=ids,
                    error="expectation raised an exception" if raised else None,
                )
            )
        evaluated = len(results)
        passed = all(r.success for r in results) and evaluated == self.size and not failures
        if evaluated != self.size:
            failures.append(Failure("suite_size", "suite_size", None, None, [], error=f"{evaluated}/{self.size}"))
        return ChunkVerdict(passed, evaluated, self.size, table.num_rows, failures)


def _frame(table: pa.Table) -> Any:
    """``table`` as pandas, dates as datetime64[ns] so GX's vectorised between() applies (string
    bounds are parsed)."""
    cols = [c.cast(pa.timestamp("ns")) if pa.types.is_date(c.type) else c for c in table.columns]
    return pa.table(cols, names=table.column_names).to_pandas()


def _domain(expectation: Any) -> str | None:
    """The column an expectation reads (its domain), or None for a table-level one (the column list)."""
    column = (expectation.configuration.kwargs or {}).get("column")
    return str(column) if column is not None else None


def _raised(info: Any) -> bool:
    if isinstance(info, dict):
        if info.get("raised_exception"):
            return True
        return any(_raised(v) for v in info.values() if isinstance(v, dict))
    return bool(getattr(info, "raised_exception", False))
