"""The answer process's side of the evidence protocol: run the student's code on the judge's request.

The judge (:mod:`resnet_lab.grade.judge`, a process that never runs student code) runs the exercise's
checker itself; wherever the checker calls the student's code, it asks this side instead (see
:mod:`resnet_lab.grade.remote`). Requests arrive pickled (the judge's data: constructor arguments, the
weights to load, the inputs, the checker's own models and optimizers); replies go back as
``torch.save`` bytes of plain data only (tensors, numbers, strings, lists, dicts), which the judge reads
with ``torch.load(weights_only=True)``, never by unpickling objects. Replies carry evidence, never a
verdict: a module the student's code built is described (its classes by name, its parameters and buffers
with their values, its plain attributes) and stays here behind a handle; its forward runs here on the
judge's weights and inputs and returns the outputs, the leaf modules it ran (for pairing layers) and the
tensors it changed. Nothing here decides whether an answer passes.
"""

from __future__ import annotations

import io
import os
import pickle
import traceback
from typing import Any

import torch
from torch import nn

_PLAIN = (type(None), bool, int, float, str)
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as plain data (None, bool, int, float, str, tuples and lists of them), or a marker."""
    if type(value) in _PLAIN:
        return value
    for kind in (bool, int, float, str):  # a subclass (an IntEnum, a str subclass) as the plain type
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, (tuple, list)) and depth < 3 and len(value) <= 64:
        items = [plain(v, depth + 1) for v in value]
        if all(i is not _NOT_PLAIN for i in items):
            return tuple(items) if isinstance(value, tuple) else items
    return _NOT_PLAIN


_NOT_PLAIN = object()


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_attrs(cls: type) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith(("torch", "builtins")):
            continue
        for key, value in vars(klass).items():
            if not key.startswith("__") and (p := plain(value)) is not _NOT_PLAIN:
                attrs[key] = p
    return attrs


def student_line(exc: BaseException) -> str:
    """`` (at `code`)`` for the innermost frame of the student's own code (as the checkers' messages say)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = os.path.abspath(frame.filename)
        if path.startswith((_TORCH_DIR, _PACKAGE_DIR)):
            continue
        return f" (at `{frame.line.strip()}`)" if frame.line else ""
    return ""


def error_data(exc: BaseException) -> dict[str, Any]:
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a student's exception whose __str__ raises
        message = ""
    return {
        "type": type(exc).__name__,
        "message": message[:2000],
        "not_implemented": isinstance(exc, NotImplementedError),
        "assertion": isinstance(exc, AssertionError),
        "line": student_line(exc),
    }


def _signature(obj: Any) -> list[tuple[str, int, bool]] | None:
    import inspect

    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    return [(p.name, int(p.kind), p.default is not p.empty) for p in params]


