"""The trust file's edges: a key's validity window to the second, one principal's several keys, and
the plaintiff list's stricter reading. Pure: parsed files and real signatures, no services."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from support import KEYS, POLICY_DIR

from handoff.errors import SignatureError
from handoff.order import PolicySet
from handoff.statement import canonical, sign_with_key
from handoff.trust import APPROVE, load_trust

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
