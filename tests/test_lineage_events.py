"""Every delivery emits OpenLineage START and COMPLETE (or FAIL) run events that trace the file."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import pytest
from support import NOW, approve, build_settings, record_upheld, transfer

from handoff.errors import DeliveryError
from handoff.evidence.lineage import run_id
from handoff.transfer import Lifecycle


def _deliver(life: Lifecycle, source_url: str, bucket: str) -> Any:
    batch = transfer(life, source_url, bucket, NOW).batch
    record_upheld(life)
    approve(life, batch.id, "ada", NOW)
    [done] = life.release(NOW)
    return done


def _events(home: Path) -> list[dict[str, Any]]:
    path = home / "lineage" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_delivery_emits_start_and_complete_with_schema_lineage_and_quality(
    tmp_path: Path, sqlite_source_url: str, s3: Any, audit_bucket
) -> None:
    home = tmp_path / "home"
    life = Lifecycle(build_settings(home, bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket))
    done = _deliver(life, sqlite_source_url, s3.name)
    assert done.batch.status == "delivered"

    events = _events(home)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in events} == {run_id(done.batch.id)}
    complete = events[-1]
    order = life.policies.get(done.batch.order_ref)

    [source] = complete["inputs"]
    db_path = done.batch.source_url.removeprefix("sqlite:///")
    assert (source["namespace"], source["name"]) == ("file://localhost", f"{db_path}/enrollees")
    assert [f["name"] for f in source["facets"]["schema"]["fields"]] == order.columns
    assertions = source["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert {"assertion": "exact_columns", "success": True} in [
        {k: a[k] for k in ("assertion", "success")} for a in assertions
    ]

    [out] = complete["outputs"]
    assert out["namespace"] == f"s3://{s3.name}"
    assert done.manifest_key.startswith(out["name"])
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == order.columns
    lineage = out["facets"]["columnLineage"]["fields"]
    assert sorted(lineage) == sorted(order.columns)
    assert lineage["birth_dt"]["inputFields"][0]["field"] == "birth_dt"
    assert "ssn_num" not in json.dumps(complete), "a denied column appears in lineage"
    stats = out["outputFacets"]["outputStatistics"]
    assert stats["rowCount"] == done.batch.rows_staged and stats["fileCount"] == len(done.batch.files)
    meta = metadata("handoff")
    source = next(u.split(", ", 1)[1] for u in meta.get_all("Project-URL") or [] if u.startswith("Source, "))
    assert {e["producer"] for e in events} == {f"{source}/tree/v{meta['Version']}"}  # the package's own URL
    assert complete["job"]["facets"]["sql"]["query"] == done.batch.query_sql
    assert "POSTCOMPILE" not in done.batch.query_sql and "'01'" in done.batch.query_sql  # the statement that ran


@pytest.mark.parametrize(
    ("url", "namespace", "name"),
    [
        ("postgresql+psycopg://reader@db.example:5433/medicaid", "postgres://db.example:5433", "medicaid.public.enrollees"),
        ("postgresql+psycopg://other@db.example:5433/medicaid?options=-csearch_path%3Dtmsis", "postgres://db.example:5433",
         "medicaid.tmsis.enrollees"),
        ("postgresql://db.example/medicaid", "postgres://db.example:5432", "medicaid.public.enrollees"),
        ("mysql+pymysql://root@127.0.0.1:3306/test", "mysql://127.0.0.1:3306", "test.enrollees"),
        ("sqlite:////data/source.db", "file://localhost", "/data/source.db/enrollees"),
    ],
)  # fmt: skip
def test_the_source_is_named_as_openlineage_names_datasets(url: str, namespace: str, name: str) -> None:
    """One table is one dataset in Marquez, whatever the driver or user that read it."""
    from handoff.evidence.lineage import source_dataset

    assert source_dataset(url, "enrollees") == (namespace, name)


def test_failed_delivery_emits_fail_with_the_error(
    tmp_path: Path, sqlite_source_url: str, s3: Any, monkeypatch: pytest.MonkeyPatch, audit_bucket
) -> None:
    home = tmp_path / "home"
    life = Lifecycle(build_settings(home, bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket))

    def broken(*_a: Any, **_k: Any) -> Any:
        raise DeliveryError("upload refused (simulated)")

    monkeypatch.setattr("handoff.storage.deliver.start_upload", broken)
    done = _deliver(life, sqlite_source_url, s3.name)
    assert done.error and "simulated" in done.error
    events = _events(home)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert "simulated" in events[-1]["run"]["facets"]["errorMessage"]["message"]


class _Collector(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append({"path": self.path, "event": json.loads(body)})
        self.send_response(201)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_http_transport_posts_events_to_a_lineage_server(tmp_path: Path, sqlite_source_url: str, s3: Any,
                                                         audit_bucket: str) -> None:  # fmt: skip
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        life = Lifecycle(
            build_settings(
                tmp_path / "home",
                bucket=s3.name,
                kms_key_id=s3.kms_key_id,
                audit_bucket=audit_bucket,
                lineage_transport="http",
                lineage_url=url,
            )
        )
        done = _deliver(life, sqlite_source_url, s3.name)
    finally:
        server.shutdown()
    assert done.batch.status == "delivered"
    got = _Collector.received
    assert [r["event"]["eventType"] for r in got] == ["START", "COMPLETE"]
    assert all(r["path"] == "/api/v1/lineage" for r in got)
    assert not (tmp_path / "home" / "lineage" / "events.jsonl").exists()


EMIT_ALONE = """
import json, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from handoff.checks import deferred
from handoff.config import load_settings
from handoff.evidence import lineage

