"""Starting Great Expectations without what no suite uses: a validation never loads altair,
scipy.stats, jsonschema, mistune, webbrowser, boto3 or SQLAlchemy's ORM, nor builds GX's pandas
reader assets, its other datasource types, the expectations handoff's suites do not name or the models
of its second metric framework, and an expectation, datasource or metric that does use them still
works (each in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from support import POLICY_DIR

from handoff.policy.suite import EXPECTATION_TYPES

VALIDATE = textwrap.dedent(
    """
    import datetime as dt, json, sys
    import pyarrow as pa
    from handoff.checks import deferred, reader_assets
    from handoff.checks.validate import SuiteValidator
    from handoff.policy.order import PolicySet
    from handoff.policy.suite import load_suite
    from handoff.extract import reader

    from pathlib import Path
    policies = PolicySet(Path(sys.argv[1]))
    order = policies.current()
    suite = load_suite(policies, order)
    if sys.argv[2] == "kl":  # a suite of one expectation that needs scipy.stats
        suite = {"name": "kl", "expectations": [{
            "type": "expect_column_kl_divergence_to_be_less_than",
            "kwargs": {"column": "x", "partition_object": {"values": [1, 2], "weights": [0.5, 0.5]},
                       "threshold": 0.1}}]}
        table = pa.table({"id": ["a", "b", "c", "d"], "x": [1, 2, 1, 1]})
        id_column = "id"
    elif sys.argv[2] == "json":  # one that needs jsonschema: the second value is not an object
        suite = {"name": "json", "expectations": [{
            "type": "expect_column_values_to_match_json_schema",
            "kwargs": {"column": "x", "json_schema": {"type": "object"}}}]}
        table = pa.table({"id": ["a", "b"], "x": ['{"k": 1}', "[1]"]})
        id_column = "id"
    elif sys.argv[2] == "bad":  # a column the order does not permit: the column-list expectation fails
        table = reader.arrow_schema(order).empty_table().append_column("ssn", pa.array([], pa.string()))
        id_column = order.source.id_column
    else:
        table = reader.arrow_schema(order).empty_table()
        id_column = order.source.id_column
    verdict = SuiteValidator(suite, id_column).validate(table, dt.date(2026, 1, 7))
    from great_expectations.datasource.fluent.pandas_datasource import PandasDatasource
    print(json.dumps({"passed": verdict.passed, "evaluated": verdict.evaluated,
                      "failures": [f.as_dict() for f in verdict.failures],
                      "loaded": {n: deferred.loaded(n) for n in deferred.UNUSED_BY_SUITES},
                      "orm": "sqlalchemy.orm" in sys.modules,
                      "marshmallow_validators": deferred.loaded("marshmallow.validate"),
                      "page_view": [deferred.loaded("jinja2"), "great_expectations.render.view.view" in sys.modules],
                      "readers_skipped": reader_assets.skipped(),
                      "asset_types": [t.__name__ for t in PandasDatasource.asset_types],
                      "expectations_built": sorted(k.rsplit(".", 1)[1] for k in sys.modules
                                                   if k.startswith("great_expectations.expectations.core.")),
                      "datasources_built": sorted(k.rsplit(".", 1)[1] for k in sys.modules
                                                  if k.startswith("great_expectations.datasource.fluent.")
                                                  and k.endswith("datasource")),
                      "metrics_built": sorted(k for k in sys.modules if k.startswith("great_expectations.metrics."))}))
    """
)


def _run(kind: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", VALIDATE, str(POLICY_DIR), kind], capture_output=True, text=True,
                         timeout=300, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_validating_with_the_orders_suite_never_loads_what_it_does_not_use() -> None:
    result = _run("order")
    assert result["passed"] is True and result["failures"] == []
    assert set(result["loaded"]) == {"altair", "scipy.stats", "jsonschema", "mistune", "webbrowser", "boto3"}
    assert not any(result["loaded"].values()), result["loaded"]
    assert result["orm"] is False, "GX binds declarative_base from SQLAlchemy's ORM; nothing here uses the ORM"
    assert result["marshmallow_validators"] is False, "no field loads a value while GX validates"
    assert result["page_view"] == [False, False], "no validation renders data docs' pages (nor loads jinja2)"
    # GX started without a model per pandas.read_* function; the dataframe asset it validates is there.
    assert result["readers_skipped"] is True
    assert "DataFrameAsset" in result["asset_types"] and "CSVAsset" not in result["asset_types"]
    # Of GX's ~60 core expectations, only those handoff's suites are built from (and one GX imports itself).
    assert result["expectations_built"] == sorted([*EXPECTATION_TYPES, "unexpected_rows_expectation"])
    assert "pandas_datasource" in result["datasources_built"]
    assert not {"spark_datasource", "snowflake_datasource", "sql_server_datasource"} & set(result["datasources_built"])
    # Of GX's second metric framework (a model per metric, for ``Batch.compute_metrics``), only the base
    # classes GX's datasources read as it starts, and the one model a metric provider imports by path.
    metrics = "great_expectations.metrics."
    assert result["metrics_built"] == [
        metrics + m
        for m in ("column", "column.column", "column.descriptive_stats", "metric", "metric_name", "metric_results")
    ]


def test_a_chunk_that_breaks_the_suite_still_fails_with_the_reader_assets_skipped() -> None:
    result = _run("bad")
    assert result["readers_skipped"] is True and result["passed"] is False
    assert result["marshmallow_validators"] is False
    assert {f["expectation"] for f in result["failures"]} == {"expect_table_columns_to_match_ordered_list"}


def test_an_expectation_that_needs_a_deferred_module_still_validates() -> None:
    result = _run("kl")
    assert result["evaluated"] == 1
    # 3 of 4 values are 1: far from the expected 50/50, so KL divergence exceeds 0.1 and it fails,
    # as a computed result (scipy.stats loaded on use), not as an expectation that raised.
    assert result["passed"] is False
    assert [f["error"] for f in result["failures"]] == [None]
    assert result["loaded"]["scipy.stats"] is True
    # built when the suite named it
    assert "expect_column_kl_divergence_to_be_less_than" in result["expectations_built"]


def test_an_expectation_that_needs_jsonschema_still_finds_the_value_that_breaks_it() -> None:
    result = _run("json")
    assert result["evaluated"] == 1 and result["passed"] is False
    assert [f["error"] for f in result["failures"]] == [None]
    assert result["loaded"]["jsonschema"] is True


PRELOADED = """
import gc, json, sys
import handoff.checks.preload
from handoff.checks import deferred, field_copies, reader_assets
print(json.dumps({"gx": "great_expectations.expectations" in sys.modules, "readers_skipped": reader_assets.skipped(),
                  "fields_direct": field_copies.installed(),
                  "deferred_loaded": [n for n in deferred.UNUSED_BY_SUITES if deferred.loaded(n)],
                  "orm": "sqlalchemy.orm" in sys.modules,
                  "collecting": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


def test_the_check_workers_fork_server_starts_gx_with_its_shortcuts_and_freezes_it() -> None:
    """What every check worker process is forked from: GX loaded with the same shortcuts as in threads,
    collection back on, and the loaded objects frozen out of the workers' collections."""
    out = subprocess.run([sys.executable, "-c", PRELOADED], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["gx"] is True and result["readers_skipped"] is True and result["fields_direct"] is True
    assert result["deferred_loaded"] == [] and result["orm"] is False
    assert result["collecting"] is True and result["frozen"] > 100_000


NAMES_ONLY = """
import json, sys
from handoff.checks import deferred
seen = {}
with deferred.names_only("pkg", ("make",)):
    from pkg import make  # bound, not imported
    seen["bound_without_import"] = "PKG_RAN" not in __import__("os").environ and not deferred.loaded("pkg")
seen["after_block_absent"] = "pkg" not in sys.modules  # the block left nothing behind
seen["called"] = make(2)  # the forwarder imports pkg and calls the real one
seen["loaded_by_call"] = deferred.loaded("pkg")
import pkg
seen["one_module"] = pkg is sys.modules["pkg"] and __import__("os").environ["PKG_RAN"] == "1"  # ran once
with deferred.names_only("other", ("make",)):
    from other import size  # a name not in the list: the package imports, as with defer
seen["other_loaded"] = deferred.loaded("other") and size == 3
with deferred.names_only("third", ("make",)):
    import third.sub  # a submodule inside the block still imports
seen["submodule"] = third.sub.VALUE
import third
seen["third_real"] = deferred.loaded("third") and third.sub.VALUE == "sub"
# A module under a package that is not imported yet: neither runs until the name is used.
with deferred.names_only("fourth.base", ("Base",)):
    from fourth.base import Base
seen["module_unimported"] = "FOURTH_RAN" not in __import__("os").environ and "fourth" not in sys.modules
class Child(Base):  # subclassing the bound name subclasses the real class
    pass
seen["subclassed"] = [c.__name__ for c in Child.__mro__[:2]] + [Child().kind]
seen["read"] = Base.kind
print(json.dumps(seen))
"""


def test_a_name_bound_from_a_package_imports_it_only_when_called(tmp_path) -> None:
    """``names_only``: GX's ``from sqlalchemy.orm import declarative_base`` costs nothing until it is called;
    anything else that uses the package gets the real one, during the block or after it; a bound class
    can be subclassed and read from, which imports its module first."""
    for name, size in (("pkg", 1), ("other", 3), ("third", 1)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"import os\nos.environ['{name.upper()}_RAN'] = str(int(os.environ.get('{name.upper()}_RAN', '0')) + 1)\n"
            f"size = {size}\ndef make(n):\n    return n * 10\n"
        )
    (tmp_path / "third" / "sub.py").write_text("VALUE = 'sub'\n")
    (tmp_path / "fourth").mkdir()
    (tmp_path / "fourth" / "__init__.py").write_text("import os\nos.environ['FOURTH_RAN'] = '1'\n")
    (tmp_path / "fourth" / "base.py").write_text("class Base:\n    kind = 'real'\n")
    out = subprocess.run([sys.executable, "-c", NAMES_ONLY], capture_output=True, text=True, timeout=120,
                         check=False, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"bound_without_import": True, "after_block_absent": True, "called": 20, "loaded_by_call": True,
                    "one_module": True, "other_loaded": True, "submodule": "sub", "third_real": True,
                    "module_unimported": True, "subclassed": ["Child", "Base", "real"], "read": "real"}  # fmt: skip


SKIPPED_PARTS = """
import json, sys
from handoff.checks import deferred
from handoff.checks.validate import import_gx
gx = import_gx()
import great_expectations.datasource.fluent as fluent
import great_expectations.expectations as gxe
seen = {"spark_before": "great_expectations.datasource.fluent.spark_datasource" in sys.modules}
# A datasource type GX started without: its module, which subclasses two others GX also skipped.
from great_expectations.datasource.fluent.spark_filesystem_datasource import SparkFilesystemDatasource
seen["mro"] = [c.__name__ for c in SparkFilesystemDatasource.__mro__[1:3]]
seen["offered"] = hasattr(gx.get_context(mode="ephemeral").data_sources, "add_spark_filesystem")
seen["bound_name_is_forwarder"] = "imported on first use" in repr(fluent.SparkFilesystemDatasource)
# An expectation GX started without, built through the package's name for it.
e = gxe.ExpectColumnMaxToBeBetween(column="x", min_value=1)
seen["expectation"] = [type(e).__name__, e.expectation_type]
# A metric model GX started without, computed on a pandas batch through the package's name for it.
import pandas as pd
import great_expectations.metrics as gxm
seen["metric_before"] = "great_expectations.metrics.column.null_count" in sys.modules
batch = (gx.get_context(mode="ephemeral").data_sources.add_pandas("p").add_dataframe_asset("a")
         .add_batch_definition_whole_dataframe("w").get_batch(batch_parameters={"dataframe": pd.DataFrame({"x": [1, None, 3]})}))
got = batch.compute_metrics(gxm.ColumnNullCount(column="x"))
seen["metric"] = [type(got).__name__, got.value]
# marshmallow's fields, imported by GX with their validators bound by name: a field that validates
# still refuses what it must, through the real validators.
from marshmallow import ValidationError, fields
seen["validators_before"] = deferred.loaded("marshmallow.validate")
refused = []
for field, value in ((fields.Email(), "not an address"), (fields.Tuple((fields.Int(),)), [1, 2])):
    try:
        field.deserialize(value)
    except ValidationError as exc:
        refused.append(str(exc.messages[0] if isinstance(exc.messages, list) else exc.messages))
seen["refused"] = refused
seen["validators_after"] = deferred.loaded("marshmallow.validate")
# Data docs' page view, which GX started without (nor jinja2): a page still renders through it.
import great_expectations.render as gxr
seen["page_view_before"] = [deferred.loaded("jinja2"), "great_expectations.render.view.view" in sys.modules]
doc = gxr.RenderedDocumentContent(sections=[], data_asset_name="enrollees", page_title="handoff page",
                                  renderer_type="ExpectationSuitePageRenderer")
seen["page"] = "handoff page" in gxr.DefaultJinjaPageView().render(doc, expectation_suite_name_dot_count=0)
print(json.dumps(seen))
"""


def test_a_datasource_expectation_or_metric_gx_started_without_is_built_when_used() -> None:
    out = subprocess.run([sys.executable, "-c", SKIPPED_PARTS], capture_output=True, text=True, timeout=300,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"spark_before": False, "mro": ["_SparkFilePathDatasource", "_SparkDatasource"], "offered": True,
                    "bound_name_is_forwarder": True,
                    "expectation": ["ExpectColumnMaxToBeBetween", "expect_column_max_to_be_between"],
                    "metric_before": False, "metric": ["ColumnNullCountResult", 1], "validators_before": False,
                    "refused": ["Not a valid email address.", "Length must be 1."],
                    "validators_after": True, "page_view_before": [False, False], "page": True}  # fmt: skip


FIND = """
import json, sys
from handoff.checks import deferred
seen = {"nested": deferred.find("outer.inner.leaf").origin.endswith("leaf.py"),
        "missing": [deferred.find("outer.inner.nope"), deferred.find("outer.inner.leaf.below"), deferred.find("nowhere.x")],
        "before": deferred.find("later.mod")}
seen["nothing_ran"] = not {"outer", "outer.inner", "outer.inner.leaf"} & set(sys.modules)
import importlib, pathlib
pathlib.Path("later").mkdir()  # a package installed afterwards, where the search already looked
pathlib.Path("later", "__init__.py").write_text("")
pathlib.Path("later", "mod.py").write_text("")
importlib.invalidate_caches()  # as an installer running in the process would
seen["after"] = deferred.find("later.mod").origin.endswith("mod.py")
print(json.dumps(seen))
"""


def test_a_module_is_found_where_it_would_import_from_without_running_its_packages(tmp_path) -> None:
    """``deferred.find`` (which places every stand-in): a module under nested packages, none of them
    run; a name that is missing, or under a plain module, is None; the packages found are remembered,
    a missing one is not, so a package installed later is still found."""
    (tmp_path / "outer" / "inner").mkdir(parents=True)
    (tmp_path / "outer" / "__init__.py").write_text("raise SystemExit('outer ran')\n")
    (tmp_path / "outer" / "inner" / "__init__.py").write_text("raise SystemExit('inner ran')\n")
    (tmp_path / "outer" / "inner" / "leaf.py").write_text("raise SystemExit('leaf ran')\n")
    out = subprocess.run([sys.executable, "-c", FIND], capture_output=True, text=True, timeout=120, check=False,
                         cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"nested": True, "missing": [None, None, None], "before": None, "nothing_ran": True, "after": True}
