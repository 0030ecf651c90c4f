"""Great Expectations suites built from an order, checked in under ``expectations/suites``.

``build_suite`` is the single translation from order + rules to expectations. The checked-in
JSON is what validation loads; ``check_suite`` refuses to run when the file drifted from its
order, names an unknown expectation type, or is empty, because GX would silently drop the
unknown and report an empty suite as a success.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from handoff.errors import PolicyError
from handoff.policy.order import Order, PolicySet
from handoff.policy.rules import SNAPSHOT_PARAM, Rule, rules_for

SuiteDoc = dict[str, Any]
# Every expectation type ``build_suite`` writes; GX starts without building the others (``checks.gx_parts``).
EXPECTATION_TYPES = (
    "expect_table_columns_to_match_ordered_list",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_be_between",
)


def _expectation(rule: Rule) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"column": rule.column}
    if rule.kind == "not_null":
        etype = "expect_column_values_to_not_be_null"
    elif rule.kind == "in_set":
        etype = "expect_column_values_to_be_in_set"
        kwargs["value_set"] = list(rule.values)
    elif rule.kind == "match":
        etype = "expect_column_values_to_match_regex"
        kwargs["regex"] = rule.pattern
    elif rule.kind == "not_match":
        etype = "expect_column_values_to_not_match_regex"
        kwargs["regex"] = rule.pattern
    else:
        etype = "expect_column_values_to_be_between"
        kwargs["min_value"] = rule.min_date
        kwargs["max_value"] = {"$PARAMETER": SNAPSHOT_PARAM}
    return {"type": etype, "kwargs": kwargs, "meta": {"rule": rule.id}}


def _text_expectation(column: str, rules: list[Rule]) -> dict[str, Any]:
    """A column's "must not contain" rules (SSN shape, other characters, too long) as one expectation.

    GX copies the frame once per column-map expectation, so three regex checks per text column
    cost three times one; a single alternation fails on exactly the values one of them would. The
    row quarantine keeps them apart, so its report still names the precise rule.
    """
    parts = [f"(?:{r.pattern})" if r.kind == "not_match" else f".{{{(r.max_length or 0) + 1}}}" for r in rules]
    return {"type": "expect_column_values_to_not_match_regex", "kwargs": {"column": column, "regex": "|".join(parts)},
            "meta": {"rule": f"text:{column}", "rules": [r.id for r in rules]}}  # fmt: skip


def expectations_for(order: Order) -> list[dict[str, Any]]:
    """One expectation per rule, except each text column's must-not-contain rules, which share one."""
    out: list[dict[str, Any]] = []
    text: dict[str, list[Rule]] = {}
    for rule in rules_for(order):
        if rule.kind in ("not_match", "max_length"):
            text.setdefault(rule.column, []).append(rule)
        else:
            out.append(_expectation(rule))
    return out + [_text_expectation(column, rules) for column, rules in text.items()]


def build_suite(order: Order) -> SuiteDoc:
    """The suite for ``order``: exact column list, then the rules' expectations."""
    expectations = [
        {
            "type": "expect_table_columns_to_match_ordered_list",
            "kwargs": {"column_list": order.columns},
            "meta": {"rule": "exact_columns"},
        },
        *expectations_for(order),
    ]
    return {
        "name": f"{order.ref}",
        "meta": {
            "order_ref": order.ref,
            "policy_hash": order.policy_hash,
            "generated_by": "handoff policy build",
            "note": "Generated from the order file. Do not edit; change the order and rebuild.",
        },
        "expectations": expectations,
    }


def suite_path(policies: PolicySet, order: Order) -> Path:
    return policies.suites_dir / f"{order.order_id}.v{order.version}.json"


def dumps(doc: SuiteDoc) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def suite_hash(doc: SuiteDoc) -> str:
    return hashlib.sha256(dumps(doc).encode()).hexdigest()


def write_suites(policies: PolicySet) -> list[Path]:
    """Regenerate every order's suite file; return the paths written.

    Refuses to rebuild a version whose order changed since its suite was built: an order version
    is fixed once built, so a change is a new ``version``.
    """
    policies.suites_dir.mkdir(parents=True, exist_ok=True)
    for order in policies.orders.values():
        built = _built_hash(suite_path(policies, order))
        if built is not None and built != order.policy_hash:
            raise PolicyError(f"{policies.file_for(order)}: {order.ref} was built from other content "
                              f"(policy hash {built[:16]}…, now {order.policy_hash[:16]}…); an order version is "
                              "fixed once built: bump `version`, set `supersedes`, and have counsel sign the new file")  # fmt: skip
    written = []
    for order in policies.orders.values():
        path = suite_path(policies, order)
        path.write_text(dumps(build_suite(order)), encoding="utf-8")
        written.append(path)
    return written


def _built_hash(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["meta"]["policy_hash"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def load_suite(policies: PolicySet, order: Order) -> SuiteDoc:
    """Load the checked-in suite for ``order`` and refuse it unless it matches the order exactly."""
    path = suite_path(policies, order)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: no suite for {order.ref}; run `handoff policy build`") from None
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    check_suite(doc, order, path)
    return doc


def check_suite(doc: SuiteDoc, order: Order, path: Path) -> None:
    expected = build_suite(order)
    if not doc.get("expectations"):
        raise PolicyError(f"{path}: the suite has no expectations; an empty suite proves nothing")
    if dumps(doc) != dumps(expected):
        raise PolicyError(
            f"{path}: suite drifted from its order {order.ref}; "
            "review the order change, then run `handoff policy build` and commit both"
        )
