"""An expectation's configuration, built by GX once per call that reads it and with its type name known.

GX 1.x's ``Expectation.configuration`` is a property that builds a new ``ExpectationConfiguration``
each time it is read: the pydantic v1 model's ``dict()``, a configuration object, and a regex that
turns the class name into the expectation type. ``Expectation._get_domain_kwargs`` and
``_get_success_kwargs`` read it once per key, inside a dict comprehension, and ``_get_success_kwarg``
twice: about 2,000 of the 2,300 configurations built during one validation of handoff's suite, and a
quarter of a small unit's validation (``docs/benchmarks.md``).

Each build also turns the class name into the expectation type with two regular-expression
substitutions (``great_expectations.util.camel_to_snake``): about a tenth of a small unit's
validation, for a handful of class names.

``install`` gives ``Expectation`` the same three methods reading the configuration once per call: the
same values for the same keys in the same order, the same warning and the same error; and the
expectation module a ``camel_to_snake`` that remembers each name's answer (a pure function of a
string). It does so only where GX's own functions are the ones these were written from (their
source text, ``KNOWN``), so a GX release that changes them keeps its own, only slower
(``tests/test_expectation_config.py`` notices). The configuration itself is never kept between
calls: each call reads the expectation as it is then.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import textwrap
from typing import Any

# GX 1.24.1's Expectation._get_success_kwarg, _get_domain_kwargs, _get_success_kwargs and util.camel_to_snake
# (``fingerprint``).
KNOWN = {
    "_get_success_kwarg": "ca8e18f0c8fa2e95f6864a6708f7c3ea4b716f1228d6a71122d1fb9535a645ee",
    "_get_domain_kwargs": "d67fea77964aeea5e9c953ed0074990cb634d25e51b2e201a08b622375c57fd4",
    "_get_success_kwargs": "ce0aeca9654b0b6d68f710ac7f1a58228d6a5c61f59aa86650e83839b89f5607",
    "camel_to_snake": "d5bde255f9c3fdf1aeaa60c24e7e314bb3651307555472ce57095a141bb6573f",
}

log = logging.getLogger("great_expectations.expectations.expectation")  # where GX's own method warns


def fingerprint(fn: Any) -> str:
    """SHA-256 of a function's source text as written: the same on every Python version, as bytecode is
    not. Empty where the source cannot be read (no ``.py`` file, a built-in), which matches nothing."""
    try:
        return hashlib.sha256(textwrap.dedent(inspect.getsource(fn)).encode()).hexdigest()
    except (OSError, TypeError):
        return ""


def _get_success_kwarg(self: Any, key: str, default: Any = None) -> Any:
    kwargs = self.configuration.kwargs
    if key in kwargs:
        return kwargs[key]
    field = self.__fields__.get(key)
    if field is not None:
        return field.default if not field.required else default
    log.warning(f'_get_success_kwarg called with key "{key}", but it is not a known field of {type(self).__name__}')
    return default


def _get_domain_kwargs(self: Any) -> dict[str, str | None]:
    from great_expectations.exceptions import InvalidExpectationKwargsError

    kwargs = self.configuration.kwargs
    domain_kwargs: dict[str, str | None] = {
        key: kwargs.get(key, self._get_default_value(key)) for key in self.domain_keys
    }
    missing_kwargs = set(self.domain_keys) - set(domain_kwargs.keys())
    if missing_kwargs:
        raise InvalidExpectationKwargsError(f"Missing domain kwargs: {list(missing_kwargs)}")
    return domain_kwargs


def _get_success_kwargs(self: Any) -> dict[str, Any]:
    domain_kwargs = self._get_domain_kwargs()
    kwargs = self.configuration.kwargs
    success_kwargs: dict[str, Any] = {key: kwargs.get(key, self._get_default_value(key)) for key in self.success_keys}
    success_kwargs.update(domain_kwargs)
    return success_kwargs


# GX's own functions, as install found them (for the tests that compare both).
ORIGINALS: dict[str, Any] = {}

REPLACEMENTS = {
    "_get_success_kwarg": _get_success_kwarg,
    "_get_domain_kwargs": _get_domain_kwargs,
    "_get_success_kwargs": _get_success_kwargs,
}


def install() -> bool:
    """Give GX's ``Expectation`` the three methods and its module the remembering ``camel_to_snake``
    (idempotent); False, leaving GX's own in place, where any of GX's differs from the one these were
    written from (each part is judged on its own)."""
    return _install_methods() & _install_type_names()


def _install_methods() -> bool:
    from great_expectations.expectations.expectation import Expectation

    if all(Expectation.__dict__.get(name) is fn for name, fn in REPLACEMENTS.items()):
        return True
    own = {name: Expectation.__dict__.get(name) for name in REPLACEMENTS}
    if any(fn is None or fingerprint(fn) != KNOWN[name] for name, fn in own.items()):
        return False
    ORIGINALS.update(own)
    for name, fn in REPLACEMENTS.items():
        setattr(Expectation, name, fn)
    return True


def _install_type_names() -> bool:
    import great_expectations.expectations.expectation as module
    import great_expectations.util as util

    own = module.camel_to_snake
    if getattr(own, "__wrapped__", None) is util.camel_to_snake:
        return True
    if own is not util.camel_to_snake or fingerprint(own) != KNOWN["camel_to_snake"]:
        return False
    ORIGINALS["camel_to_snake"] = own
    module.camel_to_snake = functools.lru_cache(maxsize=1024)(own)
    return True


def installed() -> bool:
    import great_expectations.expectations.expectation as module
    import great_expectations.util as util
    from great_expectations.expectations.expectation import Expectation

    methods = all(Expectation.__dict__.get(name) is fn for name, fn in REPLACEMENTS.items())
    return methods and getattr(module.camel_to_snake, "__wrapped__", None) is util.camel_to_snake
