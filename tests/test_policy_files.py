"""The court order as data: a malformed order or suite is refused, loudly and precisely."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import POLICY_DIR, SHIPPED_POLICY_DIR, cli_env, run_cli

from handoff.checks.validate import SuiteValidator
from handoff.errors import PolicyError
from handoff.policy.order import PolicySet, load_order_file
from handoff.policy.suite import build_suite, dumps, load_suite, suite_path, write_suites

ORDER_FILE = "2025-12-29.yaml"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped policy folder, safe to edit."""
    target = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, target)
    return target


def _edit(policy_dir: Path, old: str, new: str) -> Path:
    path = policy_dir / "orders" / ORDER_FILE
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


TYPOS = [
    pytest.param("permitted_fields:", "permited_fields:", "permited_fields", id="misspelt-key"),
    pytest.param("    - elgbl_zip_cd_home\n", "    - elgbl_zip_code_home\n", "elgbl_zip_code_home",
                 id="misspelt-column"),
    pytest.param("court_time_zone: America/Los_Angeles", "court_time_zone: America/Los_Angles",
                 "court_time_zone", id="bad-time-zone"),
    pytest.param("name_flag: false", "name_flg: false", "name_flg", id="misspelt-optional-key"),
    pytest.param("  phone: [elgbl_phne_num_home]", "  phone: [elgbl_phne_num_home]\n  health: [prgncy_flag]",
                 "health", id="unknown-category"),
    pytest.param("  phone: [elgbl_phne_num_home]", "  phone: [elgbl_phne_num_home, ssn_num]", "ssn_num",
                 id="never-disclosed-column"),
    pytest.param("effective_at: 2026-01-06T00:00:00", "effective_at: 2026-01-06T00:00:00Z", "effective_at",
                 id="effective-with-offset"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "named"), TYPOS)
def test_malformed_order_is_refused_naming_file_and_field(policy_dir: Path, old: str, new: str, named: str) -> None:
    path = _edit(policy_dir, old, new)
    with pytest.raises(PolicyError) as info:
        load_order_file(path)
    message = str(info.value)
    assert str(path) in message
    assert named in message
    with pytest.raises(PolicyError, match=named):
        PolicySet(policy_dir)


def test_misspelt_key_message_suggests_the_right_one(policy_dir: Path) -> None:
    path = _edit(policy_dir, "permitted_fields:", "permited_fields:")
    with pytest.raises(PolicyError, match=r"permited_fields: unknown field .*'permitted_fields'"):
        load_order_file(path)


def test_yaml_syntax_error_names_file_and_line(policy_dir: Path) -> None:
    path = _edit(policy_dir, "version: 1", "version: [1")
    with pytest.raises(PolicyError, match=r"2025-12-29\.yaml: line \d+ is not valid YAML"):
        load_order_file(path)


