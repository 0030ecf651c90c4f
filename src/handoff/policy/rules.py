"""Content and format rules for what leaves, derived from an order.

One list of rules feeds two enforcers so they cannot drift: ``quarantine`` applies them row
by row (vectorised, in Arrow) and ``suite`` turns them into Great Expectations expectations.
Regexes are written to mean the same in Python ``re``, RE2 (Arrow) and PostgreSQL ``~``: no
``\\b``, no ``\\d``, no look-around.

Disguised identifiers. Every text value must be made of printable ASCII and Latin letters
(``characters``): a control character, a bidirectional override, a zero-width mark, a
full-width or other-script digit, a superscript digit, all fail there, in both enforcers, so
the ASCII SSN pattern sees every digit an SSN could hide in. The SSN pattern takes any run of
separators with at most one letter among them between any two digits (``123.45.6789``,
``123 / 45 / 6789``, ``1 2 3 4 5 6 7 8 9``, ``123x45x6789``) and the look-alikes l, I, |, O, o, S,
B and Z as digits (``l23-45-678O``); the row quarantine checks it on the NFKC-normalised text as well, so its
report names ``ssn_like`` for a full-width SSN too.
Lengths come from the source data model (``max_length``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from handoff.policy.order import Order
from handoff.policy.source_model import COLUMN_BY_NAME, STATES

RuleKind = Literal["not_null", "in_set", "match", "not_match", "date_between", "max_length"]

# Nine digits, not part of a longer number, with anything between two of them that is not a digit:
# any run of separators, with at most one letter among them (``123x45x6789``, ``1 2 3 4 5 6 7 8 9``,
# ``123 -- -45 -- -6789``). The letters and signs that pass for a digit (l I | O o S B Z) count as digits.
SSN_DIGIT = "[0-9lI|OoSBZ]"
SSN_GAP = "[^0-9A-Za-z]*(?:[A-Za-z][^0-9A-Za-z]*)?"
SSN_LIKE = f"(?:^|[^0-9]){SSN_DIGIT}(?:{SSN_GAP}{SSN_DIGIT}){{8}}(?:[^0-9]|$)"
# Any character that is not printable ASCII or a Latin letter (Latin-1 letters without × ÷, Latin
# Extended-A). Unanchored, because Python's ``$`` also matches before a trailing newline and RE2's
# does not. The \u escapes are Python's: the pattern holds the characters themselves (RE2 has no \u).
OTHER_CHARACTERS = "[^ -~\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f]"
ZIP = r"^[0-9]{5}(?:[0-9]{4})?$"
PHONE = r"^[0-9]{10}$"
COUNTY = r"^[0-9]{3}$"
MEDICAID_ID = r"^[A-Z0-9]{6,20}$"
ISO_DATE_MIN = "1900-01-01T00:00:00"
SNAPSHOT_PARAM = "snapshot_date"
_SSN = re.compile(SSN_LIKE)
_FORMAT_BY_COLUMN: dict[str, tuple[str, str]] = {
    "msis_ident_num": ("medicaid_id_format", MEDICAID_ID),
    "elgbl_zip_cd_home": ("zip_format", ZIP),
    "elgbl_zip_cd_mail": ("zip_format", ZIP),
    "elgbl_phne_num_home": ("phone_format", PHONE),
    "elgbl_cnty_cd_home": ("county_format", COUNTY),
    "elgbl_cnty_cd_mail": ("county_format", COUNTY),
}
_STATE_COLUMNS = ("elgbl_state_cd_home", "elgbl_state_cd_mail")
# ZIP+4 is nine digits, so the SSN pattern cannot tell them apart there; ZIPs are format-checked.
_NO_SSN_CHECK = {"elgbl_zip_cd_home", "elgbl_zip_cd_mail"}


@dataclass(frozen=True)
class Rule:
    """One check on one outgoing column. ``id`` is what reports and quarantine rows name."""

    id: str
    kind: RuleKind
    column: str
    values: tuple[str, ...] = field(default=())
    pattern: str | None = None
    min_date: str | None = None
    max_length: int | None = None
    normalize: bool = False  # the row quarantine also checks the NFKC form (GX sees the raw value)

    def describe(self) -> str:
        if self.kind == "not_null":
            return f"{self.column} must not be null"
        if self.kind == "in_set":
            return f"{self.column} must be one of {', '.join(self.values)}"
        if self.kind == "match":
            return f"{self.column} must match {self.pattern}"
        if self.kind == "not_match" and self.pattern == OTHER_CHARACTERS:
            return f"{self.column} must hold only printable ASCII and Latin letters (no control or format characters)"
        if self.kind == "not_match":
            return f"{self.column} must not contain an SSN-like number"
        if self.kind == "max_length":
            return f"{self.column} must be at most {self.max_length} characters"
        return f"{self.column} must be a date from {self.min_date} to the snapshot date"


def rules_for(order: Order) -> list[Rule]:
    """Every row-level rule for the columns this order lets leave, in a stable order."""
    cols = order.columns
    rules: list[Rule] = []
    for c in order.required_fields:
        rules.append(Rule(f"required:{c}", "not_null", c))
    for cond in order.population.all_of:
        if cond.in_ is not None and cond.column in cols:
            rules.append(Rule(f"code_set:{cond.column}", "in_set", cond.column, tuple(cond.in_)))
    for c in _STATE_COLUMNS:
        if c in cols:
            rules.append(Rule(f"state_code:{c}", "in_set", c, tuple(sorted(STATES.values()))))
    for c in cols:
        if c in _FORMAT_BY_COLUMN:
            name, pattern = _FORMAT_BY_COLUMN[c]
            rules.append(Rule(f"{name}:{c}", "match", c, pattern=pattern))
    for c in cols:
        if COLUMN_BY_NAME[c].kind == "date":
            rules.append(Rule(f"impossible_date:{c}", "date_between", c, min_date=ISO_DATE_MIN))
    for c in cols:
        col = COLUMN_BY_NAME[c]
        if col.kind in ("text", "code"):
            rules.append(Rule(f"characters:{c}", "not_match", c, pattern=OTHER_CHARACTERS))
            if col.length:
                rules.append(Rule(f"max_length:{c}", "max_length", c, max_length=col.length))
            if c not in _NO_SSN_CHECK:
                rules.append(Rule(f"ssn_like:{c}", "not_match", c, pattern=SSN_LIKE, normalize=True))
    return rules


def looks_like_ssn(value: str) -> bool:
    import unicodedata

    return bool(_SSN.search(unicodedata.normalize("NFKC", value)))


def mask_id(value: str) -> str:
    """An identifier as it may be shown: one that itself looks like an SSN is replaced by a stable token."""
    if not looks_like_ssn(value):
        return value
    return f"masked-{hashlib.sha256(value.encode()).hexdigest()[:12]}"
