"""Every parser of outside input is total: random and mutated input gives a clean result or one clean
refusal (``PolicyError``, a failed verification), never another exception. Hypothesis, bounded so that
the whole file runs in seconds (signatures have their own fuzz test in test_signature_parsing.py).

- the manifest a recipient verifies (``verify.check``: every field may hold any JSON type);
- the order file (YAML text, mutated from the real order, and random text);
- the trust file (random lines, and lines mutated from a real one).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from support import KEYS, POLICY_DIR

from handoff.errors import PolicyError
from handoff.policy.order import parse_order
from handoff.release import manifest as manifests
from handoff.release.verify import Seen, check
from handoff.signing.trust import load_trust

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = hs.recursive(
    hs.none() | hs.booleans() | hs.integers() | hs.floats(allow_nan=False) | hs.text(max_size=12),
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
PREFIX = "cand.v1/20260107T180000Z-1a2b3c/"
URL = f"s3://agency-handoff/{PREFIX}"
SIGNATURE = "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"
TEMPLATE: dict[str, Any] = {
    "manifest_version": 3,
    "batch_id": "20260107T180000Z-1a2b3c",
    "destination": {
        "endpoint": "aws",
        "bucket": "agency-handoff",
        "prefix": "",
        "kms_key_id": "k",
        "audit_bucket": "audit",
    },  # fmt: skip
    "order": {
        "ref": "cand@v1",
        "case": "3:25-cv-05536",
        "effective_at": "2026-01-06T00:00:00-08:00",
        "policy_hash": "ab" * 32,
        "columns": ["msis_ident_num", "elgbl_1st_name"],
    },  # fmt: skip
    "content_hash": "cd" * 32,
    "rows": 3,
    "files": [{"key": f"{PREFIX}part-0.parquet", "bytes": 10, "rows": 3, "sha256": "ef" * 32}],
    "approvals": [{"principal": "Ada Approver", "key": "SHA256:x", "statement": "{}", "signature": SIGNATURE}],
    "proof": {
        "order_file": {"name": "cand.v1.yaml", "sha256": "00" * 32, "text": "order_id: cand\n", "signature": SIGNATURE},
        "hearing_outcomes": [{"hearing": "h1", "statement": "{}", "signature": SIGNATURE}],
        "hearings_added": [
            {"hearing": "h2", "order_id": "cand", "at": "2026-02-10T09:00", "title": "t", "added_by": "x"}
        ],  # fmt: skip
        "request": {"statement": "{}", "signature": SIGNATURE},
        "validation": {
            "content_hash": "cd" * 32,
            "rows": 3,
            "result": "passed",
            "suite_hash": "11" * 32,
            "expectations_evaluated": 9,
        },  # fmt: skip
    },
    "ledger_head": {"seq": 9, "hash": "22" * 32},
    "delivered_at": "2026-01-07T18:00:00+00:00",
    "trust_sha256": "33" * 32,
}


def _paths(doc: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*here, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*here, i))
    return out


PATHS = _paths(TEMPLATE)[1:]


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    target = copy
    for step in path[:-1]:
        target = target[step]
    # A manifest is JSON: an edit into an object names its member as text (a list index becomes "0").
    target[str(path[-1]) if isinstance(target, dict) else path[-1]] = value
    return copy


def _seen() -> dict[str, Seen]:
    at = dt.datetime(2026, 1, 7, 18, tzinfo=dt.UTC)
    return {f"{PREFIX}part-0.parquet": Seen(f"{PREFIX}part-0.parquet", "ef" * 32, 10, 3, ["msis_ident_num"], at,
                                            "k", 1),
            f"{PREFIX}manifest.json": Seen(f"{PREFIX}manifest.json", "44" * 32, 99, None, None, at, "k", 1)}  # fmt: skip


@FUZZ
@given(hs.lists(hs.tuples(hs.sampled_from(PATHS), JSON), min_size=1, max_size=4))
def test_a_manifest_with_any_field_of_any_type_is_refused_never_a_crash(edits: list[tuple[Any, Any]]) -> None:
    trust = load_trust(POLICY_DIR / "trust" / "allowed_signers")
    doc: Any = TEMPLATE
    for path, value in edits:
        try:
            doc = _replaced(doc, path, value)
        except (TypeError, KeyError, IndexError):  # an earlier edit removed the path's parent
            continue
    report = check(URL, manifests.dumps(doc), _seen(), trust)
    assert not report.ok and all(str(p) for p in report.problems)


@FUZZ
@given(JSON)
def test_a_manifest_that_is_any_json_at_all_is_refused(doc: Any) -> None:
    trust = load_trust(POLICY_DIR / "trust" / "allowed_signers")
    body = json.dumps(doc).encode()
    assert not check(URL, body, _seen(), trust).ok


ORDER_TEXT = sorted((POLICY_DIR / "orders").glob("*.yaml"))[0].read_text(encoding="utf-8")
ORDER_LINES = ORDER_TEXT.splitlines()


@FUZZ
@given(hs.lists(hs.tuples(hs.integers(0, len(ORDER_LINES) - 1), hs.sampled_from(["drop", "dup", "swap", "junk"]),
                          hs.text(max_size=12)), min_size=1, max_size=5))  # fmt: skip
def test_a_mutated_order_file_is_an_order_or_one_refusal(edits: list[tuple[int, str, str]]) -> None:
    lines = list(ORDER_LINES)
    for i, how, junk in edits:
        i %= len(lines) or 1
        if not lines:
            break
        if how == "drop":
            del lines[i]
        elif how == "dup":
            lines.insert(i, lines[i])
        elif how == "swap":
            lines[i], lines[-1] = lines[-1], lines[i]
        else:
            cut = len(lines[i]) // 2
            lines[i] = lines[i][:cut] + junk + lines[i][cut:]
    try:
        parse_order("\n".join(lines) + "\n", "fuzz.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml")


@FUZZ
@given(hs.text(max_size=200))
def test_any_text_is_an_order_or_one_refusal(text: str) -> None:
    try:
        parse_order(text, "fuzz.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml")


def test_deep_nesting_and_alias_bombs_are_refused_in_one_line() -> None:
    import pytest

    with pytest.raises(PolicyError, match="nested too deeply|not valid YAML"):
        parse_order("a: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with pytest.raises(PolicyError, match="uses YAML aliases"):
        parse_order(bomb, "bomb.yaml")


TRUST_LINE = (
    f'"Ada Approver" namespaces="handoff-approve" {" ".join((KEYS.folder / "ada.pub").read_text().split()[:2])}'
)
PRINTABLE = hs.text(alphabet=hs.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@FUZZ
@given(hs.lists(PRINTABLE | hs.builds(lambda i, s: TRUST_LINE[:i] + s + TRUST_LINE[i:],
                                       hs.integers(0, len(TRUST_LINE)), PRINTABLE), max_size=4))  # fmt: skip
def test_any_trust_file_lines_give_signers_or_warnings_never_a_crash(tmp_path_factory: Any, lines: list[str]) -> None:
    path: Path = tmp_path_factory.mktemp("trust") / "allowed_signers"
    path.write_text("\n".join([*lines, TRUST_LINE]) + "\n", encoding="ascii")
    try:
        trust = load_trust(path)
    except PolicyError as exc:  # one key listed for two principals: the whole file is refused, by name
        assert str(exc).startswith(str(path))
        return
    assert len(trust.signers) + len(trust.warnings) <= len(lines) + 1
    assert "Ada Approver" in {s.principal for s in trust.signers}
