"""The judge's side of the evidence protocol: the student's answer, seen from a process that never runs it.

The judge runs the exercise's checker (the same function a student's check cell calls) in its own
process. The answer it hands the checker is a stand-in: calling it asks the answer process
(:mod:`resnet_lab.grade.serve`) to run the student's code, and what comes back is read as plain data
(``torch.load(weights_only=True)``: tensors, numbers, strings, lists, dicts), never unpickled as objects.

* A class or function of the student's is a :class:`RemoteCallable` (its name, signature and plain class
  attributes are known here; calling it is a request).
* A module the student's code built comes back as a *mirror*: the same tree of submodules with the same
  parameters and buffers (values included) and plain attributes. Submodules of ``torch.nn``'s own classes
  are rebuilt as those classes here (a Conv2d is a Conv2d, with the student's settings); every module of
  the student's own classes is a :class:`RemoteModule` whose forward is a request: the mirror's current
  weights (those the checker copied in from its reference) and the inputs go over, the outputs, the leaf
  modules that ran (replayed to the checker's tracing hooks, for pairing layers) and the tensors the
  forward changed come back.
* The checker's own objects passed to the student's code (a model, an optimizer, images) go over as
  copies; what the student's code did to them (weights, gradients, buffers, modes, hooks, optimizer
  state, and which tensors it replaced by new objects, left with an autograd graph or switched off
  requires_grad) is copied back, so the checker sees the effect it would have seen in one process. A
  tensor a student's function returns with an autograd graph comes back with one.

Every comparison with the reference therefore runs here, with this process's torch and checkers: a
patch the student's code makes in the answer process cannot reach it. What still crosses over is the
*data* the student's code produces, which is exactly what is being graded.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import io
import pickle
import sys
import types
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


class AnswerGone(BaseException):  # noqa: N818 - not a failure of the answer: the process is gone
    """The answer process stopped answering (it died, or the grader stopped it)."""


class Tampered(BaseException):  # noqa: N818 - checkers must not catch it
    """The answer process reports that the student's code changed the grader's tools there."""


class EvidenceError(Exception):
    """What the answer process sent is not the plain data the protocol allows."""


def _noop(*args: Any, **kwargs: Any) -> None:
    """Stands in for the checker's own hooks in the copies sent to the answer process."""


def _noop_factory() -> Any:
    return _noop


class _Pickler(pickle.Pickler):
    """Pickles a request: mirrors go as handles; the checker's lambdas and bound hooks as no-ops."""

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, RemoteModule):
            return ("module", obj.__dict__["_remote_handle"], obj.__dict__["_remote_path"])
        if isinstance(obj, RemoteCallable):
            return ("callable", obj._handle, "")
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (functools.partial, types.MethodType)) or (
            isinstance(obj, types.FunctionType) and "<" in obj.__qualname__
        ):
            return (_noop_factory, ())
        return NotImplemented


class Opaque:
    """A value the answer returned that is not plain data (its type's name and repr only)."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


class RemoteCallable:
    """The student's class or function, called in the answer process."""

    def __init__(self, link: Link, data: dict[str, Any]) -> None:
        self._link = link
        self._handle = int(data["__callable__"])
        link.classes_seen.update(str(c) for c in data.get("mro") or [])
        self.__name__ = self.__qualname__ = str(data.get("name") or "answer")
        signature = data.get("signature")
        if isinstance(signature, list):
            try:
                self.__signature__ = inspect.Signature(
                    [
                        inspect.Parameter(
                            str(n), inspect._ParameterKind(int(k)), default=None if d else inspect.Parameter.empty
                        )
                        for n, k, d in signature
                    ]
                )
            except (TypeError, ValueError):
                pass
        for key, value in dict(data.get("class_attrs") or {}).items():
            if isinstance(key, str) and not key.startswith("_") and key not in vars(self):
                setattr(self, key, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._link.call(self._handle, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self.__name__}: the student's, run in the answer process>"


class RemoteModule(nn.Module):
    """A module of one of the student's own classes: its forward runs in the answer process."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.__dict__["_remote_link"].forward(self, args, kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> nn.Module:
        """A copy made by the student's code's own process: a new handle there, a new mirror here."""
        return self.__dict__["_remote_link"].copy(self)


def _builtin_exception(name: str) -> type[Exception] | None:
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, AssertionError):
        return cls
    return None


def raise_remote(error: Any) -> None:
    """Raise, here, the exception the student's code raised there (same type name, message, code line)."""
    if not isinstance(error, dict):
        raise EvidenceError("the answer process reported an error it did not describe")
    name, message = str(error.get("type", "Exception"))[:100], str(error.get("message", ""))
    if error.get("not_implemented"):
        exc: Exception = NotImplementedError(message)
    elif error.get("assertion"):
        exc = AssertionError(message)
    else:
        cls = _builtin_exception(name)
        try:
            exc = cls(message) if cls is not None else type(name or "Exception", (Exception,), {})(message)
        except Exception:  # noqa: BLE001 - a builtin exception that wants other arguments
            exc = type(name or "Exception", (Exception,), {})(message)
    exc._resnet_lab_student_line = str(error.get("line", ""))  # type: ignore[attr-defined]
    raise exc


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(module.named_parameters(remove_duplicate=False)), **dict(module.named_buffers())}


