"""OpenLineage run events for every delivery, and the lineage walk behind ``handoff lineage``.

Events (START, COMPLETE, FAIL) carry schema, column-lineage, data-quality and output
statistics facets. The file transport (default) appends JSON lines under
``HANDOFF_HOME/lineage``; the HTTP transport posts to ``HANDOFF_LINEAGE_URL`` (Marquez etc.).
The run id is derived from the batch id, so every event of one batch shares it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import sys
import uuid
from pathlib import Path
from typing import Any

from handoff.checks import deferred
from handoff.config import Settings
from handoff.policy.order import Order
from handoff.policy.source_model import COLUMN_BY_NAME
from handoff.state.batch import Batch


def producer() -> str:
    """The package's own URL from its metadata (``[project.urls] Source``), at this version's tag."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        meta = metadata("handoff")
    except PackageNotFoundError:
        return "https://pypi.org/project/handoff/"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [] if ", " in u)
    source = urls.get("Source", "https://pypi.org/project/handoff").rstrip("/")
    return f"{source}/tree/v{meta['Version']}"


def source_dataset(url: str, table: str) -> tuple[str, str]:
    """The source table's dataset as OpenLineage's naming spec names it: ``postgres://host:port`` and
    ``database.schema.table`` for PostgreSQL (the schema from ``search_path`` in the URL, else
    ``public``), ``mysql://host:port`` and ``database.table`` for MySQL/MariaDB, ``sqlite`` files by
    path; the same table through another driver or user is the same dataset."""
    import re

    import sqlalchemy as sa

    try:
        u = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return url, table
    backend = u.get_backend_name()
    if backend == "postgresql":
        options = str(u.query.get("options", ""))
        found = re.search(r"search_path(?:=|%3D)([A-Za-z0-9_]+)", options)
        return (
            f"postgres://{u.host or 'localhost'}:{u.port or 5432}",
            f"{u.database}.{found.group(1) if found else 'public'}.{table}",
        )
    if backend in ("mysql", "mariadb"):
        return f"mysql://{u.host or 'localhost'}:{u.port or 3306}", f"{u.database}.{table}"
    if backend == "sqlite":
        return "file://localhost", f"{u.database or ':memory:'}/{table}"
    return f"{backend}://{u.host or 'localhost'}{':' + str(u.port) if u.port else ''}", f"{u.database}.{table}"


# Imported by OpenLineage's client for transports handoff never configures: httpx2 by the async HTTP
# transport (handoff's HTTP transport uses requests), fsspec by the file transport for remote paths
# only (handoff's file is local). About 22 ms of every release here; ``deferred`` loads either on use.
UNUSED_BY_LINEAGE = ("httpx2", "fsspec")
deferred.defer(UNUSED_BY_LINEAGE)  # before anything here imports OpenLineage's client
GENERATED = "openlineage.client.generated"
# The generated facet modules handoff's events are built from (``_datasets``, ``emit``), and the run's
# tags, which OpenLineage's client adds to every event. ``facet_v2`` imports all of them (about 40, each
# building its attrs classes as it is imported): the others are deferred (``import_client``).
FACETS_BUILT = ("base", "column_lineage_dataset", "data_quality_assertions_dataset", "error_message_run",
                "output_statistics_output_dataset", "schema_dataset", "sql_job", "tags_run")  # fmt: skip
# What OpenLineage's HTTP transport binds from requests as its package imports; the file transport
# (handoff's default) never calls either, and the HTTP transport imports requests when it builds its session.
BOUND_BY_HTTP_TRANSPORT = (("requests", ("Session",)), ("requests.adapters", ("HTTPAdapter",)))


def unused_facets() -> tuple[str, ...]:
    """OpenLineage's generated facet modules other than ``FACETS_BUILT``, by their dotted names (read from
    the package's folder, never imported); none when OpenLineage is not installed."""
    spec = deferred.find(GENERATED)
    if spec is None or not spec.submodule_search_locations:
        return ()
    found = {p.stem for folder in spec.submodule_search_locations for p in Path(folder).glob("*.py")}
    return tuple(f"{GENERATED}.{m}" for m in sorted(found - {"__init__", *FACETS_BUILT}))


