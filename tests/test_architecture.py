"""The architecture's layering, as import-linter contracts in pyproject.toml: an upward import fails CI.

Domain logic never imports Prefect or the flows; the product never imports its tools (CLI, demo,
benchmark, seed data, emulator, moto); signature and statement decisions import no database, S3
or GX; reading and checking data never reaches the gates or the delivery.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-cache", *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip


def test_every_layering_contract_is_kept() -> None:
    res = _lint()
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout and "4 kept" in res.stdout, res.stdout[-2000:]


def test_a_contract_the_code_breaks_is_reported(tmp_path: Path) -> None:
    """The checker does find an import that breaks a rule (the CLI does import the trust file's reader)."""
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["handoff"]\n\n[[tool.importlinter.contracts]]\n'
                      'name = "a rule the code breaks"\ntype = "forbidden"\nsource_modules = ["handoff.cli"]\n'
                      'forbidden_modules = ["handoff.trust"]\n')  # fmt: skip
    res = _lint("--config", str(config))
    assert res.returncode == 1 and "handoff.cli is not allowed to import handoff.trust" in res.stdout, res.stdout