class Link:
    """The judge's end of the pipe to one answer process, and the mirrors of the student's modules."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.roots: dict[int, nn.Module] = {}
        self.sent: dict[int, dict[str, tuple[torch.Tensor, int]]] = {}
        self.classes: dict[Any, type] = {}
        self.attrs: dict[int, dict[str, dict[str, Any]]] = {}
        self.classes_seen: set[str] = set()  # every class (and base) of the student's objects, by name

    # ----------------------------------------------------------------------------------------------
    # Messages
    # ----------------------------------------------------------------------------------------------

    def receive(self) -> dict[str, Any]:
        try:
            raw = self.conn.recv_bytes()
        except (EOFError, OSError) as exc:
            raise AnswerGone(str(exc)) from None
        try:
            reply = torch.load(io.BytesIO(raw), weights_only=True)
        except Exception as exc:  # noqa: BLE001 - anything but plain data is refused
            raise EvidenceError(f"the answer process sent something that is not plain data ({exc})") from None
        if not isinstance(reply, dict):
            raise EvidenceError("the answer process sent something that is not a reply")
        if reply.get("tampered"):
            raise Tampered("; ".join(str(t) for t in reply["tampered"]))
        rng = reply.get("rng")
        if isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.shape == torch.get_rng_state().shape:
            torch.set_rng_state(rng)
        return reply

    def send(self, request: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({**request, "rng": torch.get_rng_state()})
        try:
            self.conn.send_bytes(buffer.getvalue())
        except (OSError, ValueError) as exc:
            raise AnswerGone(str(exc)) from None

    def exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send(request)
        return self.receive()

    # ----------------------------------------------------------------------------------------------
    # Calls and forwards
    # ----------------------------------------------------------------------------------------------

    def call(self, handle: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        positions = [*enumerate(args), *kwargs.items()]
        local = [
            k
            for k, v in positions
            if isinstance(v, (nn.Module, torch.optim.Optimizer, torch.Tensor)) and not isinstance(v, RemoteModule)
        ]
        grads = {
            k: {n: p.grad for n, p in v.named_parameters() if p.grad is not None}
            for k, v in positions
            if isinstance(v, nn.Module) and not isinstance(v, RemoteModule)
        }
        sync = {
            h: self._pending(h)
            for h in {v.__dict__["_remote_handle"] for _, v in positions if isinstance(v, RemoteModule)}
        }
        reply = self.exchange(
            {
                "op": "call",
                "handle": handle,
                "args": args,
                "kwargs": kwargs,
                "grads": grads,
                "local": local,
                "sync": sync,
            }
        )
        self._restore(args, kwargs, reply.get("back") or [])
        if "error" in reply:
            raise_remote(reply["error"])
        return self.decode(reply.get("result"))

    def forward(self, node: RemoteModule, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        handle, path = node.__dict__["_remote_handle"], node.__dict__["_remote_path"]
        request = {
            "op": "forward",
            "handle": handle,
            "path": path,
            "state": self._pending(handle),
            "attrs": self._changed_attrs(handle),
            "training": {n: m.training for n, m in node.named_modules()},
            "grad": torch.is_grad_enabled(),
            "args": args,
            "kwargs": kwargs,
        }
        reply = self.exchange(request)
        self._apply_state(handle, reply.get("state") or {})
        for i, value in reply.get("args_after") or []:
            if isinstance(i, int) and i < len(args) and isinstance(args[i], torch.Tensor):
                if isinstance(value, torch.Tensor) and value.shape == args[i].shape:
                    with torch.no_grad():
                        args[i].copy_(value)
        self._replay(node, reply.get("trace") or [])
        if "error" in reply:
            raise_remote(reply["error"])
        return self.decode(reply.get("result"))

    def copy(self, node: RemoteModule) -> nn.Module:
        handle, path = node.__dict__["_remote_handle"], node.__dict__["_remote_path"]
        reply = self.exchange(
            {
                "op": "copy",
                "handle": handle,
                "path": path,
                "state": self._pending(handle),
                "attrs": self._changed_attrs(handle),
            }
        )
        if "error" in reply:
            raise_remote(reply["error"])
        return self.decode(reply.get("result"))

    def _changed_attrs(self, handle: int) -> dict[str, dict[str, Any]]:
        """Plain attributes the checker changed on the mirror (a conv's padding set to 0, say), by module path."""
        last, changed = self.attrs[handle], {}
        for path, m in self.roots[handle].named_modules():
            now = _plain_attrs(m)
            diff = {k: v for k, v in now.items() if last.get(path, {}).get(k, _MISSING) != v}
            if diff:
                changed[path] = diff
                last.setdefault(path, {}).update(diff)
        return changed

    def _pending(self, handle: int) -> dict[str, torch.Tensor]:
        """The mirror's tensors changed here since they were last sent (the checker copies weights in)."""
        sent, state = self.sent[handle], {}
        for name, t in _tensors(self.roots[handle]).items():
            seen = sent.get(name)
            if seen is None or seen[0] is not t or seen[1] != t._version:
                state[name] = t.detach().clone()
                sent[name] = (t, t._version)
        return state

    def _apply_state(self, handle: int, state: dict[str, Any]) -> None:
        tensors, sent = _tensors(self.roots[handle]), self.sent[handle]
        for name, value in state.items():
            t = tensors.get(name)
            if t is not None and isinstance(value, torch.Tensor) and value.shape == t.shape:
                with torch.no_grad():
                    t.copy_(value)
                sent[name] = (t, t._version)

    @staticmethod
    def _replay(node: nn.Module, trace: list[Any]) -> None:
        """Call the checker's hooks on the mirror's leaf modules in the order the student's forward ran them."""
        fakes: dict[Any, torch.Tensor] = {}
        for entry in trace:
            try:
                name, ptr, in_shape, out_shape = entry
                if not name:
                    continue  # the node itself: nn.Module.__call__ already ran its hooks
                leaf = node.get_submodule(str(name))
                shapes = [tuple(int(s) for s in shape) for shape in (in_shape, out_shape) if shape is not None]
                if any(torch.Size(shape).numel() > _MAX_FAKE for shape in shapes):
                    continue  # only shapes matter here: no need to allocate what a forged trace asks for
                if ptr is not None and ptr not in fakes:
                    fakes[ptr] = torch.zeros(tuple(int(s) for s in in_shape))
                inputs = (fakes[ptr],) if ptr is not None else ()
                out = torch.zeros(tuple(int(s) for s in out_shape)) if out_shape is not None else None
            except (AttributeError, TypeError, ValueError, RuntimeError):
                continue
            for hook in list(leaf._forward_pre_hooks.values()):
                hook(leaf, inputs)
            for hook in list(leaf._forward_hooks.values()):
                hook(leaf, inputs, out)

    def _restore(self, args: tuple[Any, ...], kwargs: dict[str, Any], back: list[Any]) -> None:
        """Copy what the student's code did to the checker's objects back onto them."""
        for key, data in back:
            value = args[key] if isinstance(key, int) and key < len(args) else kwargs.get(key)
            if not isinstance(data, dict) or value is None:
                continue
            if isinstance(value, nn.Module):
                _restore_module(value, data)
            elif isinstance(value, torch.optim.Optimizer) and isinstance(data.get("optimizer"), dict):
                try:
                    value.load_state_dict(data["optimizer"])
                except (KeyError, ValueError, TypeError, RuntimeError) as exc:
                    raise EvidenceError(f"the optimizer's state could not be read back ({exc})") from None
            elif isinstance(value, torch.Tensor) and isinstance(data.get("tensor"), torch.Tensor):
                if data["tensor"].shape == value.shape:
                    with torch.no_grad():
                        value.copy_(data["tensor"])

    # ----------------------------------------------------------------------------------------------
    # Reading replies
    # ----------------------------------------------------------------------------------------------

    def decode(self, value: Any, depth: int = 0) -> Any:
        if depth > 8:
            raise EvidenceError("the answer returned data nested too deep")
        if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
            return value
        if isinstance(value, list):
            return [self.decode(v, depth + 1) for v in value]
        if isinstance(value, tuple):
            return tuple(self.decode(v, depth + 1) for v in value)
        if isinstance(value, dict):
            if "__module__" in value:
                return self.mirror(int(value["__module__"]), value.get("nodes") or [])
            if "__callable__" in value:
                return RemoteCallable(self, value)
            if "__dict__" in value:
                return {k: self.decode(v, depth + 1) for k, v in value["__dict__"]}
            if "__tensor__" in value:  # a tensor that carried an autograd graph: give it one here too
                tensor = value["__tensor__"]
                if not isinstance(tensor, torch.Tensor):
                    raise EvidenceError("the answer returned a tensor of an unknown form")
                return _with_graph(tensor) if value.get("graph") is True else tensor
            if "__opaque__" in value:
                cls = type(str(value["__opaque__"])[:100] or "object", (Opaque,), {})
                return cls(str(value.get("repr", "")))
        raise EvidenceError(f"the answer returned data of an unknown form ({type(value).__name__})")

    def mirror(self, handle: int, nodes: list[Any]) -> nn.Module:
        """Rebuild a module the student's code built, from its description (see the module docstring)."""
        try:
            made: dict[str, nn.Module] = {}
            params: dict[str, nn.Parameter] = {}
            for node in nodes:
                path = str(node["path"])
                cls = self._mirror_class(node)
                m = cls.__new__(cls)
                nn.Module.__init__(m)
                for key, value in dict(node["attrs"]).items():
                    if key == "training":
                        m.training = bool(value)
                    elif isinstance(key, str) and key not in m.__dict__:
                        m.__dict__[key] = value
                if isinstance(m, RemoteModule):
                    m.__dict__.update(_remote_link=self, _remote_handle=handle, _remote_path=path)
                for name, value, requires_grad in node["params"]:
                    full = f"{path}.{name}" if path else str(name)
                    if isinstance(value, dict):
                        m._parameters[str(name)] = params[str(value["alias"])]
                    elif value is None:
                        m._parameters[str(name)] = None
                    elif isinstance(value, torch.Tensor):
                        params[full] = m._parameters[str(name)] = nn.Parameter(value, requires_grad=bool(requires_grad))
                    else:
                        raise TypeError("a parameter that is not a tensor")
                for name, value, persistent in node["buffers"]:
                    if value is not None and not isinstance(value, torch.Tensor):
                        raise TypeError("a buffer that is not a tensor")
                    m._buffers[str(name)] = value
                    if not persistent:
                        m._non_persistent_buffers_set.add(str(name))
                made[path] = m
            for node in nodes:
                for name, child in node["children"]:
                    made[str(node["path"])]._modules[str(name)] = None if child is None else made[str(child)]
            root = made[""]
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise EvidenceError(f"the answer process described a module that cannot be rebuilt ({exc})") from None
        self.roots[handle] = root
        self.sent[handle] = {name: (t, t._version) for name, t in _tensors(root).items()}
        self.attrs[handle] = {path: _plain_attrs(m) for path, m in root.named_modules()}
        return root

    def _mirror_class(self, node: dict[str, Any]) -> type:
        self.classes_seen.update(str(c) for c in node.get("mro") or [])
        key = (node["class_id"], str(node["module"]), str(node["qualname"]))
        if key in self.classes:
            return self.classes[key]
        module, qualname = key[1], key[2]
        cls = _resolve(module, qualname) if module.startswith("torch.nn.") else None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            bases: list[type] = [RemoteModule]
            for entry in node.get("mro") or []:
                entry = str(entry)
                if entry.startswith("resnet_lab."):
                    found = _resolve_dotted(entry)
                    if isinstance(found, type) and issubclass(found, nn.Module):
                        bases.append(found)
                        break
            attrs = {
                k: v
                for k, v in dict(node.get("class_attrs") or {}).items()
                if isinstance(k, str) and not k.startswith("_") and not hasattr(nn.Module, k)
            }
            cls = type(
                str(node["name"])[:100] or "Module",
                tuple(bases),
                {**attrs, "__module__": module, "__qualname__": qualname},
            )
        self.classes[key] = cls
        return cls


_MISSING = object()
_MAX_FAKE = 50_000_000  # elements of a stand-in tensor replayed to the checker's tracing hooks
_PLAIN = (type(None), bool, int, float, str)


def _plain_value(value: Any, depth: int = 0) -> bool:
    if type(value) in _PLAIN:
        return True
    return type(value) in (tuple, list) and depth < 3 and all(_plain_value(v, depth + 1) for v in value)


def _plain_attrs(m: nn.Module) -> dict[str, Any]:
    return {
        k: v for k, v in vars(m).items() if not k.startswith(("__", "_remote_")) and k != "training" and _plain_value(v)
    }


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None) if obj is not None else None
    return obj