class Server:
    """The student's objects behind handles, and the requests the judge may make about them."""

    def __init__(self) -> None:
        self.objects: dict[int, Any] = {}

    def add(self, obj: Any) -> int:
        handle = len(self.objects) + 1
        self.objects[handle] = obj
        return handle

    # ----------------------------------------------------------------------------------------------
    # Describing what the student's code returns
    # ----------------------------------------------------------------------------------------------

    def describe(self, module: nn.Module) -> dict[str, Any]:
        """A module as data: one node per submodule (pre-order), with classes by name and tensor values."""
        paths = {id(m): p for p, m in module.named_modules()}
        seen_params: dict[int, str] = {}
        nodes = []
        for path, m in module.named_modules():
            attrs = {}
            for key, value in vars(m).items():
                if not key.startswith("__") and (p := plain(value)) is not _NOT_PLAIN:
                    attrs[key] = p
            params = []
            for name, p in m._parameters.items():
                full = f"{path}.{name}" if path else name
                if p is None:
                    params.append((name, None, False))
                elif id(p) in seen_params:
                    params.append((name, {"alias": seen_params[id(p)]}, p.requires_grad))
                else:
                    seen_params[id(p)] = full
                    params.append((name, p.detach().as_subclass(torch.Tensor).clone(), p.requires_grad))
            buffers = [
                (
                    n,
                    None if b is None else b.detach().as_subclass(torch.Tensor).clone(),
                    n not in m._non_persistent_buffers_set,
                )
                for n, b in m._buffers.items()
            ]
            children = [(n, None if c is None else paths.get(id(c))) for n, c in m._modules.items()]
            nodes.append(
                {
                    "path": path,
                    "name": type(m).__name__,
                    "qualname": type(m).__qualname__,
                    "module": type(m).__module__,
                    "class_id": id(type(m)),
                    "mro": [_class_name(c) for c in type(m).__mro__],
                    "class_attrs": _class_attrs(type(m)),
                    "attrs": attrs,
                    "params": params,
                    "buffers": buffers,
                    "children": children,
                }
            )
        return {"nodes": nodes}

    def encode(self, value: Any, depth: int = 0, graphs: bool = False) -> Any:
        """The student's return value as plain data; modules and callables stay here behind a handle. With
        ``graphs`` (what a student's function returned), a tensor that carries an autograd graph says so."""
        if isinstance(value, torch.Tensor):
            data = value.detach().as_subclass(torch.Tensor).clone()
            return {"__tensor__": data, "graph": True} if graphs and value.requires_grad else data
        if isinstance(value, nn.Module):
            return {"__module__": self.add(value), **self.describe(value)}
        if isinstance(value, _PLAIN):
            return plain(value)
        if type(value).__module__ == "numpy":
            import numpy as np

            if isinstance(value, np.ndarray) and value.dtype != object:
                return torch.from_numpy(np.array(value))
            if isinstance(value, np.generic):
                return value.item()
        if depth < 6 and isinstance(value, (list, tuple)):
            items = [self.encode(v, depth + 1, graphs) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        if depth < 6 and isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
            return {"__dict__": [(plain(k), self.encode(v, depth + 1, graphs)) for k, v in value.items()]}
        if callable(value):
            return {
                "__callable__": self.add(value),
                "name": str(getattr(value, "__name__", type(value).__name__)),
                "signature": _signature(value),
                "class_attrs": _class_attrs(value) if isinstance(value, type) else {},
                "is_class": isinstance(value, type),
                "mro": [_class_name(c) for c in value.__mro__] if isinstance(value, type) else [],
            }
        try:
            text = repr(value)[:300]
        except Exception:  # noqa: BLE001
            text = ""
        return {"__opaque__": type(value).__name__, "repr": text}

    # ----------------------------------------------------------------------------------------------
    # Requests
    # ----------------------------------------------------------------------------------------------

    def loads(self, blob: bytes) -> Any:
        objects = self.objects

        class _Unpickler(pickle.Unpickler):
            def persistent_load(self, pid: Any) -> Any:
                kind, handle, path = pid
                obj = objects[handle]
                return obj.get_submodule(path) if kind == "module" and path else obj

        return _Unpickler(io.BytesIO(blob)).load()

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        fn = self.objects[request["handle"]]
        for handle, state in (request.get("sync") or {}).items():
            self.apply(handle, state)
        args, kwargs = request["args"], request["kwargs"]
        _set_grads(args, kwargs, request.get("grads") or {})
        objects = _tensor_objects(args, kwargs, request.get("local") or [])
        reply: dict[str, Any] = {}
        try:
            reply["result"] = self.encode(fn(*args, **kwargs), graphs=True)
        except BaseException as exc:  # noqa: BLE001 - the judge decides what a student's exception means
            if not isinstance(exc, Exception):
                raise
            reply["error"] = error_data(exc)
        reply["back"] = _arguments_after(args, kwargs, request.get("local") or [], objects)
        return reply

    def apply(
        self, handle: int, state: dict[str, torch.Tensor], attrs: dict[str, dict[str, Any]] | None = None
    ) -> None:
        """Load the judge's tensors (weights copied from its reference) and changed plain attributes."""
        root: nn.Module = self.objects[handle]
        tensors = {**dict(root.named_parameters(remove_duplicate=False)), **dict(root.named_buffers())}
        with torch.no_grad():
            for name, value in state.items():
                target = tensors.get(name)
                if target is not None and target.shape == value.shape:
                    target.copy_(value)
        for path, changed in (attrs or {}).items():
            m = root.get_submodule(path) if path else root
            for key, value in changed.items():
                setattr(m, key, value)

    def copy(self, request: dict[str, Any]) -> dict[str, Any]:
        import copy

        self.apply(request["handle"], request["state"], request.get("attrs"))
        root: nn.Module = self.objects[request["handle"]]
        module = root.get_submodule(request["path"]) if request["path"] else root
        try:
            return {"result": self.encode(copy.deepcopy(module))}
        except Exception as exc:  # noqa: BLE001
            return {"error": error_data(exc)}

    def forward(self, request: dict[str, Any]) -> dict[str, Any]:
        root: nn.Module = self.objects[request["handle"]]
        path = request["path"]
        module = root.get_submodule(path) if path else root
        self.apply(request["handle"], request["state"], request.get("attrs"))
        tensors = {**dict(root.named_parameters(remove_duplicate=False)), **dict(root.named_buffers())}
        modes = request["training"]
        for name, m in module.named_modules():
            if name in modes:
                m.training = bool(modes[name])
        versions = {name: (t, t._version) for name, t in tensors.items()}
        args, kwargs = request["args"], request["kwargs"]
        arg_versions = [(i, a._version) for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        trace: list[tuple[str, int | None, tuple[int, ...] | None, tuple[int, ...] | None]] = []
        keep: list[torch.Tensor] = []
        handles = []

        def pre(name: str, m: nn.Module, inputs: tuple[Any, ...]) -> None:
            t = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            if t is not None:
                keep.append(t)
            trace.append((name, None if t is None else t.data_ptr(), None if t is None else tuple(t.shape), None))

        def post(name: str, m: nn.Module, inputs: tuple[Any, ...], out: Any) -> None:
            if isinstance(out, torch.Tensor):
                keep.append(out)
                for k in range(len(trace) - 1, -1, -1):
                    if trace[k][0] == name:
                        trace[k] = (*trace[k][:3], tuple(out.shape))
                        break

        for name, m in module.named_modules():
            if next(m.children(), None) is None:
                handles.append(m.register_forward_pre_hook(lambda m, i, n=name: pre(n, m, i)))
                handles.append(m.register_forward_hook(lambda m, i, o, n=name: post(n, m, i, o)))
        reply: dict[str, Any] = {}
        try:
            with torch.set_grad_enabled(bool(request["grad"])):
                reply["result"] = self.encode(module(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001
            if not isinstance(exc, Exception):
                raise
            reply["error"] = error_data(exc)
        finally:
            for handle in handles:
                handle.remove()
        now = {**dict(root.named_parameters(remove_duplicate=False)), **dict(root.named_buffers())}
        reply["state"] = {
            name: t.detach().as_subclass(torch.Tensor).clone()
            for name, t in now.items()
            if name not in versions or versions[name][0] is not t or versions[name][1] != t._version
        }
        reply["trace"] = trace
        reply["args_after"] = [(i, args[i].detach().clone()) for i, v in arg_versions if args[i]._version != v]
        return reply


def _positions(args: Any, kwargs: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [*enumerate(args), *kwargs.items()]


def _set_grads(args: Any, kwargs: dict[str, Any], grads: dict[Any, dict[str, torch.Tensor]]) -> None:
    for key, value in _positions(args, kwargs):
        if isinstance(value, nn.Module) and key in grads:
            params = dict(value.named_parameters())
            for name, grad in grads[key].items():
                if name in params and params[name].shape == grad.shape:
                    params[name].grad = grad


def _tensor_objects(args: Any, kwargs: dict[str, Any], local: list[Any]) -> dict[Any, dict[str, torch.Tensor]]:
    """Every parameter and buffer object of the judge's own modules among the arguments, before the call (held,
    so that no new tensor can take over a freed one's id)."""
    return {
        key: dict([*value.named_parameters(), *value.named_buffers()])
        for key, value in _positions(args, kwargs)
        if key in local and isinstance(value, nn.Module)
    }


def _arguments_after(
    args: Any, kwargs: dict[str, Any], local: list[Any], objects: dict[Any, dict[str, torch.Tensor]]
) -> list[tuple[Any, Any]]:
    """The state of the judge's own arguments after the call, so the judge sees what the student's code did
    to them: a model's parameters, gradients, buffers, modes and hooks, which parameters carry an autograd
    graph or require gradients, which tensors were replaced by new objects (``objects``: those before);
    an optimizer's state; a tensor."""
    back = []
    for key, value in _positions(args, kwargs):
        if key not in local:
            continue
        if isinstance(value, nn.Module):
            modules = dict(value.named_modules())
            params, buffers = dict(value.named_parameters()), dict(value.named_buffers())
            before = objects.get(key, {})
            back.append(
                (
                    key,
                    {
                        "params": {n: p.detach().as_subclass(torch.Tensor).clone() for n, p in params.items()},
                        "grads": {
                            n: p.grad.detach().as_subclass(torch.Tensor).clone()
                            for n, p in params.items()
                            if p.grad is not None
                        },
                        "buffers": {n: b.detach().as_subclass(torch.Tensor).clone() for n, b in buffers.items()},
                        "training": {n: bool(m.training) for n, m in modules.items()},
                        "hooks": {n: {a: len(getattr(m, a, {}) or {}) for a in _HOOKS} for n, m in modules.items()},
                        "structure": sorted(n for n in modules),
                        "requires_grad": {n: bool(p.requires_grad) for n, p in params.items()},
                        "graph": sorted(n for n, p in params.items() if p.grad_fn is not None),
                        "replaced": sorted(
                            n for n, t in {**params, **buffers}.items() if n in before and t is not before[n]
                        ),
                    },
                )
            )
        elif isinstance(value, torch.optim.Optimizer):
            back.append((key, {"optimizer": value.state_dict()}))
        elif isinstance(value, torch.Tensor):
            back.append((key, {"tensor": value.detach().as_subclass(torch.Tensor).clone()}))
    return back
