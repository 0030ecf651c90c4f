"""A setting read before ``handoff.config`` loads pydantic: for a decision a command makes first.

``Settings`` (``handoff.config``) stays the one authority: it is built as soon as the command
runs, and acts on the same sources. This reads one field's raw value from the same two places, in
the same order (a ``HANDOFF_*`` variable, any case, then the TOML file named by ``HANDOFF_CONFIG``,
default ``./handoff.toml``), for ``checks.server.start_for_transfer``, which must decide before the
command line's imports whether to start the check workers' fork server. A value it cannot read is
None: the command then decides with its settings, as it would without this.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}
_INTEGER = re.compile(r"[+-]?[0-9]+")
# What pydantic strips around an integer: Unicode's White_Space (Rust's ``str::trim``). Python's
# ``str.strip()`` also strips the separators U+001C-U+001F, which pydantic refuses ("1\x1f").
_SPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
          "\u2028\u2029\u202f\u205f\u3000")  # fmt: skip


def config_file() -> Path:
    """The TOML file settings are read from: ``HANDOFF_CONFIG``, default ``./handoff.toml``."""
    return Path(os.environ.get("HANDOFF_CONFIG", "handoff.toml"))


def raw(name: str) -> Any:
    """The value of setting ``name`` from the environment, else the TOML file; None when neither has it."""
    wanted = f"HANDOFF_{name}".upper()
    for key, value in os.environ.items():
        if key.upper() == wanted:
            return value
    import tomllib

    try:
        doc = tomllib.loads(config_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable or not TOML: the settings will say so
        return None
    return doc.get(name)


def flag(name: str) -> bool | None:
    """``raw(name)`` as a boolean, read as pydantic reads one; None when unset or not a boolean."""
    value = raw(name)
    if isinstance(value, bool):
        return value
    text = str(value).lower() if isinstance(value, str | int) else ""  # not stripped: pydantic refuses " true"
    return True if text in _TRUE else False if text in _FALSE else None


def integer(name: str) -> int | None:
    """``raw(name)`` as an integer; None when unset or not an integer."""
    value = raw(name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip(_SPACE)
    return int(text) if _INTEGER.fullmatch(text) else None  # ASCII digits only, as pydantic reads them


def default_workers() -> int:
    """Half the machine's cores, at least one: the database's scans need the other half.

    On 2 cores one worker measured as fast as two at 64M source rows, with 50 MB less peak memory
    (README, Benchmark): GX holds the GIL, so check threads share one core anyway.
    """
    return max(1, (os.cpu_count() or 2) // 2)
