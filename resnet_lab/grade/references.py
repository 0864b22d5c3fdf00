"""Is the answer the student's own? Spotting the package's reference handed in as an exercise's answer.

In the answer process, before any student code runs, :func:`install` wraps each exercise's reference
(``resnet_lab.BasicBlock.forward``, ``resnet_lab.conv_output_size``, ...) so that a call made from the
student's code (any frame outside the Python installation, torch and ``resnet_lab``) is recorded.
:func:`static_match` says whether the answer *is* a package object (an alias) or a subclass of the
exercise's reference; :class:`Watch` collects the calls to the reference made from the student's code
while the exercise is checked (a wrapper whose forward calls the reference). Either way the exercise's
status is ``reference used``, never ``passed``.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import sysconfig
from collections.abc import Callable
from typing import Any

import torch

# torchvision's ResNet blocks: a reference for the block exercises too
_TV_BASIC, _TV_BOTTLENECK = "torchvision.models.resnet:BasicBlock", "torchvision.models.resnet:Bottleneck"
# exercise (checker name) -> the package objects whose use as the answer is not the student's own work
REFERENCES: dict[str, tuple[str, ...]] = {
    "conv_output_size": ("resnet_lab.shapes:conv_output_size",),
    "residual_unit": ("resnet_lab.blocks:BasicBlock", _TV_BASIC),
    "basic_block": ("resnet_lab.blocks:BasicBlock", _TV_BASIC),
    "bottleneck": ("resnet_lab.blocks:Bottleneck", _TV_BOTTLENECK),
    "plain_switch": ("resnet_lab.blocks:BasicBlock", _TV_BASIC),
    "stage": ("resnet_lab.stages:make_stage", "resnet_lab.stages:make_stages"),
    "zero_pad_shortcut": ("resnet_lab.blocks:ZeroPadShortcut",),
    "cifar_net": ("resnet_lab.models:cifar_resnet",),
    "imagenet_resnet": ("resnet_lab.models:resnet", "resnet_lab.models:ResNet"),
    "preact_block": ("resnet_lab.blocks:BasicBlock", _TV_BASIC),
    "se_block": ("resnet_lab.blocks:BasicBlock", _TV_BASIC),
    "squeeze_excitation": ("resnet_lab.blocks:SqueezeExcitation",),
    "grouped_bottleneck": ("resnet_lab.blocks:Bottleneck", _TV_BOTTLENECK),
    "triangular_lr": ("resnet_lab.schedules:learning_rate",),
    "ema_update": ("resnet_lab.training:moving_average",),
    "flip_tta": ("resnet_lab.training:predict", "resnet_lab.levers:predict_views"),
}

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TRUSTED = tuple(
    sorted(
        {
            os.path.dirname(os.path.abspath(torch.__file__)),
            _PACKAGE_DIR,
            *(p for k in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_paths().get(k))),
        }
    )
)
_calls: set[str] = set()
_base: set[int] = set()  # the frames that started this process (not the student's, whatever their file)
_objects: dict[str, Any] = {}  # "resnet_lab.blocks:BasicBlock" -> the original object
_aliases: dict[int, str] = {}  # id of every public package object (and of our wrappers) -> its name
_codes: dict[str, dict[int, str]] = {}  # reference key -> {id of a code object of it: "owner's Name.attr"}
_keep: list[Any] = []  # the code objects above, kept alive so that their ids stay theirs


def owner(key: str) -> str:
    """``resnet_lab's`` or ``torchvision's``: whose reference ``key`` is."""
    return "torchvision's" if key.startswith("torchvision") else "resnet_lab's"


def _functions(value: Any) -> list[Any]:
    """The functions behind a class attribute: a function, its ``__wrapped__`` chain, a static/class method's
    function, a property's accessors."""
    found: list[Any] = []
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, (staticmethod, classmethod)):
            todo.append(item.__func__)
        elif isinstance(item, property):
            todo.extend(f for f in (item.fget, item.fset, item.fdel) if f is not None)
        elif callable(item) and hasattr(item, "__code__") and not any(item is f for f in found):
            found.append(item)
            if getattr(item, "__wrapped__", None) is not None:
                todo.append(item.__wrapped__)
            if getattr(item, "__func__", None) is not None:
                todo.append(item.__func__)
    return found


def _note_codes(key: str, obj: Any) -> None:
    codes = _codes.setdefault(key, {})
    name = key.split(":")[1]
    if isinstance(obj, type):  # its own functions and those of its package bases (not torch's)
        bases = [c for c in obj.__mro__ if str(c.__module__).startswith(("resnet_lab", "torchvision"))]
        attrs = [(attr, value) for c in bases for attr, value in vars(c).items()]
    else:
        attrs = [("", obj)]
    for attr, value in attrs:
        for fn in _functions(value):
            if fn.__code__ is _wrap_code:  # our watcher: the same code for every reference; its target counts
                continue
            _keep.append(fn.__code__)
            codes[id(fn.__code__)] = f"{owner(key)} {name}{'.' + attr if attr else ''}"


