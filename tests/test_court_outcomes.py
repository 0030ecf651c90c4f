"""Hearing outcomes and order versions are counsel's signatures; a narrowed order may only narrow."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from support import COUNSEL, HEARING_ID, KEYS, NOW, POLICY_DIR, build_settings, narrowed_file, record_outcome, sign

from handoff.authority import court, signoff
from handoff.errors import HandoffError, PolicyError, SignatureError
from handoff.policy.order import PolicySet, load_order_file
from handoff.signing.statement import Signed
from handoff.transfer import Lifecycle

ORDER = PolicySet(POLICY_DIR).current()


@pytest.fixture
def counsel_life(tmp_path: Path) -> Any:
    """A lifecycle over its own copy of the signed policy folder (outcomes may install versions)."""
    policy_dir = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, policy_dir)
    life = Lifecycle(build_settings(tmp_path / "home", policy_dir=policy_dir))
    yield life
    life.engine.dispose()


def _pending(life: Any) -> Any:
    with life.engine.connect() as conn:
        return next(h for h in court.calendar(conn, life.policies, life.trust(), NOW) if h.id == HEARING_ID)


def test_counsel_signature_records_the_outcome_under_counsels_principal(counsel_life: Any) -> None:
    h = record_outcome(counsel_life, HEARING_ID, "upheld")
    assert h.outcome == "upheld" and h.outcome_by == COUNSEL
    assert _pending(counsel_life).outcome == "upheld"


@pytest.mark.parametrize(("label", "why"), [("mallory", "not in the trust file"), ("ada", "does not hold the counsel role"),
                                           ("ops", "does not hold the counsel role")])  # fmt: skip
def test_an_outcome_signed_by_anyone_but_counsel_is_refused(counsel_life: Any, label: str, why: str) -> None:
    with pytest.raises(SignatureError, match=why):
        record_outcome(counsel_life, HEARING_ID, "upheld", label=label)
    assert _pending(counsel_life).outcome is None


def test_an_outcome_row_written_into_the_database_opens_nothing(counsel_life: Any) -> None:
    """The insider's shortcut: UPDATE hearings / INSERT a ledger row without a valid signature."""
    from handoff.state import ledger
    from handoff.state.schema import hearings

    doc = court.outcome_statement(_pending(counsel_life), "upheld", None, NOW)
    with counsel_life.engine.begin() as conn:
        conn.execute(hearings.insert().values(id=HEARING_ID, order_id=ORDER.order_id, at="2026-01-02T18:00:00+00:00",
                                              title="x", added_by="x", added_at="x", outcome="upheld",
                                              outcome_by="Totally Counsel"))  # fmt: skip
        forged = sign("mallory", doc)
        ledger.append(conn, "hearing-outcome", "Totally Counsel", payload={**forged.as_dict(), "hearing": HEARING_ID})
    assert _pending(counsel_life).outcome is None


def test_narrowed_needs_a_file_and_a_second_outcome_is_refused(counsel_life: Any) -> None:
    with pytest.raises(HandoffError, match="--order-file"):
        record_outcome(counsel_life, HEARING_ID, "narrowed")
    record_outcome(counsel_life, HEARING_ID, "upheld")
    with pytest.raises(HandoffError, match="already has outcome"):
        record_outcome(counsel_life, HEARING_ID, "enjoined")


def test_a_genuinely_narrower_signed_order_is_installed(counsel_life: Any, tmp_path: Path) -> None:
    path = narrowed_file(tmp_path)
    h = record_outcome(counsel_life, HEARING_ID, "narrowed", order_file=path)
    assert h.outcome == "narrowed" and h.outcome_order_ref == f"{ORDER.order_id}@v2"
    v2 = PolicySet(counsel_life.settings.policy_dir).current()
    assert v2.version == 2 and "elgbl_phne_num_home" not in v2.columns
    installed = PolicySet(counsel_life.settings.policy_dir).file_for(v2)
    assert signoff.verify_file(counsel_life.trust(), installed, NOW).principal == COUNSEL


@pytest.mark.parametrize(
    ("extra", "widened"),
    [
        pytest.param({"name_flag: false": "name_flag: true"}, "turns the name flag on", id="name-flag"),
        pytest.param({'in: ["3"]': 'in: ["1", "2", "3"]'}, "widens the condition on imgrtn_stus_cd", id="codes"),
        pytest.param({"  plaintiff: order\n  non_plaintiff: order\n": "  plaintiff: order\n  non_plaintiff: excluded\n"},
                     "", id="narrower-scope-is-fine"),
    ],
)  # fmt: skip
def test_a_wider_order_is_refused_on_the_narrowed_path(counsel_life: Any, tmp_path: Path, extra: dict[str, str],
                                                       widened: str) -> None:  # fmt: skip
    path = narrowed_file(tmp_path, extra=extra)
    if not widened:  # the control: dropping phone and excluding states only narrows
        assert record_outcome(counsel_life, HEARING_ID, "narrowed", order_file=path).outcome == "narrowed"
        return
    with pytest.raises(PolicyError, match=widened):
        record_outcome(counsel_life, HEARING_ID, "narrowed", order_file=path)
    assert PolicySet(counsel_life.settings.policy_dir).current().version == 1
    assert _pending(counsel_life).outcome is None


def test_an_added_column_is_named_as_what_widened(counsel_life: Any, tmp_path: Path) -> None:
    path = narrowed_file(
        tmp_path, drop="", extra={"phone: [elgbl_phne_num_home]": "phone: [elgbl_phne_num_home, elgbl_email_addr]"}
    )
    with pytest.raises(PolicyError, match="permits columns elgbl_email_addr"):
        record_outcome(counsel_life, HEARING_ID, "narrowed", order_file=path)


