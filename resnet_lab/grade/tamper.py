"""Tamper detection for the answer process: a fingerprint of the objects a verdict depends on.

:func:`snapshot` records, for ``torch``, ``torch.nn`` (and its layer modules), ``torch.nn.functional``,
``torch.testing``, ``torch.Tensor``, every loaded ``resnet_lab`` module and ``builtins``: which object
each attribute names (and for functions, which code, defaults and closure they run), the attributes of
the classes those modules define, the contents of public dictionaries in ``resnet_lab`` (e.g.
``checks.CHECKERS``), torch's global hook tables, and which module object ``sys.modules`` holds for each
of them. :func:`changes` compares two snapshots: any attribute replaced or removed between them means
the code that ran in between changed the grader's tools (a checker swapped, ``torch.allclose`` patched,
``engine.ATOL`` raised, a checker module reloaded from a copy). New module attributes are ignored
(importing a submodule adds some), and so are private plain-data globals of ``resnet_lab`` (caches).
"""

from __future__ import annotations

import sys
import types
from builtins import getattr, id, isinstance, len, list, repr, sorted, tuple, type, vars  # noqa: A004, UP029
from typing import Any

# (the builtins above are bound here at import, before any student code: a patched builtins.isinstance
# cannot blind the snapshot that is meant to notice it)

Snapshot = dict[str, tuple[Any, ...]]
_PLAIN_DATA = (type(None), bool, int, float, str, bytes, tuple, list, dict, set, frozenset)

_FIXED = (
    "builtins",
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.nn.init",
    "torch.nn.parameter",
    "torch.testing",
    "torch.testing._comparison",
    "torch.autograd",
    "torch.random",
    "torch._tensor",
)


def _module_names() -> list[str]:
    names = set(_FIXED)
    for name in list(sys.modules):
        if name == "resnet_lab" or name.startswith(("resnet_lab.", "torch.nn.modules.")):
            names.add(name)
    return sorted(names)


def _fingerprint(value: Any, deep: bool) -> tuple[Any, ...]:
    """Identity of ``value``; for a function also of its code, defaults and closure; for a dict
    (``deep``) also of its items."""
    fp: tuple[Any, ...] = (id(value),)
    if isinstance(value, types.FunctionType):
        cells = tuple(id(c.cell_contents) if _filled(c) else None for c in value.__closure__ or ())
        fp += (id(value.__code__), id(value.__defaults__), id(value.__kwdefaults__), cells)
    elif isinstance(value, types.MethodType):
        fp += (id(value.__func__),)
    elif deep and isinstance(value, dict):
        fp += (tuple((repr(k), id(v)) for k, v in list(value.items())[:1000]),)
    return fp


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


_ATTRIBUTES = ".<attributes>"
_CACHES = {"__slotnames__"}  # what Python itself adds to a class (copy and pickle cache its slot names there)


def _class_items(prefix: str, cls: type, snap: Snapshot) -> None:
    for attr, value in list(vars(cls).items()):
        snap[f"{prefix}.{attr}"] = _fingerprint(value, deep=False)
    # a new attribute on a class overrides an inherited one (torch.Tensor.__eq__ comes from TensorBase)
    snap[prefix + _ATTRIBUTES] = tuple(sorted(str(a) for a in vars(cls)))


def snapshot() -> Snapshot:
    """Fingerprints of the grader's tools as they are now (a few milliseconds)."""
    snap: Snapshot = {}
    for name in _module_names():
        module = sys.modules.get(name)
        if module is None:
            continue
        snap[f"sys.modules[{name!r}]"] = (id(module),)
        ours = name == "resnet_lab" or name.startswith("resnet_lab.")
        for attr, value in list(vars(module).items()):
            if ours and attr.startswith("_") and isinstance(value, _PLAIN_DATA):
                continue  # a private cache or constant of ours: reassigning it is not a way to change a verdict
            deep = (ours and not attr.startswith("_")) or "hook" in attr
            snap[f"{name}.{attr}"] = _fingerprint(value, deep)
            if isinstance(value, type) and getattr(value, "__module__", None) == name:
                _class_items(f"{name}.{attr}", value, snap)
    torch = sys.modules.get("torch")
    if torch is not None:
        _class_items("torch.Tensor", torch.Tensor, snap)
        _class_items("torch._C.TensorBase", torch._C.TensorBase, snap)
    return snap


def changes(before: Snapshot, after: Snapshot, limit: int = 3) -> list[str]:
    """What was replaced or removed between two snapshots, e.g. ``["torch.allclose was replaced"]``."""
    found = []
    for key, fp in before.items():
        now = after.get(key)
        if key.endswith(_ATTRIBUTES) and now is not None:
            prefix = key[: -len(_ATTRIBUTES)]
            added = sorted(set(now) - set(fp) - _CACHES)
            found += [f"{prefix}.{attr} was replaced" for attr in added]
        elif now != fp:
            found.append(f"{key} was {'removed' if now is None else 'replaced'}")
    if len(found) > limit:
        found = found[:limit] + [f"... and {len(found) - limit} more"]
    return found


# What a checker relies on right after the student's code returns: checked at each such return, so it
# has to be small (well under a millisecond), unlike the full snapshot.
_HOT_TORCH = ("allclose", "equal", "isclose", "eq", "ne", "all", "any", "abs", "sub", "max", "no_grad", "randn")
_HOT_TENSOR = ("__eq__", "__ne__", "__sub__", "__abs__", "__bool__", "__float__", "allclose", "equal", "abs",
               "sub", "max", "all", "any", "item", "clone", "shape")  # fmt: skip
_HOT_BUILTINS = ("isinstance", "float", "bool", "abs", "max", "len", "tuple", "getattr", "all", "any", "zip")


def hot_snapshot() -> Snapshot:
    """Fingerprints of the few things a checker uses right after the student's code returns: torch's
    comparisons, their Tensor methods, a few builtins, the checkers and the comparison engine."""
    import builtins

    torch = sys.modules["torch"]
    engine = sys.modules["resnet_lab.checks.engine"]
    checks = sys.modules["resnet_lab.checks"]
    snap: Snapshot = {f"torch.{n}": _fingerprint(getattr(torch, n, None), False) for n in _HOT_TORCH}
    snap["torch.testing.assert_close"] = _fingerprint(torch.testing.assert_close, False)
    for cls in (torch.Tensor, torch._C.TensorBase):
        for n in _HOT_TENSOR:
            snap[f"{cls.__qualname__}.{n}"] = _fingerprint(vars(cls).get(n), False)
    for n in ("__call__", "_call_impl", "eval", "train"):
        snap[f"torch.nn.Module.{n}"] = _fingerprint(vars(torch.nn.Module).get(n), False)
    snap.update({f"builtins.{n}": _fingerprint(getattr(builtins, n), False) for n in _HOT_BUILTINS})
    snap.update({f"resnet_lab.checks.engine.{n}": _fingerprint(v, True) for n, v in list(vars(engine).items())
                 if not (n.startswith("_") and isinstance(v, _PLAIN_DATA))})  # fmt: skip
    snap["resnet_lab.checks.CHECKERS"] = _fingerprint(checks.CHECKERS, True)
    for name in ("resnet_lab.checks", "resnet_lab.checks.engine", "resnet_lab.checks.pairing"):
        snap[f"sys.modules[{name!r}]"] = (id(sys.modules.get(name)),)
    return snap