def borrowed(obj: Any, exercise: str) -> str | None:
    """Is a function of ``obj`` (a function, or a class: every class of its MRO) one of the exercise's
    references' own functions (the same code object: itself, its ``__wrapped__``, a copy sharing its code)?"""
    codes: dict[int, str] = {}
    for key in REFERENCES.get(exercise, ()):
        codes.update(_codes.get(key, {}))
    if not codes:
        return None
    classes = [c for c in obj.__mro__ if c is not object] if isinstance(obj, type) else []
    for cls in classes or [None]:
        items = vars(cls).items() if cls is not None else [(getattr(obj, "__name__", "the answer"), obj)]
        for attr, value in items:
            for fn in _functions(value):
                what = codes.get(id(getattr(fn, "__code__", None)))
                if what:
                    where = f"{cls.__name__}.{attr}" if cls is not None else str(attr)
                    return f"the answer's {where} is {what}, not your own code"
    return None


def borrowed_in(objects: Any, exercise: str) -> list[str]:
    """What :func:`borrowed` finds in the classes of the modules (and their submodules) in ``objects``."""
    found: list[str] = []
    seen: set[int] = set()
    for obj in objects:
        modules = list(obj.modules()) if isinstance(obj, torch.nn.Module) else [obj]
        for module in modules:
            cls = module if isinstance(module, type) else type(module)
            package = str(cls.__module__).split(".")[0] in ("torch", "resnet_lab", "torchvision")
            if id(cls) in seen or package:  # the packages' own classes: the judge names those by class
                continue
            seen.add(id(cls))
            why = borrowed(cls, exercise)
            if why and why not in found:
                found.append(why)
    return found


def _from_student(frame: Any) -> bool:
    """Does any caller frame run code from outside the installation, torch and resnet_lab (the student's)?"""
    while frame is not None and id(frame) not in _base:
        name = frame.f_code.co_filename
        if not (name.startswith("<frozen") or (os.path.isabs(name) and name.startswith(_TRUSTED))):
            return True
        frame = frame.f_back
    return False


def _wrap(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def watched(*args: Any, **kwargs: Any) -> Any:
        if _from_student(sys._getframe(1)):
            _calls.add(key)
        return fn(*args, **kwargs)

    return watched


_wrap_code = _wrap("", len).__code__


def _resolve(key: str) -> Any:
    module_name, attr = key.split(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None  # renamed in the package: that reference is simply not watched


def install() -> None:
    """Wrap every exercise's reference and note every public package object (call once, before student code)."""
    frame = sys._getframe(1)
    while frame is not None:
        _base.add(id(frame))
        frame = frame.f_back
    for name, module in list(sys.modules.items()):
        if name.startswith("resnet_lab") and not name.startswith(("resnet_lab.checks", "resnet_lab.grade")):
            for attr, value in list(vars(module).items()):
                if callable(value) and str(getattr(value, "__module__", "")).startswith("resnet_lab"):
                    _aliases.setdefault(id(value), f"resnet_lab's {attr}")
    for key in sorted({k for keys in REFERENCES.values() for k in keys}):
        obj = _resolve(key)
        if obj is None:
            continue
        _objects[key] = obj
        _note_codes(key, obj)
        if isinstance(obj, type):
            if "forward" in vars(obj):
                obj.forward = _wrap(key, vars(obj)["forward"])
            continue
        wrapper = _wrap(key, obj)
        _aliases[id(wrapper)] = f"resnet_lab's {obj.__name__}"
        for name, module in list(sys.modules.items()):
            if name.startswith("resnet_lab") and not name.startswith(("resnet_lab.checks", "resnet_lab.grade")):
                for attr, value in list(vars(module).items()):
                    if value is obj:
                        setattr(module, attr, wrapper)


def static_match(obj: Any, exercise: str) -> str | None:
    """Why ``obj`` is the package's reference rather than the student's answer, or None."""
    if id(obj) in _aliases:
        return f"the answer is {_aliases[id(obj)]} itself, not your own code"
    for key in REFERENCES.get(exercise, ()):
        ref = _objects.get(key)
        if isinstance(obj, type) and isinstance(ref, type) and issubclass(obj, ref):
            return f"the answer is a subclass of {owner(key)} {ref.__name__}, not your own code"
    try:
        return borrowed(obj, exercise)
    except Exception:  # noqa: BLE001 - an odd object (a class whose __mro__ raises...): the judge decides
        return None


class Watch:
    """``with Watch(exercise) as w: ...``; then ``w.used``: the exercise's references the student's code called."""

    def __init__(self, exercise: str) -> None:
        self.keys = set(REFERENCES.get(exercise, ()))
        self.used: list[str] = []

    def __enter__(self) -> Watch:
        _calls.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = sorted(f"{owner(k)} {k.split(':')[1]}" for k in _calls & self.keys)


def clear() -> None:
    """Forget the calls recorded so far (before an exercise's answer is served)."""
    _calls.clear()


def used(exercise: str) -> list[str]:
    """The exercise's references that the student's code called since :func:`clear`."""
    return sorted(f"{owner(k)} {k.split(':')[1]}" for k in _calls & set(REFERENCES.get(exercise, ())))
