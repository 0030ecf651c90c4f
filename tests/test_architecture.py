"""The architecture's layering, as import-linter contracts in pyproject.toml: an upward import fails CI.

The packages are layers (cli, transfer, release, staging, evidence and gates, context, authority,
storage, state and checks, extract, policy and signing, then the base modules): each may import
only those below it, and a new package must be placed among them. Domain logic never imports Prefect or the flows; the product never imports its tools (CLI, demo,
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
    assert "0 broken" in res.stdout and "5 kept" in res.stdout, res.stdout[-2000:]


def test_a_contract_the_code_breaks_is_reported(tmp_path: Path) -> None:
    """The checker does find an import that breaks a rule (the CLI does import the trust file's reader)."""
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["handoff"]\n\n[[tool.importlinter.contracts]]\n'
                      'name = "a rule the code breaks"\ntype = "forbidden"\nsource_modules = ["handoff.cli"]\n'
                      'forbidden_modules = ["handoff.signing.trust"]\n')  # fmt: skip
    res = _lint("--config", str(config))
    assert res.returncode == 1 and "handoff.cli is not allowed to import handoff.signing.trust" in res.stdout, (
        res.stdout
    )


def test_an_upward_import_between_packages_is_reported(tmp_path: Path) -> None:
    """A layers contract that puts authority below policy is broken by the code (authority reads orders)."""
    config = tmp_path / "layers.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["handoff"]\n\n[[tool.importlinter.contracts]]\n'
                      'name = "upside down"\ntype = "layers"\ncontainers = ["handoff"]\n'
                      'layers = ["policy", "authority"]\n')  # fmt: skip
    res = _lint("--config", str(config))
    assert res.returncode == 1 and "handoff.authority" in res.stdout and "handoff.policy" in res.stdout, res.stdout


def test_each_package_says_what_it_holds_and_the_architecture_page_names_it() -> None:
    src = REPO / "src" / "handoff"
    page = (REPO / "docs" / "architecture.md").read_text()
    packages = sorted(p.parent.name for p in src.glob("*/__init__.py"))
    assert len(packages) >= 10
    for name in packages:
        doc = (src / name / "__init__.py").read_text()
        assert doc.startswith('"""') and len(doc.split('"""')[1].split()) >= 12, f"{name}/__init__.py says too little"
        assert f" {name}/ " in page, f"docs/architecture.md does not place {name}/ in its picture of the layers"