UNUSED = ("httpx2", "fsspec", "requests", "openlineage.client.generated.parent_run",
          "openlineage.client.generated.ownership_job")
USED_BELOW = ("httpx2", "requests", "openlineage.client.generated.ownership_job")
settings = load_settings(home=Path(sys.argv[1]), policy_dir=Path(sys.argv[2]))
client = lineage._client(settings)  # imports OpenLineage's client, as a release's first event does
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
event = RunEvent(eventType=RunState.START, eventTime="2026-01-07T12:00:00+00:00", run=Run(runId=lineage.run_id("b1")),
                 job=Job(namespace="handoff", name="handoff.transfer.test"), producer=lineage.producer())
client.emit(event)
loaded = {name: deferred.loaded(name) for name in UNUSED}
by_emit = [name for name in lineage.unused_facets() if deferred.loaded(name)]  # the client's own facets are built

posted = []
class Collector(BaseHTTPRequestHandler):
    def do_POST(self):
        posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(201)
        self.end_headers()
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", 0), Collector)
threading.Thread(target=server.serve_forever, daemon=True).start()
http = lineage._client(load_settings(home=Path(sys.argv[1]), policy_dir=Path(sys.argv[2]), lineage_transport="http",
                                     lineage_url=f"http://127.0.0.1:{server.server_address[1]}"))
http.emit(event)  # the HTTP transport, in the same process: requests is imported as it builds its session
server.shutdown()

from openlineage.client.facet_v2 import ownership_job  # a facet handoff never builds: built when used
from openlineage.client.serde import Serde
owners = Serde.to_dict(ownership_job.OwnershipJobFacet(owners=[ownership_job.Owner(name="team:data")]))
import httpx2  # what OpenLineage's async HTTP transport does with it: the real module, loaded on use
print(json.dumps({"loaded": loaded, "url": str(httpx2.URL("http://127.0.0.1/x").path),
                  "after_use": {name: deferred.loaded(name) for name in USED_BELOW},
                  "posted": [e["run"]["runId"] for e in posted], "owners": owners["owners"], "by_emit": by_emit}))
"""


def test_events_are_written_without_loading_what_handoff_does_not_use(tmp_path: Path) -> None:
    """A release writes its events without importing httpx2 or fsspec (OpenLineage's async HTTP and
    remote-file transports), requests (its HTTP transport) or the facets handoff never emits; each still
    works when touched: the HTTP transport posts, another facet builds. In a fresh interpreter, as a
    release runs."""
    import subprocess
    import sys

    from support import POLICY_DIR

    out = subprocess.run([sys.executable, "-c", EMIT_ALONE, str(tmp_path / "home"), str(POLICY_DIR)],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == dict.fromkeys(result["loaded"], False), result["loaded"]
    assert len(result["loaded"]) == 5
    assert result["url"] == "/x" and result["after_use"] == dict.fromkeys(result["after_use"], True)
    assert len(result["after_use"]) == 3
    assert result["posted"] == [run_id("b1")], "the HTTP transport, started after the deferral, posts"
    assert result["owners"] == [{"name": "team:data"}]
    assert result["by_emit"] == [], "a facet OpenLineage's client adds to every event was deferred"
    [event] = _events(tmp_path / "home")
    assert event["eventType"] == "START" and event["run"]["runId"] == run_id("b1")


def test_every_facet_handoff_emits_is_built_as_the_client_imports() -> None:
    """``FACETS_BUILT`` names real modules of OpenLineage's generated facets, and the deferred list
    leaves them out: a renamed facet module would otherwise be imported on first use, or not at all."""
    from handoff.evidence.lineage import FACETS_BUILT, GENERATED, unused_facets

    unused = unused_facets()
    assert len(unused) >= 20, "OpenLineage's generated facets were not found"
    assert not {f"{GENERATED}.{m}" for m in FACETS_BUILT} & set(unused)
    import importlib.util

    for module in FACETS_BUILT:
        assert importlib.util.find_spec(f"{GENERATED}.{module}") is not None, module