def _resolve_dotted(name: str) -> Any:
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:i]) in sys.modules:
            return _resolve(".".join(parts[:i]), ".".join(parts[i:]))
    return None


def _with_graph(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``'s values with an autograd graph (requires_grad, a grad_fn), as the student's code returned it."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return tensor
    with torch.enable_grad():
        return tensor.clone().requires_grad_(True).mul(1)


def _record_a_graph(tensor: torch.Tensor) -> None:
    """Give ``tensor`` (same object, same values) a grad_fn, as an in-place update recorded by autograd does."""
    if tensor.is_floating_point() and tensor.grad_fn is None:  # (a module and its submodule both handed over)
        with torch.enable_grad():
            tensor.requires_grad_(False)
            tensor.add_(torch.zeros((), dtype=tensor.dtype, requires_grad=True))


def _replay_tensor_objects(module: nn.Module, data: dict[str, Any]) -> None:
    """What the student's code did to the model's tensor *objects*, not only their values: replaced ones become
    new objects here too, parameters that carry a graph get one, requires_grad as it was left."""
    params, buffers = dict(module.named_parameters()), dict(module.named_buffers())
    replaced, graph, wanted = data.get("replaced"), data.get("graph"), data.get("requires_grad")
    if not (isinstance(replaced, list) and isinstance(graph, list) and isinstance(wanted, dict)):
        return  # an answer process of an older grader, or one that sent nothing usable: values only
    for name in [str(n) for n in replaced if str(n) in params or str(n) in buffers]:
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if name in params and leaf in owner._parameters:
            old = params[name]
            new = nn.Parameter(old.detach().clone(), old.requires_grad)
            new.grad = old.grad
            params[name] = owner._parameters[leaf] = new
        elif name in buffers and leaf in owner._buffers:
            owner._buffers[leaf] = buffers[name].clone()
    graph_names = {str(n) for n in graph}
    for name, p in params.items():
        if name in graph_names:
            _record_a_graph(p)
        elif isinstance(wanted.get(name), bool) and p.requires_grad != wanted[name] and p.grad_fn is None:
            p.requires_grad_(wanted[name])


def _restore_module(module: nn.Module, data: dict[str, Any]) -> None:
    modules = dict(module.named_modules())
    if sorted(modules) != sorted(str(n) for n in data.get("structure") or []):
        raise RuntimeError("the function changed the structure of the model it was given (its submodules differ)")
    params = dict(module.named_parameters())
    grads = dict(data.get("grads") or {})
    with torch.no_grad():
        for name, value in dict(data.get("params") or {}).items():
            if name in params and isinstance(value, torch.Tensor) and value.shape == params[name].shape:
                params[name].copy_(value)
        for name, p in params.items():
            g = grads.get(name)
            p.grad = g.clone() if isinstance(g, torch.Tensor) and g.shape == p.shape else None
        buffers = dict(module.named_buffers())
        for name, value in dict(data.get("buffers") or {}).items():
            if name in buffers and isinstance(value, torch.Tensor) and value.shape == buffers[name].shape:
                buffers[name].copy_(value)
    _replay_tensor_objects(module, data)
    for name, mode in dict(data.get("training") or {}).items():
        if name in modules:
            modules[name].training = bool(mode)
    for name, counts in dict(data.get("hooks") or {}).items():
        if name not in modules:
            continue
        for attr, count in dict(counts).items():
            table = getattr(modules[name], str(attr), None)
            while isinstance(table, dict) and len(table) < int(count):
                table[RemovableHandle(table).id] = _noop  # a hook the student's code left behind
