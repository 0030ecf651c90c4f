"""The trust file's edges: a key's validity window to the second, one principal's several keys, and
the plaintiff list's stricter reading. Pure: parsed files and real signatures, no services."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from support import KEYS, POLICY_DIR

from handoff.errors import SignatureError
from handoff.policy.order import PolicySet
from handoff.signing.statement import canonical, sign_with_key
from handoff.signing.trust import APPROVE, load_trust

T = dt.datetime(2026, 1, 6, 8, 0, tzinfo=dt.UTC)
DATA = canonical({"kind": "x", "n": 1})
SIGNATURE = sign_with_key(DATA, KEYS.key("ada"), APPROVE)


def _trust(tmp_path: Path, options: str) -> object:
    kind, blob = (KEYS.folder / "ada.pub").read_text().split()[:2]
    path = tmp_path / "allowed_signers"
    path.write_text(f'"Ada Approver" namespaces="{APPROVE}"{options} {kind} {blob}\n')
    return load_trust(path)


@pytest.mark.parametrize(
    ("options", "at", "valid"),
    [
        pytest.param(',valid-before="20260106080000Z"', T - dt.timedelta(seconds=1), True, id="before-by-a-second"),
        pytest.param(',valid-before="20260106080000Z"', T, False, id="before-at-the-instant"),
        pytest.param(',valid-after="20260106080000Z"', T, True, id="after-at-the-instant"),
        pytest.param(',valid-after="20260106080000Z"', T - dt.timedelta(seconds=1), False, id="after-a-second-early"),
    ],
)
def test_a_keys_validity_window_holds_to_the_second(tmp_path: Path, options: str, at: dt.datetime,
                                                     valid: bool) -> None:  # fmt: skip
    trust = _trust(tmp_path, options)
    if valid:
        assert trust.verify(DATA, SIGNATURE, APPROVE, at).principal == "Ada Approver"  # type: ignore[attr-defined]
    else:
        with pytest.raises(SignatureError, match="is not valid at"):
            trust.verify(DATA, SIGNATURE, APPROVE, at)  # type: ignore[attr-defined]


def test_an_unverified_plaintiff_entry_counts_as_a_plaintiff() -> None:
    """DC is listed unverified: under an order that excludes plaintiffs, it is excluded too (the stricter reading)."""
    order = PolicySet(POLICY_DIR).current()
    assert "DC" in order.plaintiff_abbrs
    strict = order.model_copy(update={"jurisdiction_scope": order.jurisdiction_scope.model_copy(
        update={"plaintiff": "excluded", "non_plaintiff": "order"})})  # fmt: skip
    assert strict.scope_for("DC") == "excluded"
    assert strict.scope_for("TX") == "order"


# ----- reading the file: every refusal names the file and line ---------------------------------------
KIND, BLOB = (KEYS.folder / "ada.pub").read_text().split()[:2]
BO_KIND, BO_BLOB = (KEYS.folder / "bo.pub").read_text().split()[:2]
LINE = f'"Ada Approver" namespaces="{APPROVE}" {KIND} {BLOB}'


def _file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text("".join(x + "\n" for x in lines))
    return path


@pytest.mark.parametrize(
    ("line", "why"),
    [
        pytest.param("garbage", "not an allowed_signers line (Invalid line", id="garbage"),
        pytest.param(LINE.replace('"Ada Approver"', '"Ada,Bo"', 1), "give exactly one principal per line", id="two"),
        pytest.param(LINE.replace('"Ada Approver"', "Ada*", 1), "no patterns (found 'Ada*')", id="pattern-star"),
        pytest.param(LINE.replace('"Ada Approver"', "Ada?", 1), "no patterns (found 'Ada?')", id="pattern-query"),
        pytest.param(LINE.replace('"Ada Approver"', "!Ada", 1), "no patterns (found '!Ada')", id="negation"),
        pytest.param(LINE.replace('"Ada Approver"', '"Ada;rm"', 1), "principal 'Ada;rm' must be letters", id="chars"),
        pytest.param(LINE.replace(f'namespaces="{APPROVE}"', f'cert-authority,namespaces="{APPROVE}"', 1),
                     "cert-authority keys are not supported", id="cert-authority"),
        pytest.param(LINE.replace(f'namespaces="{APPROVE}"', 'valid-after="20260101"', 1),
                     'give the roles as namespaces="handoff-approve,..."', id="no-roles"),
        pytest.param(LINE.replace(APPROVE, "handoff-admin", 1), "unknown role 'handoff-admin'; roles are", id="role"),
        pytest.param(LINE.replace(BLOB, BLOB[:20], 1), "the public key cannot be read", id="key"),
        pytest.param(LINE.replace(f'namespaces="{APPROVE}"', f'namespaces="{APPROVE}",valid-before="2026-01-06"', 1),
                     "time '2026-01-06' must look like 20260106 or 202601060800Z", id="time"),
    ],
)  # fmt: skip
def test_a_line_it_cannot_trust_grants_nothing_and_is_named_by_file_and_line(tmp_path: Path, line: str,
                                                                             why: str) -> None:  # fmt: skip
    """The line is skipped with a warning naming file, line and reason; the lines around it still count."""
    path = _file(tmp_path, "# reviewed 2026-01-02", f'"Bo Approver" namespaces="{APPROVE}" {BO_KIND} {BO_BLOB}', line)
    trust = load_trust(path)
    [warning] = trust.warnings
    assert warning.startswith(f"skipped {path}:3: ") and why in warning, warning
    assert [(s.principal, s.line) for s in trust.signers] == [("Bo Approver", 2)]


def test_a_missing_or_non_ascii_file_is_refused_by_name(tmp_path: Path) -> None:
    from handoff.errors import PolicyError

    missing = tmp_path / "nowhere"
    with pytest.raises(PolicyError, match=f"^{missing}: no trust file; create it"):
        load_trust(missing)
    latin = tmp_path / "latin"
    latin.write_bytes(LINE.replace("Ada", "Adä").encode("latin-1") + b"\n")
    with pytest.raises(PolicyError, match=f"^{latin}: the trust file must be plain ASCII"):
        load_trust(latin)


def test_one_key_belongs_to_one_person_and_one_person_may_hold_several_keys(tmp_path: Path) -> None:
    import hashlib

    from handoff.errors import PolicyError

    shared = _file(tmp_path, LINE, LINE.replace('"Ada Approver"', '"Bo Approver"', 1))
    with pytest.raises(PolicyError, match=f"^{shared}:2: key SHA256:.* is also listed for 'Ada Approver' \\(line 1\\)"):
        load_trust(shared)
    both = _file(tmp_path, LINE, LINE.replace(f"{KIND} {BLOB}", f"{BO_KIND} {BO_BLOB}", 1), LINE)
    trust = load_trust(both)
    assert [(s.principal, s.line) for s in trust.signers] == [("Ada Approver", 1), ("Ada Approver", 2),
                                                               ("Ada Approver", 3)]  # fmt: skip
    assert trust.path == both and trust.sha256 == hashlib.sha256(both.read_bytes()).hexdigest()
    assert [s.line for s in trust.holders(APPROVE)] == [1, 2, 3] and trust.holders("handoff-counsel") == []


@pytest.mark.parametrize(("value", "instant"), [("20260106", T - dt.timedelta(hours=8)), ("202601060800Z", T),
                                                ("20260106080000Z", T), ("202601060800", T)])  # fmt: skip
def test_validity_times_read_as_ssh_keygen_writes_them(tmp_path: Path, value: str, instant: dt.datetime) -> None:
    trust = load_trust(_file(tmp_path, LINE.replace(f'namespaces="{APPROVE}"',
                                                    f'namespaces="{APPROVE}",valid-after="{value}"', 1)))  # fmt: skip
    assert trust.signers[0].valid_after == instant


@pytest.mark.parametrize(
    ("namespace", "data", "why"),
    [
        pytest.param("handoff-counsel", DATA, "the signature was made for another namespace; sign with `ssh-keygen -Y "
                     "sign -n handoff-counsel`", id="other-namespace"),
        pytest.param(APPROVE, DATA + b"x", "the signature does not match this statement (it was signed over other "
                     "bytes, or altered)", id="tampered"),
    ],
)  # fmt: skip
def test_a_signature_for_another_role_or_other_bytes_is_refused_saying_which(tmp_path: Path, namespace: str,
                                                                              data: bytes, why: str) -> None:  # fmt: skip
    trust = load_trust(_file(tmp_path, LINE.replace(APPROVE, f"{APPROVE},handoff-counsel", 1)))
    with pytest.raises(SignatureError) as caught:
        trust.verify(data, SIGNATURE, namespace, T)
    assert str(caught.value) == why


def test_an_unlisted_key_or_a_key_without_the_role_is_refused_by_name(tmp_path: Path) -> None:
    bo = load_trust(_file(tmp_path, f'"Bo Approver" namespaces="{APPROVE}" {BO_KIND} {BO_BLOB}'))
    with pytest.raises(SignatureError, match=r"^key SHA256:\S+ is not in the trust file .*; enrol it"):
        bo.verify(DATA, SIGNATURE, APPROVE, T)
    counsel_only = load_trust(_file(tmp_path, LINE.replace(APPROVE, "handoff-counsel", 1)))
    with pytest.raises(SignatureError, match=r"^Ada Approver \(key SHA256:\S+\) does not hold the approver role"):
        counsel_only.verify(DATA, SIGNATURE, APPROVE, T)


def test_a_principal_may_hold_any_letter_and_a_bad_valid_after_is_named_by_line(tmp_path: Path) -> None:
    xavier = load_trust(_file(tmp_path, LINE.replace('"Ada Approver"', '"Xavier Approver"', 1)))
    assert xavier.signers[0].principal == "Xavier Approver"
    bad = _file(tmp_path, LINE.replace(f'namespaces="{APPROVE}"', f'namespaces="{APPROVE}",valid-after="soon"', 1))
    skipped = load_trust(bad)
    assert skipped.signers == () and skipped.warnings[0].startswith(f"skipped {bad}:1: time 'soon' must look like")
    with pytest.raises(SignatureError, match="is not in the trust file"):
        skipped.verify(DATA, SIGNATURE, APPROVE, T)


def test_a_skipped_line_is_warned_about_once_however_often_the_file_is_read(tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    import logging

    path = _file(tmp_path, LINE, "not a line at all")
    with caplog.at_level(logging.WARNING, logger="handoff.signing.trust"):
        for _ in range(3):
            assert [s.principal for s in load_trust(path).signers] == ["Ada Approver"]
    said = [r.getMessage() for r in caplog.records if r.name == "handoff.signing.trust"]
    assert said == [
        f'warning: skipped {path}:2: give the roles as namespaces="handoff-approve,..." (one or more '
        "of handoff-approve, handoff-counsel, handoff-operator, handoff-service)"
    ]


def test_a_trust_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    from handoff.errors import PolicyError

    folder = tmp_path / "allowed_signers"
    folder.mkdir()
    with pytest.raises(
        PolicyError, match=f"^{folder}: cannot read the trust file \\(Is a directory\\); check its permissions$"
    ):
        load_trust(folder)
