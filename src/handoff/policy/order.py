"""The court order as versioned, reviewed data.

Loads one YAML file per order version from ``<policy_dir>/orders/`` and refuses anything
malformed with a message naming the file, the field and the problem. It never guesses: a
missing or unknown field is an error, and columns the law never allows cannot be permitted.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from handoff.errors import NotFound, PolicyError
from handoff.policy.source_model import COLUMN_BY_NAME, STATES, state_fips

# Columns no order version may permit (SSN and health flags: LEGAL.md "never").
NEVER_DISCLOSED: frozenset[str] = frozenset(
    {"ssn_num", "ssn_ind", "prgncy_flag", "dsblty_flag", "chrnc_cond_flag", "hcbs_flag"}
)
CATEGORIES = ("medicaid_id", "date_of_birth", "citizenship", "immigration_status", "address", "phone")

Scope = Literal["order", "excluded"]
_CODE = re.compile(r"^[A-Za-z0-9]{1,16}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Case(_Strict):
    caption: str
    number: str
    court: str
    judge: str


class SourceSpec(_Strict):
    table: str = "enrollees"
    id_column: str = "msis_ident_num"
    jurisdiction_column: str = "submtg_state_cd"
    updated_column: str | None = "updated_at"


class Condition(_Strict):
    """One condition of the population rule; a row must meet every one."""

    column: str
    in_: list[str] | None = Field(default=None, alias="in")
    is_null: bool | None = None
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    explain: str

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        if (self.in_ is None) == (self.is_null is None):
            raise ValueError("give exactly one of 'in' (a list of codes) or 'is_null' (true/false)")
        if self.in_ is not None and not self.in_:
            raise ValueError("'in' must list at least one code")
        for code in self.in_ or []:
            if not _CODE.match(code):
                raise ValueError(f"code {code!r} must be 1-16 letters or digits")
        return self


class Population(_Strict):
    on_null: Literal["deny"] = "deny"
    all_of: list[Condition] = Field(min_length=1)


class PlaintiffState(_Strict):
    state: str
    verified: bool
    note: str | None = None

    @field_validator("state")
    @classmethod
    def _known_state(cls, value: str) -> str:
        return STATES[state_fips(value)]


class JurisdictionScope(_Strict):
    plaintiff: Scope = "order"
    non_plaintiff: Scope = "order"
    overrides: dict[str, Scope] = Field(default_factory=dict)

    @field_validator("overrides")
    @classmethod
    def _known_states(cls, value: dict[str, Scope]) -> dict[str, Scope]:
        return {STATES[state_fips(k)]: v for k, v in value.items()}


class Hearing(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    at: datetime
    title: str
    # Kept only to refuse it with a clear message: an outcome is a signed ledger event, never file text.
    outcome: None = None

    @field_validator("outcome", mode="before")
    @classmethod
    def _no_outcome(cls, value: object) -> None:
        if value is not None:
            raise ValueError(
                "a hearing outcome is never written in the order file; counsel records it, signed, "
                "with `handoff court outcome HEARING --result ... --key KEY`"
            )
        return None


class Order(_Strict):
    order_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: int = Field(ge=1)
    case: Case
    signed_date: date
    effective_at: datetime
    court_time_zone: str
    supersedes: str | None = None
    summary: str
    source: SourceSpec = SourceSpec()
    permitted_fields: dict[str, list[str]]
    name_flag: bool = False
    name_fields: list[str] = Field(default_factory=list)
    required_fields: list[str]
    population: Population
    plaintiff_states: list[PlaintiffState]
    jurisdiction_scope: JurisdictionScope = JurisdictionScope()
    approvals_required: int = Field(default=1, ge=1, le=5)
    hearings: list[Hearing] = Field(default_factory=list)

    @field_validator("court_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like America/Los_Angeles") from None
        return value

    @field_validator("effective_at")
    @classmethod
    def _naive_local(cls, value: datetime) -> datetime:
        if value.tzinfo is not None:
            raise ValueError("give the effective instant as local court time without an offset")
        return value

    @field_validator("permitted_fields")
    @classmethod
    def _categories(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown category {unknown[0]!r}; categories are {', '.join(CATEGORIES)}")
        return value

    @model_validator(mode="after")
    def _columns_exist(self) -> Order:
        names = [c for cols in self.permitted_fields.values() for c in cols] + list(self.name_fields)
        names += [c.column for c in self.population.all_of] + list(self.required_fields)
        for name in names:
            if name not in COLUMN_BY_NAME:
                raise ValueError(f"column {name!r} is not in the source data model")
        for name in self.columns:
            if name in NEVER_DISCLOSED:
                raise ValueError(f"column {name!r} may never be disclosed (SSN and health flags)")
        missing = [c for c in self.required_fields if c not in self.columns]
        if missing:
            raise ValueError(f"required field {missing[0]!r} is not a permitted field")
        if self.source.id_column not in self.columns:
            raise ValueError(f"the id column {self.source.id_column!r} must be a permitted field")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError("a column is listed in more than one category")
        return self

    # ----- derived views -------------------------------------------------------------------
    @property
    def ref(self) -> str:
        """The order version as people cite it: ``ORDER_ID@vN``."""
        return f"{self.order_id}@v{self.version}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.court_time_zone)

    @property
    def effective_instant(self) -> datetime:
        """The effective moment as an aware datetime in the court's zone."""
        return self.effective_at.replace(tzinfo=self.zone)

    @property
    def columns(self) -> list[str]:
        """Every column that may leave, in a fixed order: the extractor's projection."""
        cols = [c for cat in CATEGORIES for c in self.permitted_fields.get(cat, [])]
        if self.name_flag:
            cols += list(self.name_fields)
        return cols

    @cached_property
    def policy_hash(self) -> str:
        """SHA-256 of the whole order version, calendar included: any change to the file's meaning changes it."""
        body = self.model_dump(mode="json", by_alias=True)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    @property
    def plaintiff_abbrs(self) -> set[str]:
        # Unverified entries count as plaintiffs: the stricter reading.
        return {p.state for p in self.plaintiff_states}

    def scope_for(self, abbr: str) -> Scope:
        if abbr in self.jurisdiction_scope.overrides:
            return self.jurisdiction_scope.overrides[abbr]
        if abbr in self.plaintiff_abbrs:
            return self.jurisdiction_scope.plaintiff
        return self.jurisdiction_scope.non_plaintiff

    def in_scope_fips(self, requested: list[str] | None = None) -> list[str]:
        """FIPS codes this order covers, narrowed to ``requested`` (FIPS) when given."""
        wanted = set(requested) if requested else set(STATES)
        return sorted(f for f, abbr in STATES.items() if f in wanted and self.scope_for(abbr) == "order")


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    # A misspelt required key fails twice ("missing X", "unknown Y"); name what the user wrote.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        siblings = err["loc"][:-1]
        missing = [str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"][:-1] == siblings]
        close = difflib.get_close_matches(str(err["loc"][-1]), missing, n=1)
        msg = f"unknown field (typo? did you mean {close[0]!r})" if close else "unknown field (typo?)"
    return f"{loc or '(top level)'}: {msg}"


MAX_ORDER_BYTES = 1_000_000


def load_order_file(path: Path) -> Order:
    """Parse and check one order file; raise ``PolicyError`` naming file, field and problem."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such order file") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the order file ({exc.strerror or type(exc).__name__}); "
                          "check its permissions") from None  # fmt: skip
    if len(data) > MAX_ORDER_BYTES:
        raise PolicyError(f"{path}: {len(data):,} bytes; an order file is at most {MAX_ORDER_BYTES:,}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text (byte {exc.start}); save the order file as UTF-8") from None
    return parse_order(text, str(path))


# libyaml's parser with the safe constructor: the same documents, read several times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_order(text: str, path: str) -> Order:
    """Parse and check an order version's text (``path`` names it in errors); ``PolicyError`` if it is not one."""
    try:
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=_LOADER)):
            raise PolicyError(f"{path}: uses YAML aliases (*name); write every value out in an order file")
        raw = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (libyaml's when installed)
    except yaml.YAMLError as exc:
        if "nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own limit
            raise PolicyError(f"{path}: nested too deeply to be an order file") from None
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise PolicyError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise PolicyError(f"{path}: nested too deeply to be an order file") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a timestamp no calendar has (2026-13-45)
        raise PolicyError(f"{path}: a value cannot be read ({str(exc)[:80]})") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: expected a mapping of order fields at the top level")
    try:
        return Order.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"{path}: {_describe(exc)}") from None
    except RecursionError:
        raise PolicyError(f"{path}: nested too deeply to be an order file") from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise PolicyError(f"{path}: not an order file ({type(exc).__name__}: {str(exc)[:80]})") from None


