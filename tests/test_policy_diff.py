"""`handoff policy diff OLD NEW`: what a new order version changes, whether it may be recorded as
`narrowed` (the same decision the court step makes), and which waiting batches it would supersede."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from support import NOW, POLICY_DIR, build_settings, cli_env, narrowed_file, run_cli, transfer

from handoff.policy.diff import Change, diff
from handoff.policy.order import PolicySet

OLD = PolicySet(POLICY_DIR).current()


def edit(order: Any = OLD, **changes: Any) -> Any:
    return order.model_copy(update={"version": order.version + 1, "supersedes": OLD.ref, **changes})


def _changed(new: Any) -> dict[str, tuple[str, str]]:
    return {c.what: (c.before, c.after) for c in diff(OLD, new).changes}


def test_the_same_version_has_no_differences_and_is_no_successor_of_itself() -> None:
    d = diff(OLD, OLD)
    assert d.changes == []
    assert d.not_narrowing == [f"version {OLD.version} must be greater than {OLD.version}",
                               f"supersedes must be {OLD.ref!r} (found None)"]  # fmt: skip
    assert not d.may_narrow


def test_a_version_that_drops_a_column_and_adds_a_hearing_only_narrows() -> None:
    fields = {k: v for k, v in OLD.permitted_fields.items() if k != "phone"}
    hearing = OLD.hearings[0].model_copy(update={"id": "cand-2026-03-01", "at": dt.datetime(2026, 3, 1, 10)})
    new = edit(permitted_fields=fields, hearings=[*OLD.hearings, hearing])
    d = diff(OLD, new)
    assert d.may_narrow and d.not_narrowing == []
    changed = _changed(new)
    assert changed["columns"][0].endswith("elgbl_phne_num_home") and "elgbl_phne_num_home" not in changed["columns"][1]
    assert changed["hearing cand-2026-03-01"] == ("none", f"2026-03-01T10:00:00 {hearing.title}")
    assert set(changed) == {"columns", "hearing cand-2026-03-01"}
    assert d.as_dict()["may_be_recorded_as_narrowed"] is True and d.as_dict()["new"] == new.ref


def test_each_field_that_changes_is_shown_before_and_after() -> None:
    conds = [c.model_copy(update={"in_": ["3", "4"]}) if c.column == "imgrtn_stus_cd" else c
             for c in OLD.population.all_of]  # fmt: skip
    scope = OLD.jurisdiction_scope.model_copy(update={"overrides": {"TX": "excluded"}})
    new = edit(name_flag=True, approvals_required=2, required_fields=OLD.required_fields[:-1],
               effective_at=OLD.effective_at + dt.timedelta(days=1), court_time_zone="America/New_York",
               population=OLD.population.model_copy(update={"all_of": conds}), jurisdiction_scope=scope,
               plaintiff_states=OLD.plaintiff_states[:1], source=OLD.source.model_copy(update={"table": "other"}),
               hearings=[])  # fmt: skip
    changed = _changed(new)
    assert changed["name flag"] == ("off", "on")
    assert changed["approvals required"] == (str(OLD.approvals_required), "2")
    assert changed["required fields"] == (", ".join(OLD.required_fields), ", ".join(OLD.required_fields[:-1]))
    assert changed["effective"] == ("2026-01-06T00:00:00-08:00", "2026-01-07T00:00:00-05:00")
    assert changed["court time zone"] == ("America/Los_Angeles", "America/New_York")
    assert changed["population: imgrtn_stus_cd"] == ("in 3", "in 3, 4")
    assert changed["scope: TX"] == ("order", "excluded")
    assert changed["plaintiff states"][1] == "CA"
    assert '"other"' in changed["source"][1]
    assert changed[f"hearing {OLD.hearings[0].id}"][1] == "none"
    assert "turns the name flag on" in diff(OLD, new).not_narrowing and "columns" in changed


def test_a_wider_version_says_why_it_may_not_be_recorded_as_narrowed() -> None:
    fields = {**OLD.permitted_fields, "phone": [*OLD.permitted_fields["phone"], "elgbl_email_addr"]}
    conds = [c for c in OLD.population.all_of if c.column != "imgrtn_vrfctn_ind"]
    d = diff(OLD, edit(permitted_fields=fields, population=OLD.population.model_copy(update={"all_of": conds})))
    assert not d.may_narrow
    assert d.not_narrowing == [f"permits columns elgbl_email_addr that {OLD.ref} does not",
                               "drops or widens the condition on imgrtn_vrfctn_ind (codes 1)"]  # fmt: skip
    assert Change("population: imgrtn_vrfctn_ind", "in 1", "no condition") in d.changes


def test_the_command_names_the_batches_a_new_version_would_supersede(
    tmp_path: Path, sqlite_source_url: str, s3: Any, audit_bucket: str
) -> None:
    from handoff.transfer import Lifecycle

    home = tmp_path / "home"
    life = Lifecycle(build_settings(home, bucket=s3.name, kms_key_id=s3.kms_key_id, audit_bucket=audit_bucket))
    waiting = transfer(life, sqlite_source_url, s3.name, NOW).batch
    life.engine.dispose()
    assert waiting.status == "held"
    narrower = narrowed_file(tmp_path, signed_by=None)
    res = run_cli("policy", "diff", OLD.ref, str(narrower), "--json", env=cli_env(home), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["may_be_recorded_as_narrowed"] is True and doc["would_supersede"] == [waiting.id]
    assert doc["old"] == OLD.ref and doc["new"] == f"{OLD.order_id}@v2"
    res = run_cli("policy", "diff", OLD.ref, str(narrower), env=cli_env(home, COLUMNS="200"), cwd=tmp_path)
    assert res.returncode == 0 and "only narrows" in res.stdout and waiting.id in res.stdout, res.stdout
    block = '    - column: imgrtn_vrfctn_ind\n      in: ["1"]\n      reason: status_not_verified\n'
    wider = narrowed_file(tmp_path, drop=block + "      explain: immigration status is not verified\n", signed_by=None)
    res = run_cli("policy", "diff", OLD.ref, str(wider), env=cli_env(home, COLUMNS="200"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "may not be recorded as narrowing" in res.stdout and "imgrtn_vrfctn_ind" in res.stdout, res.stdout


def test_an_unknown_version_or_missing_file_is_one_line(tmp_path: Path) -> None:
    res = run_cli("policy", "diff", f"{OLD.order_id}@v9", str(tmp_path / "none.yaml"), env=cli_env(tmp_path),
                  cwd=tmp_path)  # fmt: skip
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert f"no order version '{OLD.order_id}@v9'" in res.stderr
