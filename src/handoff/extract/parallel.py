"""How many parallel workers each PostgreSQL scan of the source may use.

A transfer runs two scans of the source table at once on one snapshot (the rows and the exclusion
count), and PostgreSQL gives each a leader and, by default, two workers: six processes. Where the
source runs on the machine handoff runs on and it has fewer than four cores, those six share two
cores with handoff's own checks; one worker per scan was faster, measured on two cores
(``docs/benchmarks.md``, 2026-12-06: a transfer of 8M source rows 5.50-5.74 s against 5.71-6.10
s, of 16M 8.99-9.15 s against 9.10-9.98 s, alternating; no worker at all was slower at 16M).
The default is a ceiling (``AtMost``): a server set to fewer (none, say) keeps its setting. Anywhere
else the server's own setting stands: handoff cannot see a remote server's cores.
``HANDOFF_SOURCE_PARALLEL`` always wins, as given.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

# Host names that mean this machine; a socket directory (a path) is this machine too.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
SMALL_MACHINE_CORES = 4  # below this, a source on this machine gets one worker per scan


class AtMost(int):
    """A number of workers that only lowers the server's own setting, never raises it."""


def on_this_machine(url: sa.URL) -> bool:
    """Whether ``url`` names a server on this machine: no host (the default socket), a loopback
    address, or a socket directory (``host=/var/run/postgresql`` in the query)."""
    hosts = [url.host or ""]
    query_host = url.query.get("host")
    if query_host:
        hosts = [h for value in ([query_host] if isinstance(query_host, str) else query_host) for h in value.split(",")]
    return all(not h or h.lower() in LOCAL_HOSTS or h.startswith("/") for h in hosts)


def scan_workers(setting: int | None, url: sa.URL, cores: int | None = None) -> int | None:
    """Parallel workers per source scan: ``setting`` when configured; at most one for a PostgreSQL
    source on this machine when it has fewer than ``SMALL_MACHINE_CORES`` cores; otherwise None (the
    server's)."""
    if setting is not None:
        return setting
    cores = cores if cores is not None else (os.cpu_count() or 1)
    if url.get_backend_name() == "postgresql" and cores < SMALL_MACHINE_CORES and on_this_machine(url):
        return AtMost(1)
    return None
