"""GX's pydantic v1 model fields copy faster and the same: every field of every model GX defines,
deep-copied the direct way, equals the copy ``copy.deepcopy``'s generic path makes, slot by slot
(in a fresh interpreter, with GX imported after the direct copy was installed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

COMPARE = textwrap.dedent(
    """
    import copy, copyreg, json, sys
    from handoff.checks import field_copies
    installed = field_copies.install() if sys.argv[1] == "install" else False
    import great_expectations  # builds every model class, deep-copying inherited fields
    from pydantic.v1 import BaseModel
    from pydantic.v1.fields import FieldInfo, ModelField

    MISSING = object()

    def item(o, k):
        try:
            return o[k]
        except (TypeError, KeyError, IndexError):
            return MISSING

    def same(o, a, b, seen):
        # a and b, two copies of o, are equal, and each shares with o exactly what the other shares
        if type(a) is not type(b) or (a is o) != (b is o):
            return False
        if isinstance(a, (int, float, str, bytes, bool, type(None), type)) or callable(a) and a is b:
            return a == b or a is b
        key = (id(a), id(b))
        if key in seen:
            return seen[key]
        seen[key] = True  # a cycle: judged by the rest
        if isinstance(a, dict):
            ok = list(a) == list(b) and all(same(item(o, k), a[k], b[k], seen) for k in a)
        elif isinstance(a, (list, tuple)):
            ok = len(a) == len(b) and all(same(item(o, i), a[i], b[i], seen) for i in range(len(a)))
        elif isinstance(a, (set, frozenset)):
            ok = a == b
        else:  # an object: its slots and its instance dictionary, compared the same way
            slots = copyreg._slotnames(type(a))
            ok = all(same(getattr(o, n, MISSING), getattr(a, n, MISSING), getattr(b, n, MISSING), seen)
                     for n in slots)
            if hasattr(a, "__dict__"):
                ok = ok and same(getattr(o, "__dict__", MISSING), vars(a), vars(b), seen)
            elif not slots:
                ok = a == b or a is b
        seen[key] = ok
        return ok

    def classes(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from classes(sub)

    fields = [f for cls in set(classes(BaseModel)) for f in cls.__fields__.values()]
    generic = lambda x: copy._reconstruct(x, {}, *x.__reduce_ex__(4))
    unequal = []
    for field in fields:
        direct = copy.deepcopy(field)
        if direct is field or not same(field, direct, generic(field), {}):
            unequal.append(field.name)
    shared = ModelField.__new__(ModelField)  # a field whose default refers back to itself
    shared.name, shared.default = "loop", [None]
    shared.default[0] = shared
    looped = copy.deepcopy(shared)
    print(json.dumps({"installed": installed, "direct": field_copies.installed(), "fields": len(fields),
                      "unequal": unequal[:20],
                      "cycle_kept": looped.default[0] is looped and looped is not shared}))
    """
)


def _compare(mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", COMPARE, mode], capture_output=True, text=True, timeout=300,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_every_gx_model_field_copies_the_same_the_direct_way() -> None:
    result = _compare("install")
    assert result["installed"] is True and result["direct"] is True
    assert int(str(result["fields"])) > 1000  # GX's expectations, datasources and assets
    assert result["unequal"] == []
    assert result["cycle_kept"] is True


def test_without_install_gx_copies_its_fields_the_generic_way() -> None:
    """The control: the comparison runs the same without the direct copy, which is then not in place."""
    result = _compare("plain")
    assert result["direct"] is False and result["unequal"] == [] and result["cycle_kept"] is True
