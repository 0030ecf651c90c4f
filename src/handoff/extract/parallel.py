"""How many parallel workers each PostgreSQL scan of the source may use.

A transfer runs two scans of the source table at once on one snapshot (the rows and the exclusion
count), and PostgreSQL gives each a leader and, by default, two workers: six processes. Where the
source runs on the machine handoff runs on and it has fewer than four cores, those processes share
the cores with handoff's own checks, and Linux shares a busy machine between sessions
(``sched_autogroup``) before processes: every PostgreSQL backend leads its own session, handoff's
threads share one. With a worker per scan, four backends and handoff had a fifth of two cores each:
the checks ran on 0.3-0.4 of a core while the scans ran, and ended 0.3 s after the count. With no
worker, handoff has a third, the checks end before the count, and a transfer of 16M source rows took
6.71-6.88 s against 7.04-7.08 s (two cores, alternating; ``docs/benchmarks.md``, tenth session; one
worker for one scan and none for the other was slower than either). So a source on this small
machine gets none. Where one process counts for far longer than handoff checks the rows (64M source
rows: the count ended 5.6 s after everything else; 28.3 s without a worker, 26.3 s with one), set
``HANDOFF_SOURCE_PARALLEL=1``: handoff cannot tell beforehand which scan will end last. Anywhere
else the server's own setting stands: handoff cannot see a remote server's cores.
``HANDOFF_SOURCE_PARALLEL`` always wins, as given.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

# Host names that mean this machine; a socket directory (a path) is this machine too.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
SMALL_MACHINE_CORES = 4  # below this, a source on this machine gets no parallel worker
SMALL_MACHINE_WORKERS = 0


def on_this_machine(url: sa.URL) -> bool:
    """Whether ``url`` names a server on this machine: no host (the default socket), a loopback
    address, or a socket directory (``host=/var/run/postgresql`` in the query)."""
    hosts = [url.host or ""]
    query_host = url.query.get("host")
    if query_host:
        hosts = [h for value in ([query_host] if isinstance(query_host, str) else query_host) for h in value.split(",")]
    return all(not h or h.lower() in LOCAL_HOSTS or h.startswith("/") for h in hosts)


def scan_workers(setting: int | None, url: sa.URL, cores: int | None = None) -> int | None:
    """Parallel workers per source scan: ``setting`` when configured; none for a PostgreSQL source on this
    machine when it has fewer than ``SMALL_MACHINE_CORES`` cores; otherwise None (the server's)."""
    if setting is not None:
        return setting
    cores = cores if cores is not None else (os.cpu_count() or 1)
    if url.get_backend_name() == "postgresql" and cores < SMALL_MACHINE_CORES and on_this_machine(url):
        return SMALL_MACHINE_WORKERS
    return None
