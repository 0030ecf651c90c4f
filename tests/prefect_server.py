"""A real Prefect server and a real ``handoff serve`` for tests that run the flows the way operators do.

Loaded as a pytest plugin (``pytest_plugins = ["prefect_server"]`` in the test modules), so the
session-scoped ``prefect_server_process`` fixture is defined once and every module shares one server;
``prefect_server`` points this process's client at it for each test.

- ``prefect_server``: ``prefect server start`` (the venv's CLI) on a free loopback port with its
  own ``PREFECT_HOME``, started once a session; this process's client points at it during each test
  that asks for it, even after another test entered the in-process harness.
- ``ServeProcess``: ``handoff serve ...`` as a subprocess with the same API URL, so scheduled and
  triggered runs execute in the serve process's runner, exactly as in production.
- ``handoff_env``: a fresh handoff home, a seeded SQLite source, a bucket and KMS key on moto's
  HTTP server, the approvers, and the 2026-01-02 hearing recorded as upheld, as environment
  variables for both the test process and the serve subprocess.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import HANDOFF_BIN, KEYS, POLICY_DIR, REPO, record_upheld

from handoff_tools.emulator import free_port

PREFECT_BIN = HANDOFF_BIN.parent / "prefect"
GROUP = "west"
GROUP_STATES = ["CA", "OR"]
TRANSFER_DEPLOYMENT = f"handoff-transfer/transfer-{GROUP}"
RELEASE_DEPLOYMENT = "handoff-release/release"

SERVER_START_TIMEOUT = 60.0  # seen 10-20 s here; generous for a loaded machine
QUIET = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "False",
}


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as res:  # noqa: S310 - loopback only
        return res.status, res.read()


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _clean_env() -> dict[str, str]:
    """This process's environment without anything that would point Prefect elsewhere."""
    drop = ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_HOME", "PREFECT_API_KEY",
            "PREFECT_API_AUTH_STRING", "PREFECT_UI_API_URL", "PREFECT_SERVER_API_HOST",
            "PREFECT_SERVER_API_PORT")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop and k not in ("COLUMNS", "LINES")}
    env.update(QUIET)
    return env


def stop_process(proc: subprocess.Popen[Any], grace: float = 15.0, sig: int = signal.SIGINT) -> None:
    """Ask the process to stop with ``sig``, wait ``grace`` seconds, then kill its process group."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # The process was started in a session of its own: its group holds the runner's flow-run
    # children and the server's workers, and nothing else.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# ----- the server ---------------------------------------------------------------------------------
@dataclass
class PrefectServer:
    port: int
    home: Path
    log: Path
    process: subprocess.Popen[Any]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def healthy(self) -> bool:
        try:
            status, _ = _get(f"{self.api_url}/health")
        except (OSError, urllib.error.URLError):
            return False
        return status == 200

    def log_tail(self) -> str:
        return _tail(self.log)


def start_server(root: Path, timeout: float = SERVER_START_TIMEOUT) -> PrefectServer:
    port = free_port()
    home = root / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    api_url = f"http://127.0.0.1:{port}/api"
    env = _clean_env()
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_ENABLED="true",
        PREFECT_UI_API_URL=api_url,
        PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS="1",
    )
    log = root / "prefect-server.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [str(PREFECT_BIN), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=root, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = PrefectServer(port, home, log, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{server.log_tail()}")
        if server.healthy():
            return server
        time.sleep(0.5)
    stop_process(proc)
    raise RuntimeError(f"prefect server not healthy on {api_url} after {timeout:.0f} s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def prefect_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One real Prefect server for the session (its subprocesses find it through PREFECT_API_URL)."""
    server = start_server(tmp_path_factory.mktemp("prefect"))
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url  # before Prefect first reads its settings, if it has not
    try:
        yield server
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        stop_process(server.process)