class PolicySet:
    """Every order version in a policy folder, with lookup by id and version."""

    def __init__(self, policy_dir: Path) -> None:
        self.policy_dir = policy_dir
        self.orders_dir = policy_dir / "orders"
        self.suites_dir = policy_dir / "suites"
        if not self.orders_dir.is_dir():
            raise PolicyError(
                f"{self.orders_dir}: no orders folder; set HANDOFF_POLICY_DIR to the folder that holds orders/"
            )
        self.files: dict[str, Path] = {}
        self.orders: dict[str, Order] = {}
        for path in sorted(self.orders_dir.glob("*.yaml")):
            order = load_order_file(path)
            if order.ref in self.orders:
                raise PolicyError(f"{path}: {order.ref} is also defined in {self.files[order.ref]}")
            self.orders[order.ref] = order
            self.files[order.ref] = path
        if not self.orders:
            raise PolicyError(f"{self.orders_dir}: no order files (*.yaml)")

    def current(self, order_id: str | None = None) -> Order:
        """The newest version of ``order_id`` (or of the newest order) not superseded by another."""
        superseded = {o.supersedes for o in self.orders.values() if o.supersedes}
        live = [o for o in self.orders.values() if o.ref not in superseded]
        if order_id:
            if "@" in order_id:
                return self.get(order_id)
            live = [o for o in live if o.order_id == order_id]
            if not live:
                known = ", ".join(sorted({o.order_id for o in self.orders.values()}))
                raise NotFound(f"no order {order_id!r}; known orders: {known}")
        return max(live, key=lambda o: (o.signed_date, o.version))

    def get(self, ref: str) -> Order:
        if ref not in self.orders:
            raise NotFound(f"no order version {ref!r}; known: {', '.join(sorted(self.orders))}")
        return self.orders[ref]

    def file_for(self, order: Order) -> Path:
        return self.files[order.ref]
