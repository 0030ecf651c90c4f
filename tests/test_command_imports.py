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
