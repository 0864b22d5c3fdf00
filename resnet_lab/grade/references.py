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

# exercise (checker name) -> the package objects whose use as the answer is not the student's own work
REFERENCES: dict[str, tuple[str, ...]] = {
    "conv_output_size": ("resnet_lab.shapes:conv_output_size",),
    "residual_unit": ("resnet_lab.blocks:BasicBlock",),
    "basic_block": ("resnet_lab.blocks:BasicBlock",),
    "bottleneck": ("resnet_lab.blocks:Bottleneck",),
    "plain_switch": ("resnet_lab.blocks:BasicBlock",),
    "stage": ("resnet_lab.stages:make_stage", "resnet_lab.stages:make_stages"),
    "zero_pad_shortcut": ("resnet_lab.blocks:ZeroPadShortcut",),
    "cifar_net": ("resnet_lab.models:cifar_resnet",),
    "imagenet_resnet": ("resnet_lab.models:resnet", "resnet_lab.models:ResNet"),
    "preact_block": ("resnet_lab.blocks:BasicBlock",),
    "se_block": ("resnet_lab.blocks:BasicBlock",),
    "squeeze_excitation": ("resnet_lab.blocks:SqueezeExcitation",),
    "grouped_bottleneck": ("resnet_lab.blocks:Bottleneck",),
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
            return f"the answer is a subclass of resnet_lab's {ref.__name__}, not your own code"
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
        self.used = sorted(k.split(":")[1] for k in _calls & self.keys)


def clear() -> None:
    """Forget the calls recorded so far (before an exercise's answer is served)."""
    _calls.clear()


def used(exercise: str) -> list[str]:
    """The exercise's references that the student's code called since :func:`clear`."""
    return sorted(k.split(":")[1] for k in _calls & set(REFERENCES.get(exercise, ())))
