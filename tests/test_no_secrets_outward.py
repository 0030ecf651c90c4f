"""Credentials are referenced, never embedded or printed: deployments, errors, manifests."""

from __future__ import annotations

from pathlib import Path

from support import cli_env, run_cli

PASSWORD = "S3cretPW-do-not-print"


def test_serve_refuses_a_source_url_with_a_password_and_never_prints_it(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:5432/medicaid"
    res = run_cli("serve", "--db", url, "--bucket", "agency-handoff", env=cli_env(tmp_path / "h"), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--db-env" in res.stderr and "--db-secret" in res.stderr
    assert PASSWORD not in res.stdout + res.stderr


def test_a_bad_state_url_is_named_without_its_password(tmp_path: Path) -> None:
    for url in (f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:1/state",
                f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:notaport/state",
                f"nosuchdialect://reader:{PASSWORD}@host/db"):  # fmt: skip
        res = run_cli("status", env=cli_env(tmp_path / "h", HANDOFF_STATE_URL=url), cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and PASSWORD not in res.stdout + res.stderr, res.stderr


def test_a_bad_source_url_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:notaport/src"
    res = run_cli("policy", "whatif", "--db", url, env=cli_env(tmp_path / "h"), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert PASSWORD not in res.stdout + res.stderr


def test_a_deployment_stores_a_reference_to_the_source_not_its_url() -> None:
    from flows.serve import deployments
    from handoff.state.source_ref import reference, resolve

    ref = reference(None, "HANDOFF_SOURCE_DB_URL", None)
    [transfer, _] = deployments(ref, "agency-handoff", {"all": []})
    assert transfer.parameters["db_url"] == "env:HANDOFF_SOURCE_DB_URL"
    import os

    os.environ["HANDOFF_SOURCE_DB_URL"] = f"sqlite:///{PASSWORD}.db"
    try:
        assert resolve(ref) == f"sqlite:///{PASSWORD}.db"
    finally:
        del os.environ["HANDOFF_SOURCE_DB_URL"]


def test_a_password_in_the_source_urls_query_is_stored_printed_and_emitted_nowhere(
    s3_server: str, pg_source_url: str, tmp_path: Path
) -> None:
    """libpq reads ``password`` and ``sslpassword`` from the query string as well as from userinfo: the
    state database, staging, lineage events and every command's output hold the URL with both masked."""
    import uuid

    from support import HEARING_ID, KEYS, files_under

    from handoff_tools import emulator

    bucket = f"handoff-pw-{uuid.uuid4().hex[:12]}"
    key = emulator.create_bucket(s3_server, bucket)
    url = f"{pg_source_url}{'&' if '?' in pg_source_url else '?'}password={PASSWORD}&sslpassword={PASSWORD}2"
    home = tmp_path / "home"
    audit = f"handoff-audit-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(s3_server, audit, object_lock=True)
    env = cli_env(home, HANDOFF_KMS_KEY_ID=key, HANDOFF_BUCKET=bucket, HANDOFF_AUDIT_BUCKET=audit)
    res = run_cli("transfer", "--db", url, "--key", str(KEYS.key("operator")), "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    shown = [res.stdout + res.stderr]
    batch = __import__("json").loads(res.stdout)["batch_id"]
    for args in (("court", "outcome", HEARING_ID, "--result", "upheld", "--key", str(KEYS.key("counsel"))),
                 ("approve", batch, "--key", str(KEYS.key("ada"))), ("release",), ("status", "--json"), ("status",),
                 ("audit", "disclosures"), ("lineage", batch), ("lineage", batch, "--json")):  # fmt: skip
        res = run_cli(*args, env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        shown.append(res.stdout + res.stderr)
    assert "password=masked" in shown[-1]  # the URL is shown, its secret is not
    assert not [s for s in shown if PASSWORD in s]
    written = files_under(home)
    assert any(p.name == "events.jsonl" for p in written)  # the lineage events were written, and checked
    for path in written:
        assert PASSWORD.encode() not in path.read_bytes(), f"the password reached {path}"


def test_every_password_bearing_part_of_a_url_is_masked() -> None:
    from handoff.urls import has_password, safe_url

    for url in (f"postgresql+psycopg://u:{PASSWORD}@h/db", f"postgresql+psycopg://u@h/db?password={PASSWORD}",
                f"postgresql+psycopg://u@h/db?sslpassword={PASSWORD}&sslmode=require",
                f"mysql+pymysql://root@h/db?passwd={PASSWORD}", f"mssql+pyodbc://h/db?PWD={PASSWORD}&driver=x",
                f"mssql+pyodbc://?odbc_connect=DRIVER%3Dx%3BPWD%3D{PASSWORD}"):  # fmt: skip
        assert PASSWORD not in safe_url(url) and has_password(url), url
    assert (
        safe_url("postgresql+psycopg://u@h:5432/db?sslmode=require")
        == "postgresql+psycopg://u@h:5432/db?sslmode=require"
    )
    assert not has_password("sqlite:///x.db?mode=ro")