def test_a_narrowed_file_counsel_did_not_sign_is_refused(counsel_life: Any, tmp_path: Path) -> None:
    path = narrowed_file(tmp_path, signed_by=None)
    with pytest.raises(SignatureError, match="no counsel signature"):
        record_outcome(counsel_life, HEARING_ID, "narrowed", order_file=path)
    path = narrowed_file(tmp_path, signed_by="ada")
    with pytest.raises(SignatureError, match="does not hold the counsel role"):
        record_outcome(counsel_life, HEARING_ID, "narrowed", order_file=path)


def test_an_outcome_signed_for_another_file_is_refused(counsel_life: Any, tmp_path: Path) -> None:
    path = narrowed_file(tmp_path)
    doc = court.outcome_statement(_pending(counsel_life), "narrowed", path, NOW)
    signed = sign("counsel", {**doc, "order_file_sha256": "0" * 64})
    with counsel_life.engine.begin() as conn, pytest.raises(SignatureError, match="order_file_sha256"):
        court.record_outcome(conn, counsel_life.policies, counsel_life.trust(), signed, NOW, path)


def test_an_outcome_written_into_the_order_file_is_refused(tmp_path: Path) -> None:
    text = (POLICY_DIR / "orders" / "2025-12-29.yaml").read_text()
    path = tmp_path / "o.yaml"
    path.write_text(text.replace("    title: Hearing \"if necessary\" on remaining issues\n",
                                 "    title: Hearing \"if necessary\" on remaining issues\n    outcome: upheld\n"))  # fmt: skip
    with pytest.raises(PolicyError, match="never written in the order file"):
        load_order_file(path)


def test_an_order_file_edited_after_counsel_signed_it_is_not_in_force(counsel_life: Any) -> None:
    path = counsel_life.policies.file_for(ORDER)
    assert signoff.verify_file(counsel_life.trust(), path, NOW).principal == COUNSEL
    path.write_text(path.read_text().replace("name_flag: false", "name_flag: true"))
    with pytest.raises(SignatureError, match="bump `version`"):
        signoff.verify_file(counsel_life.trust(), path, NOW)


def test_a_tampered_outcome_statement_does_not_verify(counsel_life: Any) -> None:
    doc = court.outcome_statement(_pending(counsel_life), "upheld", None, NOW)
    good = sign("counsel", doc)
    bad = Signed(good.statement.replace(b"upheld", b"vacated"), good.signature)
    with counsel_life.engine.begin() as conn, pytest.raises(SignatureError, match="does not match"):
        court.record_outcome(conn, counsel_life.policies, counsel_life.trust(), bad, NOW)


def test_a_narrowed_order_supersedes_old_batches_and_a_fresh_transfer_delivers_only_narrower_columns(
    tmp_path: Path, sqlite_source_url: str, s3: Any, audit_bucket: str
) -> None:
    import datetime as dt
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    from support import approve, transfer

    policy_dir = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, policy_dir)
    life = Lifecycle(build_settings(tmp_path / "home", policy_dir=policy_dir, bucket=s3.name, kms_key_id=s3.kms_key_id,
                                    audit_bucket=audit_bucket))  # fmt: skip
    old = transfer(life, sqlite_source_url, s3.name, NOW).batch
    record_outcome(life, HEARING_ID, "narrowed", order_file=narrowed_file(tmp_path))
    life = Lifecycle(life.settings)  # the order files changed on disk: a new run reads them
    assert life.refresh(old.id, NOW).batch.status == "superseded"

    later = NOW + dt.timedelta(minutes=5)
    fresh = transfer(life, sqlite_source_url, s3.name, later).batch
    assert fresh.order_ref.endswith("@v2")
    approve(life, fresh.id, "ada", later)
    [done] = [o for o in life.release(later) if o.batch.id == fresh.id]
    assert done.batch.status == "delivered"
    manifest = json.loads(s3.client.get_object(Bucket=s3.name, Key=done.manifest_key)["Body"].read())
    assert "elgbl_phne_num_home" not in manifest["order"]["columns"]
    for entry in manifest["files"]:
        body = s3.client.get_object(Bucket=s3.name, Key=entry["key"])["Body"].read()
        assert "elgbl_phne_num_home" not in pq.read_schema(pa.BufferReader(body)).names
    assert all(f"/{old.id}/" not in k for k in s3.object_keys())


def test_a_refused_narrowed_outcome_leaves_no_counsel_signature_beside_the_wider_file(tmp_path: Path) -> None:
    """`court outcome --key` signs the new file only once it is shown to narrow."""
    from support import cli_env, run_cli

    policy_dir = tmp_path / "expectations"
    shutil.copytree(POLICY_DIR, policy_dir)
    wider = narrowed_file(tmp_path, drop="", extra={"name_flag: false": "name_flag: true"}, signed_by=None)
    env = cli_env(tmp_path / "home", HANDOFF_POLICY_DIR=str(policy_dir))
    res = run_cli("court", "outcome", HEARING_ID, "--result", "narrowed", "--order-file", str(wider),
                  "--key", str(KEYS.key("counsel")), env=env, cwd=tmp_path)  # fmt: skip
    assert res.returncode != 0 and "not narrower" in res.stderr + res.stdout, res.stderr
    assert "Traceback" not in res.stderr
    assert not signoff.signature_path(wider).exists(), "a refused wider file must not be left signed by counsel"
