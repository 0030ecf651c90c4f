"""What a plain install of handoff brings: every package and migration, no emulator, no warnings, and
dependencies that match the imports (deptry: none missing, unused or only there by another's)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_deptry_finds_no_missing_unused_or_transitive_dependency() -> None:
    deptry = Path(sys.executable).with_name("deptry")
    res = subprocess.run([str(deptry), "."], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0 and "No dependency issues found" in res.stdout + res.stderr, res.stdout + res.stderr


def test_the_wheel_builds_without_warnings_and_holds_the_product_but_not_the_emulator(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    # pip's own notes about this machine's package index locations are not about the package.
    said = [x for x in (res.stdout + res.stderr).splitlines() if x.strip() and not x.startswith("WARNING: Location")]
    assert not [x for x in said if "warn" in x.lower() or "deprecat" in x.lower()], said
    [wheel] = tmp_path.glob("handoff-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = Parser().parsestr(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    packages = {p.parent.name for p in (REPO / "src" / "handoff").glob("*/__init__.py")}
    assert {f"handoff/{p}/__init__.py" for p in packages} <= names
    assert "handoff/migrations/env.py" in names and any(n.startswith("handoff/migrations/versions/") for n in names)
    required = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert required and not [r for r in required if r.lower().startswith("moto")], required
    assert any(r.lower().startswith("moto") and 'extra == "local"' in r for r in meta.get_all("Requires-Dist"))
    assert any(u.startswith("Source, https://") for u in meta.get_all("Project-URL") or [])
