"""Keeping the garbage collector off the objects that live as long as the process, handing memory
the allocators keep but no longer use back to the system, and ending a finished command without
tearing every object down (``register_end``).

GX, pandas and the rest leave about 300,000 long-lived objects (modules, registries, classes),
and CPython's full collection walks every one of them: about 0.25 s each time one runs during a
transfer (measured at 16M source rows, where one ran while the batch record was written).
``frozen`` moves what exists now into the permanent generation (``gc.freeze``) for the duration
of the work, so collections walk only what the work itself allocates, and hands it back after
(``gc.unfreeze``), so a long-lived process (a Prefect worker) never keeps garbage that was
frozen along with the rest.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_starting = False
_exit_registered = False
# ``frozen`` blocks open now, in any thread. ``uncollected`` asks this, not ``gc.get_freeze_count``,
# which walks every frozen object: 0.01-0.02 s inside a 5,000-row transfer's work, where the process's
# whole start-up is frozen (measured here), more as the heap grows.
_open = 0
_OPEN_LOCK = threading.Lock()


def skip_final_collection() -> None:
    """End this process without the interpreter's last garbage collection (idempotent).

    At exit CPython collects every reference cycle left, and the classes of GX, pydantic, pandas
    and Prefect are tens of thousands of them: 0.5 to 0.9 s after a transfer's work was done, here,
    in a command or a Prefect flow-run process (0.04-0.06 s without). Registered as an exit
    handler, this moves every object alive then out of the collector's reach. Every exit handler
    still runs (logging's, multiprocessing's, the database drivers', Prefect's), the interpreter
    still flushes and closes what it holds, and the operating system takes back the memory, as for
    any process; only objects kept alive by a reference cycle are not finalised one by one.
    """
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(gc.freeze)


_end_registered = False
_end_code: int | None = None  # the exit status a finished command ends with, once it has one


def register_end() -> None:
    """Register ``_end`` as this process's first exit handler, so that it runs after every other one
    (they run last registered, first run); nothing happens at exit unless ``end_when_done`` gave it an
    exit status. Registered only while no other handler is (where the interpreter can say so): one
    registered earlier would run after it, and must not be skipped."""
    global _end_registered
    if not _end_registered and getattr(atexit, "_ncallbacks", lambda: -1)() == 0:
        atexit.register(_end)
        _end_registered = True


def end_when_done(code: object) -> None:
    """A finished command's exit status (``SystemExit.code``): once every other exit handler has run
    (``register_end``), the process ends with it at once. What the interpreter would do after them is
    tear down every module and object one by one, 0.03-0.05 s after a transfer and 0.025 s after a
    release here, for a process whose threads are joined, whose exit handlers (logging's,
    multiprocessing's, the drivers') have run and whose output is flushed below; the operating system
    takes back its memory, files and sockets, as for any process."""
    global _end_code
    if _end_registered:
        _end_code = code if isinstance(code, int) else 0 if code is None else 1


def _end() -> None:
    if _end_code is None:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a closed pipe: nothing more to write
            stream.flush()
    os._exit(_end_code)


def starting() -> None:
    """A short-lived command starts without automatic garbage collection, until its work begins.

    Starting a transfer imports SQLAlchemy, pyarrow, pandas, boto3 and the rest and loads the S3
    client's service model: hundreds of thousands of objects that live as long as the process.
    CPython's collector, triggered by allocation counts, walks that growing heap again and again
    meanwhile (0.28 s of a 5,000-row transfer's 2.6 s, 0.13 s of a release's 1.2 s, measured),
    and finds no garbage. ``frozen`` turns collection back on for the work, with what exists by
    then out of its way; a command with no such work (a release, ``status``) ends without one.
    """
    global _starting
    _starting = True
    gc.disable()


@contextmanager
def frozen() -> Iterator[None]:
    """Exclude every object alive now from garbage collection until the block ends. Inside a block
    already frozen (nested, or another thread's), this one neither freezes nor unfreezes: the
    outermost block hands the objects back. After ``starting``, collection is turned back on."""
    global _starting, _open
    already = gc.get_freeze_count() > 0  # walks what is frozen: nothing, unless nested or frozen by a host
    if not already:
        gc.freeze()
    with _OPEN_LOCK:
        _open += 1
    if _starting:
        _starting = False
        gc.enable()
    try:
        yield
    finally:
        with _OPEN_LOCK:
            _open -= 1
        if not already:
            gc.unfreeze()


@contextmanager
def uncollected() -> Iterator[None]:
    """No automatic garbage collection until the block ends: for a burst of imports.

    Importing GX allocates hundreds of thousands of objects that live as long as the process, and
    CPython's collector, triggered by allocation counts, walks the growing heap again and again
    while it does: 0.25 s of a 1.1 s GX import here, for no garbage. Collection resumes after the
    block (as it was before it). Inside ``frozen`` (GX imports in the check thread once the work has
    begun) what the burst made is frozen too, and handed back with the rest when that block ends;
    otherwise the next young collection and the one after would walk all of it (0.07-0.1 s of a
    5,000-row transfer). The switch is process-wide, so another thread allocating meanwhile is not
    collected either, for that long.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _open > 0:  # inside ``frozen``: what the burst made joins what it froze
            gc.freeze()
        if was:
            gc.enable()


def release() -> None:
    """Return freed memory that Arrow's pool and the C allocator still hold to the system.

    Both keep what a unit's checks freed for reuse; when the next unit or the merge allocates in
    other sizes and threads, that kept memory only adds to the peak: 64M source rows peaked at
    665 MB without this and 601 MB with it (units of 250,000 rows), measured.
    """
    import pyarrow as pa  # here, not above: commands import this module to start (``starting``)

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None