def import_client() -> None:
    """Import OpenLineage's client without building the facets handoff never emits (``unused_facets``) and
    without requests (``BOUND_BY_HTTP_TRANSPORT``): together about 0.05 s of a 0.8 s release here
    (docs/benchmarks.md). Each still imports whenever anything touches it: an event with another facet,
    or the HTTP transport (``HANDOFF_LINEAGE_TRANSPORT=http``) building its session."""
    if "openlineage.client" in sys.modules:
        return
    deferred.defer(unused_facets())
    with contextlib.ExitStack() as bound:
        for package, names in BOUND_BY_HTTP_TRANSPORT:
            bound.enter_context(deferred.names_only(package, names))
        importlib.import_module("openlineage.client")


_NS = uuid.UUID("7f0c6a32-1d7e-4c55-9a64-0e3c1f0a9b21")


def run_id(batch_id: str) -> str:
    return str(uuid.uuid5(_NS, batch_id))


def _client(settings: Settings) -> Any:
    import_client()
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    if settings.lineage_transport == "http":
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        if not settings.lineage_url:
            from handoff.errors import ConfigError

            raise ConfigError("HANDOFF_LINEAGE_TRANSPORT=http needs HANDOFF_LINEAGE_URL")
        return OpenLineageClient(transport=HttpTransport(HttpConfig(url=settings.lineage_url)))
    settings.lineage_dir.mkdir(parents=True, exist_ok=True)
    path = settings.lineage_dir / "events.jsonl"
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(path), append=True)))


def _datasets(batch: Batch, order: Order, bucket: str, folder: str, final: bool) -> tuple[list[Any], list[Any]]:
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        column_lineage_dataset as cl,
    )
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset as dq,
    )
    from openlineage.client.facet_v2 import (
        output_statistics_output_dataset as os_,
    )
    from openlineage.client.facet_v2 import (
        schema_dataset as sd,
    )

    src_ns, src_name = source_dataset(batch.source_url, batch.source_tables[0])
    kind = {"text": "VARCHAR", "code": "VARCHAR", "date": "DATE", "timestamp": "TIMESTAMP"}
    fields = [sd.SchemaDatasetFacetFields(name=c, type=kind[COLUMN_BY_NAME[c].kind]) for c in order.columns]
    failures = {f.get("rule") for f in batch.validation.get("failed_expectations", [])}
    assertions = [
        dq.Assertion(assertion=str(e), success=e not in failures, column=None)
        for e in ["exact_columns", *sorted(batch.quarantined_by_rule)]
    ]
    inputs = [
        InputDataset(
            namespace=src_ns, name=src_name,
            facets={"schema": sd.SchemaDatasetFacet(fields=fields)},
            inputFacets={"dataQualityAssertions": dq.DataQualityAssertionsDatasetFacet(assertions=assertions)},
        )
    ]  # fmt: skip
    lineage_fields = {
        c: cl.Fields(
            inputFields=[cl.InputField(namespace=src_ns, name=src_name, field=c,
                                       transformations=[cl.Transformation(type="DIRECT", subtype="IDENTITY")])],
        )
        for c in order.columns
    }  # fmt: skip
    out_facets: dict[str, Any] = {
        "schema": sd.SchemaDatasetFacet(fields=fields),
        "columnLineage": cl.ColumnLineageDatasetFacet(fields=lineage_fields),
    }
    output_facets: dict[str, Any] = {}
    if final:
        output_facets["outputStatistics"] = os_.OutputStatisticsOutputDatasetFacet(
            rowCount=sum(f.rows for f in batch.files), size=sum(f.bytes for f in batch.files),
            fileCount=len(batch.files),
        )  # fmt: skip
    outputs = [OutputDataset(namespace=f"s3://{bucket}", name=folder, facets=out_facets, outputFacets=output_facets)]
    return inputs, outputs


def emit(
    settings: Settings,
    state: str,
    batch: Batch,
    order: Order,
    bucket: str,
    folder: str,
    now: dt.datetime,
    error: str | None = None,
) -> None:
    """Emit one run event: ``state`` is START, COMPLETE or FAIL."""
    if settings.lineage_transport == "none":
        return
    import_client()
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, sql_job

    inputs, outputs = _datasets(batch, order, bucket, folder, state == "COMPLETE")
    run_facets: dict[str, Any] = {}
    if error:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(message=error, programmingLanguage="python")
    event = RunEvent(
        eventType=RunState[state],
        eventTime=now.astimezone(dt.UTC).isoformat(),
        run=Run(runId=run_id(batch.id), facets=run_facets),
        job=Job(namespace=settings.lineage_namespace, name=f"handoff.transfer.{order.order_id}",
                facets={"sql": sql_job.SQLJobFacet(query=batch.query_sql)}),
        inputs=inputs,
        outputs=outputs,
        producer=producer(),
    )  # fmt: skip
    _client(settings).emit(event)
