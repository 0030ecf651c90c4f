"""Parallel workers per source scan: none where the source shares this small machine, the server's own
setting anywhere else, and always what ``HANDOFF_SOURCE_PARALLEL`` says."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from support import NOW, build_settings

from handoff.extract.parallel import LOCAL_HOSTS, on_this_machine, scan_workers
from handoff.staging.pipeline import StageRequest, prepare

LOCAL = [
    "postgresql+psycopg://u@127.0.0.1:5432/db",
    "postgresql+psycopg://u@localhost/db",
    "postgresql+psycopg://u@[::1]:5432/db",
    "postgresql+psycopg:///db",  # the default socket
    "postgresql+psycopg://u@/db?host=/var/run/postgresql",
]
REMOTE = [
    "postgresql+psycopg://u@db.medicaid.example.gov:5432/db",
    "postgresql+psycopg://u@10.0.0.7/db",
    "postgresql+psycopg://u@/db?host=db.medicaid.example.gov",
    "postgresql+psycopg://u@/db?host=/var/run/postgresql,db2.example.gov",  # one of them elsewhere
]


@pytest.mark.parametrize("url", LOCAL)
def test_a_source_on_this_small_machine_gets_no_parallel_worker(url: str) -> None:
    assert scan_workers(None, sa.engine.make_url(url), cores=2) == 0
    assert scan_workers(None, sa.engine.make_url(url), cores=3) == 0
    assert scan_workers(None, sa.engine.make_url(url), cores=4) is None  # cores to spare: the server decides


@pytest.mark.parametrize("url", REMOTE)
def test_a_source_elsewhere_keeps_the_servers_setting(url: str) -> None:
    assert scan_workers(None, sa.engine.make_url(url), cores=2) is None


def test_the_setting_always_wins_and_other_databases_are_left_alone() -> None:
    local, remote = sa.engine.make_url(LOCAL[0]), sa.engine.make_url(REMOTE[0])
    assert scan_workers(0, local, cores=2) == 0
    assert scan_workers(3, local, cores=2) == 3
    assert scan_workers(4, remote, cores=64) == 4
    assert scan_workers(None, sa.engine.make_url("mysql+pymysql://root@127.0.0.1/test"), cores=2) is None
    assert scan_workers(None, sa.engine.make_url("sqlite:///source.db"), cores=2) is None


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/@:?#[]%"), min_size=1))
def test_only_loopback_names_and_socket_paths_count_as_this_machine(host: str) -> None:
    url = sa.engine.URL.create("postgresql+psycopg", username="u", host=host, database="db")
    assert on_this_machine(url) == (host.lower() in LOCAL_HOSTS)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("cores", "server_says", "expected"),
    # A small machine's source sessions ask for none, whatever the server says; a larger one keeps the server's.
    [(2, None, "0"), (8, None, "server"), (8, "1", "1"), (2, "3", "0")],
)
def test_a_transfers_source_sessions_run_with_those_workers(
    cores: int, server_says: str | None, expected: str, pg_source_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both sessions on the snapshot (the exclusion count's and ADBC's row session) run with no parallel
    worker on a two-core machine whose source is local, whatever the server says; with eight cores, with
    the server's setting."""
    url = sa.engine.make_url(pg_source_url)
    if server_says is not None:  # as a DBA's setting for the role or database would
        options = f"{url.query.get('options', '')} -c max_parallel_workers_per_gather={server_says}".strip()
        url = url.update_query_dict({"options": options})
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        server = conn.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar()
    engine.dispose()
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    source = url.render_as_string(hide_password=False)
    prep = prepare(build_settings(tmp_path / "home"), StageRequest(source), NOW)
    read = prep.read
    try:
        assert read.kind.startswith("PostgreSQL snapshot")
        expected = server if expected == "server" else expected
        assert read.conn.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar() == expected  # type: ignore[attr-defined]
        _, cur = read._rows  # type: ignore[attr-defined]
        cur.execute("SELECT current_setting('max_parallel_workers_per_gather'), current_setting('search_path')")
        workers, search_path = cur.fetchone()
        assert workers == expected
        # ADBC's session got the URL's options as psycopg's did (a space in them once broke it).
        assert search_path == read.conn.exec_driver_sql("SHOW search_path").scalar()  # type: ignore[attr-defined]
    finally:
        read.counts()
        read.close()


def test_libpq_uris_keep_options_with_spaces_and_escaped_characters() -> None:
    """libpq reads ``+`` as a plus: a space in ``options`` must reach it as ``%20``."""
    from urllib.parse import unquote

    from handoff.extract.snapshot import libpq_uri

    url = sa.engine.make_url("postgresql+psycopg://u:p%40ss@127.0.0.1:5432/db?options=-csearch_path%3Dsrc+-c+jit%3Doff"
                             "&sslmode=require")  # fmt: skip
    uri = libpq_uri(url)
    assert uri.startswith("postgresql://u:p%40ss@127.0.0.1:5432/db?")
    query = dict(pair.split("=", 1) for pair in uri.split("?", 1)[1].split("&"))
    assert "+" not in query["options"] and unquote(query["options"]) == "-csearch_path=src -c jit=off"
    assert query["sslmode"] == "require"
    assert libpq_uri(sa.engine.make_url("postgresql+psycopg://u@db/x")) == "postgresql://u@db/x"
