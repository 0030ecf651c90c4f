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
    from handoff.source_ref import reference, resolve

    ref = reference(None, "HANDOFF_SOURCE_DB_URL", None)
    [transfer, _] = deployments(ref, "agency-handoff", {"all": []})
    assert transfer.parameters["db_url"] == "env:HANDOFF_SOURCE_DB_URL"
    import os

    os.environ["HANDOFF_SOURCE_DB_URL"] = f"sqlite:///{PASSWORD}.db"
    try:
        assert resolve(ref) == f"sqlite:///{PASSWORD}.db"
    finally:
        del os.environ["HANDOFF_SOURCE_DB_URL"]
