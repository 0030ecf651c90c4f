"""A command pays only for what it uses: the everyday commands start without GX, pandas or Prefect.

`--help`, `status`, `hold list`, `trust show`, `audit verify` and `audit disclosures` are what a person
runs many times a day; importing Great Expectations alone takes seconds. Each runs here in a fresh
interpreter, as the `handoff` script runs it, and reports what it loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import POLICY_DIR

HEAVY = ("great_expectations", "pandas", "prefect")

RUN = """
import json, sys
sys.argv = ["handoff", *sys.argv[1:]]
from handoff.cli import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in HEAVY if m in sys.modules]}), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


@pytest.mark.parametrize(
    "command",
    [["--help"], ["status"], ["hold", "list"], ["trust", "show"], ["audit", "verify"], ["audit", "disclosures"]],
    ids=" ".join,
)
def test_an_everyday_command_loads_neither_gx_nor_pandas_nor_prefect(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HANDOFF_", "PREFECT_"))}
    env.update(HANDOFF_HOME=str(tmp_path / "home"), HANDOFF_POLICY_DIR=str(POLICY_DIR),
               HANDOFF_CONFIG=str(tmp_path / "no-handoff.toml"), GX_ANALYTICS_ENABLED="False")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", RUN, *command], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    report = json.loads(out.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, out.stderr[-2000:]
    assert report["loaded"] == [], f"`handoff {' '.join(command)}` imported {report['loaded']}"


THREADS = """
import os, sys
if sys.argv[1] == "handoff":
    import handoff  # noqa: F401
import numpy  # noqa: F401 - loads OpenBLAS, which starts its threads
print(len(os.listdir("/proc/self/task")))
"""


def _threads(first: str, **env: str) -> int:
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", THREADS, first], env={**base, **env}, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    return int(out.stdout.strip())


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")
def test_a_handoff_process_starts_no_blas_threads_unless_the_user_asks() -> None:
    """numpy's OpenBLAS starts a spinning thread per extra core; handoff does no linear algebra."""
    if _threads("numpy") == 1:
        pytest.skip("OpenBLAS starts no extra thread on this machine (one core)")
    assert _threads("handoff") == 1
    assert _threads("handoff", OPENBLAS_NUM_THREADS="2") == 2  # the user's setting stands
