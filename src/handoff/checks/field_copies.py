"""Copying the fields of GX's pydantic v1 models without ``copy.deepcopy``'s generic detour.

GX 1.x defines its expectations, datasources and assets as pydantic v1 models (``pydantic.v1``),
and pydantic v1's metaclass deep-copies every field a class inherits, for every class it builds:
about a fifth of GX's import here (``docs/benchmarks.md``). A field (``ModelField``) and its
``FieldInfo`` have ``__slots__`` and no copy method of their own, so ``copy.deepcopy`` takes its
generic path for each: ``__reduce_ex__``, a state tuple and dict built, deep-copied, then replayed
onto a new object. ``install`` gives both classes a ``__deepcopy__`` that does what that path does
(a new object of the same class, each slot that is set deep-copied into it in slot order, the memo
shared, so shared and cyclic references come out as before) without the detour. The copies are
the same, slot by slot, for every field GX defines (``tests/test_field_copies.py``). A subclass
with instance dictionaries, which pydantic does not define, takes the generic path as before.
"""

from __future__ import annotations

import copy
import copyreg
from typing import Any

# The types copy.deepcopy returns as they are (its own table): a slot holding one is assigned, not
# passed through deepcopy, which would only look the type up and hand the same object back.
_ATOMIC = frozenset(t for t, f in copy._deepcopy_dispatch.items() if f is copy._deepcopy_atomic)  # type: ignore[attr-defined]


def _deepcopy_slots(self: Any, memo: dict[int, Any]) -> Any:
    cls: Any = type(self)
    if hasattr(self, "__dict__"):  # not a purely slotted object: the generic path, as without this
        return copy._reconstruct(self, memo, *self.__reduce_ex__(4))  # type: ignore[attr-defined]
    new = cls.__new__(cls)
    memo[id(self)] = new
    for name in copyreg._slotnames(cls):  # type: ignore[attr-defined]
        try:
            value = getattr(self, name)
        except AttributeError:  # an unset slot is not copied, as object.__getstate__ leaves it out
            continue
        setattr(new, name, value if type(value) in _ATOMIC else copy.deepcopy(value, memo))
    return new


def install() -> bool:
    """Give pydantic v1's field classes the direct copy (idempotent); False where pydantic has no v1
    or the classes have copy methods of their own (a changed pydantic: they are left alone)."""
    try:
        from pydantic.v1.fields import FieldInfo, ModelField
    except ImportError:
        return False
    done = True
    for cls in (ModelField, FieldInfo):
        own = cls.__dict__.get("__deepcopy__")
        if own is _deepcopy_slots:
            continue
        if (
            own is not None
            or "__reduce__" in cls.__dict__
            or "__reduce_ex__" in cls.__dict__
            or ("__getstate__" in cls.__dict__)
        ):
            done = False
            continue
        setattr(cls, "__deepcopy__", _deepcopy_slots)  # noqa: B010 - a class attribute, set on purpose
    return done


def installed() -> bool:
    try:
        from pydantic.v1.fields import FieldInfo, ModelField
    except ImportError:
        return False
    return all(cls.__dict__.get("__deepcopy__") is _deepcopy_slots for cls in (ModelField, FieldInfo))