@pytest.fixture
def prefect_server(prefect_server_process: PrefectServer) -> Iterator[PrefectServer]:
    """The session's real server, with this process's client pinned to it for the test: a test on the
    same worker that ran a flow in the in-process harness (``prefect_harness``, session-scoped) must
    not leave the client talking to the harness, where no deployment of ``handoff serve`` exists."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server_process.api_url}):
        yield prefect_server_process


# ----- the handoff environment ------------------------------------------------------------------
@dataclass
class HandoffEnv:
    """Everything a test and its ``handoff serve`` subprocess share."""

    home: Path
    source_url: str
    bucket: str
    kms_key_id: str
    s3_endpoint: str
    env: dict[str, str] = field(default_factory=dict)

    def settings(self) -> Any:
        from handoff.config import load_settings

        return load_settings(home=self.home, policy_dir=POLICY_DIR, bucket=self.bucket,
                             kms_key_id=self.kms_key_id, audit_bucket=self.env["HANDOFF_AUDIT_BUCKET"])  # fmt: skip

    def lifecycle(self) -> Any:
        from handoff.transfer import Lifecycle

        return Lifecycle(self.settings())

    def ledger(self, batch_id: str | None = None) -> list[Any]:
        from handoff.state import ledger

        life = self.lifecycle()
        try:
            with life.engine.connect() as conn:
                return list(ledger.entries(conn, batch_id=batch_id))
        finally:
            life.engine.dispose()

    def bucket_keys(self) -> list[str]:
        import boto3

        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=self.s3_endpoint)
        res = s3.list_objects_v2(Bucket=self.bucket)
        return sorted(o["Key"] for o in res.get("Contents", []))


@pytest.fixture
def handoff_env(
    tmp_path: Path,
    sqlite_source_url: str,
    s3_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    prefect_server: PrefectServer,
) -> HandoffEnv:
    """A fresh home with the hearing outcome recorded, a bucket, and the env a serve process needs."""
    from handoff_tools import emulator

    bucket = f"handoff-srv-{uuid.uuid4().hex[:12]}"
    key_id = emulator.create_bucket(s3_server, bucket)
    audit = f"handoff-audit-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(s3_server, audit, object_lock=True)
    home = tmp_path / "home"
    env = {
        "HANDOFF_HOME": str(home),
        "HANDOFF_POLICY_DIR": str(POLICY_DIR),
        "HANDOFF_SIGNING_KEY": str(KEYS.key("scheduler")),  # the deployment's service key (handoff-service)
        "HANDOFF_KMS_KEY_ID": key_id,
        "HANDOFF_AUDIT_BUCKET": audit,
        "HANDOFF_CHUNK_ROWS": "1000",
        "HANDOFF_LINEAGE_TRANSPORT": "file",
        "HANDOFF_CONFIG": str(home / "no-such-handoff.toml"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    he = HandoffEnv(home, sqlite_source_url, bucket, key_id, s3_server.endpoint, env)
    life = he.lifecycle()
    try:
        import datetime as dt

        record_upheld(life, dt.datetime.now(dt.UTC))
    finally:
        life.engine.dispose()
    return he


# ----- handoff serve ------------------------------------------------------------------------------
@dataclass
class ServeProcess:
    process: subprocess.Popen[Any]
    log: Path

    def log_tail(self, chars: int = 6000) -> str:
        return _tail(self.log, chars)

    def stop(self) -> None:
        # SIGTERM is the runner's graceful shutdown (stop polling, pause the schedules); a SIGINT
        # that is not from a terminal ends serve without pausing them.
        stop_process(self.process, grace=20.0, sig=signal.SIGTERM)


def serve_env(server: PrefectServer, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for ``handoff serve``: this process's AWS endpoint, the server's API, quick polling."""
    env = _clean_env()
    env = {k: v for k, v in env.items() if not k.startswith("HANDOFF_")}
    env.update(
        PREFECT_API_URL=server.api_url,
        PREFECT_HOME=str(server.home / "client"),
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    env.update(extra or {})
    return env


def start_serve(
    server: PrefectServer,
    db_url: str,
    bucket: str,
    log: Path,
    extra_env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    timeout: float = 90.0,
) -> ServeProcess:
    """Start ``handoff serve --group west=CA,OR`` and wait until both deployments are registered."""
    cmd = [str(HANDOFF_BIN), "serve", "--db", db_url, "--bucket", bucket,
           "--group", f"{GROUP}={','.join(GROUP_STATES)}", *(extra_args or [])]  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=serve_env(server, extra_env), cwd=REPO, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    serve = ServeProcess(proc, log)
    try:
        wait_until(lambda: _served(serve), timeout, f"handoff serve to register {TRANSFER_DEPLOYMENT}",
                   on_timeout=serve.log_tail)  # fmt: skip
    except BaseException:
        serve.stop()
        raise
    return serve


def _served(serve: ServeProcess) -> bool:
    if serve.process.poll() is not None:
        raise RuntimeError(f"handoff serve exited with {serve.process.returncode}:\n{serve.log_tail()}")
    # The runner logs this once its deployments exist and it polls for their runs.
    text = _tail(serve.log, 200_000)
    return "handoff-transfer/transfer-" in text and "handoff-release/release" in text and _deployments_exist()


def _deployments_exist() -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(TRANSFER_DEPLOYMENT)
            client.read_deployment_by_name(RELEASE_DEPLOYMENT)
        except ObjectNotFound:
            return False
    return True


@pytest.fixture
def serve_factory(prefect_server: PrefectServer, tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``handoff serve`` subprocesses; every one is stopped when the test ends."""
    started: list[ServeProcess] = []

    def factory(db_url: str, bucket: str, extra_env: dict[str, str] | None = None,
                extra_args: list[str] | None = None) -> ServeProcess:  # fmt: skip
        log = tmp_path / f"serve-{len(started)}.log"
        sp = start_serve(prefect_server, db_url, bucket, log, extra_env, extra_args)
        started.append(sp)
        return sp

    yield factory
    for sp in started:
        sp.stop()


# ----- flow runs ----------------------------------------------------------------------------------
def wait_until(
    check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5,
    on_timeout: Callable[[], str] | None = None,
) -> Any:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


def read_run(run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def wait_for_run(
    run_id: Any,
    predicate: Callable[[Any], bool],
    timeout: float,
    what: str,
    serve: ServeProcess | None = None,
) -> Any:
    """Poll the flow run until ``predicate(run)``; fail early if it reached a final state instead."""
    last: dict[str, Any] = {}

    def check() -> Any:
        run = read_run(run_id)
        last["run"] = run
        if predicate(run):
            return run
        if run.state is not None and run.state.is_final():
            raise AssertionError(
                f"flow run ended {run.state.type.value}/{run.state.name} ({run.state.message}) "
                f"while waiting for {what}" + (f"\n--- serve log ---\n{serve.log_tail()}" if serve else "")
            )
        return None

    def describe() -> str:
        run = last.get("run")
        state = f"{run.state.type.value}/{run.state.name}: {run.state.message}" if run and run.state else "?"
        return f"last state {state}" + (f"\n--- serve log ---\n{serve.log_tail()}" if serve else "")

    return wait_until(check, timeout, what, interval=1.0, on_timeout=describe)


def is_paused(run: Any) -> bool:
    return run.state is not None and run.state.is_paused()


def pause_key(run: Any) -> str | None:
    return run.state.state_details.pause_key if run.state is not None else None


def pause_description(run: Any) -> str:
    """The description the approval form shows for the run's current pause (its run-input keyset)."""
    from prefect.client.orchestration import get_client

    keyset = run.state.state_details.run_input_keyset or {}
    key = keyset.get("description")
    if not key:
        return ""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    def read() -> Any:
        # The paused state names its keyset a moment before the runner stores the description.
        with get_client(sync_client=True) as client:
            try:
                return client.read_flow_run_input(run.id, key)
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code != 404:
                    raise
                return None

    raw = wait_until(read, 30, f"the approval form's description of run {run.id}")
    import json

    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return str(raw)
    return value if isinstance(value, str) else json.dumps(value)


def trigger_transfer(parameters: dict[str, Any] | None = None) -> Any:
    from prefect.deployments import run_deployment

    # _sync: Playwright's sync API runs an event loop in this thread, which would make Prefect's
    # dispatching functions return coroutines.
    return run_deployment(name=TRANSFER_DEPLOYMENT, parameters=parameters or {}, timeout=0, _sync=True)


def shown_statement(description: str) -> str:
    """The statement the approval form shows (its ```json block)."""
    import re

    found = re.search(r"```json\n(.*?)\n```", description, re.S)
    assert found, f"the form shows no statement:\n{description[:2000]}"
    return found.group(1)


def signed_answer(statement: str, label: str) -> dict[str, str]:
    """What an approver pastes into the form: the statement and ``label``'s SSH signature of it.

    Signed as the form's command signs it: the statement's text plus one newline.
    """
    from handoff.signing.statement import sign_with_key

    data = statement.strip().encode() + b"\n"
    return {"statement": statement, "signature": sign_with_key(data, KEYS.key(label), "handoff-approve")}


def resume(run_id: Any, run_input: dict[str, Any]) -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run_id, run_input=run_input, _sync=True)


def artifacts_for(run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        by_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        found = client.read_artifacts(artifact_filter=by_run)
    return list(found)