@pytest.mark.parametrize(("old", "new", "named"), [TYPOS[0], TYPOS[2]])
def test_policy_show_on_a_bad_order_exits_2_without_traceback(
    policy_dir: Path, tmp_path: Path, old: str, new: str, named: str
) -> None:
    _edit(policy_dir, old, new)
    res = run_cli("--policy-dir", str(policy_dir), "policy", "show", env=cli_env(tmp_path / "home"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert "Traceback" not in res.stderr
    message = " ".join(res.stderr.split())  # Rich may wrap; see test_cli_contract for the one-line bug
    assert message.startswith("error: ")
    assert ORDER_FILE in message and named in message


def test_shipped_policy_shows_cleanly(tmp_path: Path) -> None:
    res = run_cli("--policy-dir", str(POLICY_DIR), "policy", "show", "--json", env=cli_env(tmp_path / "h"),
                  cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ref"] == "cand-3-25-cv-05536-2025-12-29@v1"
    assert doc["court_time_zone"] == "America/Los_Angeles"
    assert "ssn_num" not in doc["columns"]


# ----- suites ----------------------------------------------------------------------------------------
def test_every_checked_in_suite_matches_its_order() -> None:
    policies = PolicySet(POLICY_DIR)
    assert policies.orders
    for order in policies.orders.values():
        doc = load_suite(policies, order)
        assert doc["meta"]["policy_hash"] == order.policy_hash
        assert doc["expectations"][0]["kwargs"]["column_list"] == order.columns
        assert len(doc["expectations"]) > 1


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("  phone: [elgbl_phne_num_home]\n", "", id="category-removed"),
        pytest.param('      in: ["3"]', '      in: ["2", "3"]', id="population-widened"),
        pytest.param("name_flag: false", "name_flag: true", id="name-flag-on"),
    ],
)
def test_suite_that_drifted_from_a_modified_order_is_refused(policy_dir: Path, old: str, new: str) -> None:
    _edit(policy_dir, old, new)
    policies = PolicySet(policy_dir)
    order = policies.current()
    with pytest.raises(PolicyError, match="drifted"):
        load_suite(policies, order)


@pytest.mark.parametrize(
    ("old", "new"),
    [("name_flag: false", "name_flag: true"), ("    at: 2026-01-02T10:00:00", "    at: 2026-01-03T10:00:00")],
    ids=["name-flag", "calendar"],
)
def test_a_built_order_version_cannot_be_edited_and_rebuilt(policy_dir: Path, old: str, new: str) -> None:
    """The policy hash covers the whole file; rebuilding an edited version is refused: bump it."""
    _edit(policy_dir, old, new)
    with pytest.raises(PolicyError, match="fixed once built: bump `version`"):
        write_suites(PolicySet(policy_dir))
    res = run_cli("--policy-dir", str(policy_dir), "policy", "build", env=cli_env(policy_dir.parent / "h"),
                  cwd=policy_dir.parent)  # fmt: skip
    assert res.returncode == 2 and "bump `version`" in res.stderr and "Traceback" not in res.stderr


def test_the_shipped_trust_file_enrols_nobody_and_the_shipped_order_is_unsigned() -> None:
    from handoff.authority.signoff import signature_path
    from handoff.signing.trust import load_trust, trust_path

    assert load_trust(trust_path(SHIPPED_POLICY_DIR)).signers == ()
    assert not signature_path(SHIPPED_POLICY_DIR / "orders" / ORDER_FILE).exists()


def _suite(policy_dir: Path) -> tuple[PolicySet, dict, Path]:
    policies = PolicySet(policy_dir)
    order = policies.current()
    path = suite_path(policies, order)
    return policies, json.loads(path.read_text()), path


def test_suite_with_unknown_expectation_type_is_refused(policy_dir: Path) -> None:
    policies, doc, path = _suite(policy_dir)
    bad = copy.deepcopy(doc)
    bad["expectations"][1]["type"] = "expect_column_values_to_be_purple"
    path.write_text(dumps(bad))
    with pytest.raises(PolicyError, match="drifted"):
        load_suite(policies, policies.current())
    # The validator refuses it too, rather than letting GX drop it silently.
    with pytest.raises(PolicyError, match="expect_column_values_to_be_purple"):
        SuiteValidator(bad, "msis_ident_num")


def test_empty_suite_is_refused(policy_dir: Path) -> None:
    policies, doc, path = _suite(policy_dir)
    empty = {**doc, "expectations": []}
    path.write_text(dumps(empty))
    with pytest.raises(PolicyError, match="empty suite proves nothing"):
        load_suite(policies, policies.current())
    with pytest.raises(PolicyError, match="empty"):
        SuiteValidator(empty, "msis_ident_num")


def test_missing_or_corrupt_suite_is_refused(policy_dir: Path) -> None:
    policies, _, path = _suite(policy_dir)
    path.write_text("{not json")
    with pytest.raises(PolicyError, match="not valid JSON"):
        load_suite(policies, policies.current())
    path.unlink()
    with pytest.raises(PolicyError, match="policy build"):
        load_suite(policies, policies.current())


def test_rebuilt_suite_is_byte_identical_to_the_checked_in_one() -> None:
    policies = PolicySet(POLICY_DIR)
    for order in policies.orders.values():
        assert dumps(build_suite(order)) == suite_path(policies, order).read_text()


def test_a_suite_checks_a_delivered_file_in_plain_gx_without_handoff(staged: Any, tmp_path: Path) -> None:
    """expectations/check_with_gx.py: the documented way to use a suite outside handoff passes a staged
    file and fails one with a planted SSN, in a process that never imports handoff."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq
    from support import REPO

    _, batch, _ = staged
    suite = sorted((REPO / "expectations" / "suites").glob("*.json"))[0]
    part = Path(batch.staging_path) / batch.files[0].name
    script = REPO / "expectations" / "check_with_gx.py"
    env = {"GX_ANALYTICS_ENABLED": "False", "PATH": "/usr/bin:/bin"}

    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", f"import sys; sys.modules['handoff'] = None; sys.argv = "
                               f"['x', {str(suite)!r}, {str(path)!r}, '2026-01-07']; exec(open({str(script)!r}).read())"],
                              capture_output=True, text=True, env=env, timeout=300, check=False)  # fmt: skip

    ok = run(part)
    assert ok.returncode == 0 and "success: True" in ok.stdout, ok.stdout[-2000:] + ok.stderr[-2000:]
    table = pq.read_table(part)
    column = "elgbl_line_1_adr_home"
    planted = table.set_column(table.schema.get_field_index(column), column,
                               pa.array(["918-27-3645"] * table.num_rows, table.schema.field(column).type))  # fmt: skip
    bad = tmp_path / "planted.parquet"
    pq.write_table(planted, bad)
    res = run(bad)
    assert res.returncode == 1 and "success: False" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]
