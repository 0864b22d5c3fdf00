"""Friendly checkers for the course's exercises.

Each checker builds the student's module and the matching reference from ``resnet_lab``,
copies the reference's weights across, puts both in eval mode and compares output shapes,
parameter counts (layer by layer) and outputs on random input, including strided and
projecting configurations. On success it prints one short, deterministic line starting with
``✓``; on failure it raises ``AssertionError`` with a message that says what differs and,
where it can tell, which of the mistakes seen in popular ResNet tutorials caused it.

    from resnet_lab import checks
    checks.basic_block(MyBasicBlock)

Checkers never change the caller's random state, and they turn any exception raised by the
student's code (a shape error at the add, ``NotImplementedError`` from an unfinished
exercise) into an ``AssertionError`` with a hint.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import numbers
import os
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .blocks import BasicBlock, Bottleneck, ZeroPadShortcut
from .costs import count_parameters
from .models import IMAGENET_CONFIGS, cifar_resnet, resnet
from .shapes import conv_output_size as _reference_conv_output_size
from .stages import make_stage

__all__ = [
    "conv_output_size",
    "residual_unit",
    "basic_block",
    "bottleneck",
    "stage",
    "cifar_net",
    "plain_switch",
    "imagenet_resnet",
    "small_input_net",
]

ATOL = 1e-5
RTOL = 1e-4
SEED = 0
ACCEPT_SIZES = (160, 100)  # besides 224x224: a fixed AvgPool2d(7) head fails on both

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_ADD_RE = re.compile(
    r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (\d+)"
)
_CONV_CHANNELS_RE = re.compile(r"expected input\[([\d, ]+)\] to have (\d+) channels, but got (\d+) channels")

HINT_RELU_BEFORE_ADD = (
    "the output is never negative where the reference's residual branch is negative: your block's output "
    "never dips below ReLU(shortcut), so what the residual branch adds is never negative. "
    "Is ReLU applied before the shortcut is added? The order is BN -> add the shortcut -> ReLU."
)
HINT_NOT_DONE = "this exercise is not done yet: fill in the cell above"


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------


def _fail(where: str, problem: str, hints: Sequence[str] | str | None = None) -> AssertionError:
    """An AssertionError whose first line says where and what, followed by one line per hint."""
    if isinstance(hints, str):
        hints = [hints]
    lines = [f"{where}: {problem}"]
    seen: set[str] = set()
    for hint in hints or ():
        if hint and hint not in seen:
            seen.add(hint)
            lines.append(f"Hint: {hint}")
    return _short_in_notebooks(AssertionError("\n".join(lines)))


def _short_in_notebooks(error: AssertionError) -> AssertionError:
    """Let Jupyter show only the message, not a wall of traceback through this module: IPython prints
    what an exception's ``_render_traceback_()`` returns instead of the traceback. Elsewhere (pytest,
    plain Python) nothing changes."""
    error._render_traceback_ = lambda: [f"AssertionError: {error}"]  # type: ignore[attr-defined]
    return error


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 300 else line[:297] + "..."


def _student_line(exc: BaseException) -> str:
    """`` (at `code`)`` for the innermost frame of the student's own code, if there is one."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = os.path.abspath(frame.filename)
        if path.startswith(_TORCH_DIR) or path.startswith(_PACKAGE_DIR):
            continue
        return f" (at `{frame.line.strip()}`)" if frame.line else ""
    return ""


def _describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_first_line(exc)}{_student_line(exc)}"


def _not_done(checker: str, exc: BaseException) -> AssertionError:
    detail = _first_line(exc)
    return _short_in_notebooks(AssertionError(
        f"{checker}: {HINT_NOT_DONE} (your code raised NotImplementedError{': ' + detail if detail else ''})"
    ))


def _fmt_shape(shape: Sequence[int] | None) -> str:
    return "None" if shape is None else "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _pair_text(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return str(value[0])
    return str(value)


def _describe_module(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = "x".join(str(s) for s in module.kernel_size)
        text = (
            f"Conv2d {module.in_channels}->{module.out_channels}, {k}, "
            f"stride {_pair_text(module.stride)}, padding {_pair_text(module.padding)}"
        )
        return text + (", with bias" if module.bias is not None else "")
    if isinstance(module, _BatchNorm):
        return f"{type(module).__name__}({module.num_features})"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}->{module.out_features}" + ("" if module.bias is not None else ", no bias")
    shapes = ", ".join(f"{n} {_fmt_shape(p.shape)}" for n, p in module.named_parameters(recurse=False))
    return f"{type(module).__name__}({shapes})"


# --------------------------------------------------------------------------------------
# Calling student code safely
# --------------------------------------------------------------------------------------


def _call(checker: str, where: str, what: str, fn: Callable[..., Any], *args: Any,
          hints: Callable[[BaseException], list[str]] | None = None, **kwargs: Any) -> Any:
    """Call student code; NotImplementedError and every other exception become AssertionErrors."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise _not_done(checker, exc) from None
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything the student's code raises is reported
        extra = hints(exc) if hints else []
        if isinstance(exc, TypeError) and "argument" in str(exc):
            extra = [*extra, f"the checker calls {what}: does your code take these arguments?"]
        raise _fail(where, f"{what} raised {_describe_exception(exc)}", extra) from None


def _build(checker: str, where: str, call_text: str, factory: Callable[..., Any], *args: Any,
           **kwargs: Any) -> nn.Module:
    module = _call(checker, where, call_text, factory, *args, **kwargs)
    if isinstance(module, tuple) and module and isinstance(module[0], nn.Module):
        module = module[0]
    if not isinstance(module, nn.Module):
        raise _fail(where, f"{call_text} returned {type(module).__name__}, expected an nn.Module",
                    "return the module you built (for a function: `return nn.Sequential(...)`)")
    return module


# --------------------------------------------------------------------------------------
# Tracing: which leaf modules run, in what order, on what inputs
# --------------------------------------------------------------------------------------


@dataclass
class _Call:
    name: str
    module: nn.Module
    in_shape: tuple[int, ...] | None
    in_ptr: int | None
    out_shape: tuple[int, ...] | None = None


@dataclass
class _Tracer:
    """Forward pre/post hooks on every leaf module; keeps the tensors alive so pointers stay unique."""

    model: nn.Module
    calls: list[_Call] = field(default_factory=list)
    _keep: list[torch.Tensor] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list)

    def __enter__(self) -> _Tracer:
        for name, module in self.model.named_modules():
            if next(module.children(), None) is None:
                self._handles.append(module.register_forward_pre_hook(partial(self._pre, name)))
                self._handles.append(module.register_forward_hook(partial(self._post, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pre(self, name: str, module: nn.Module, args: tuple[Any, ...]) -> None:
        t = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if t is not None:
            self._keep.append(t)
        self.calls.append(_Call(name, module, tuple(t.shape) if t is not None else None,
                                t.data_ptr() if t is not None else None))

    def _post(self, name: str, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if isinstance(out, torch.Tensor):
            self._keep.append(out)
            for call in reversed(self.calls):
                if call.module is module:
                    call.out_shape = tuple(out.shape)
                    break

    def first_call(self, module: nn.Module) -> _Call | None:
        return next((c for c in self.calls if c.module is module), None)

    def last_conv_map(self) -> tuple[int, ...] | None:
        for call in reversed(self.calls):
            if isinstance(call.module, nn.Conv2d) and call.out_shape is not None:
                return call.out_shape
        return None


def _forward(checker: str, where: str, module: nn.Module, x: torch.Tensor,
             hints: Callable[[BaseException, _Tracer], list[str]] | None = None) -> tuple[torch.Tensor, _Tracer]:
    """Run ``module`` on a copy of ``x`` in eval mode; report exceptions and in-place changes of the input."""
    module.eval()
    x_in = x.clone()
    tracer = _Tracer(module)
    try:
        with torch.no_grad(), tracer:
            out = module(x_in)
    except NotImplementedError as exc:
        raise _not_done(checker, exc) from None
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001
        extra = hints(exc, tracer) if hints else []
        raise _fail(where, f"your forward raised {_describe_exception(exc)}", extra or _generic_error_hints(exc)) from None
    if not torch.equal(x_in, x):
        changed = "lost its negative values" if bool((x < 0).any()) and not bool((x_in < 0).any()) else "was changed"
        raise _fail(
            where,
            f"your forward modified its input tensor in place: after the call, the input {changed}",
            "an in-place operation overwrote a tensor that the shortcut still needs: nn.ReLU(inplace=True) "
            "(or `x += ...`, `x.relu_()`) applied to the block's input x changes the very tensor that is added "
            "back at the end. Apply in-place ReLU only to fresh tensors (a BN output, the sum after the add), "
            "or use inplace=False.",
        )
    if not isinstance(out, torch.Tensor):
        raise _fail(where, f"your forward returned {type(out).__name__}, expected a tensor",
                    "end forward with `return out`")
    return out, tracer


def _generic_error_hints(exc: BaseException) -> list[str]:
    text = str(exc)
    m = _ADD_RE.search(text)
    if m:
        a, b, dim = m.groups()
        what = "channels" if dim == "1" else "height/width"
        return [f"two tensors that are added (or combined) disagree in {what}: {a} vs {b}. "
                "At a residual add the branch and the shortcut must have exactly the same shape."]
    if "mat1 and mat2" in text:
        return ["the classifier got a different number of features than it expects: "
                "is the pooling before the fc layer global (nn.AdaptiveAvgPool2d(1))?"]
    m = _CONV_CHANNELS_RE.search(text)
    if m:
        return [f"a convolution built for {m.group(2)} input channels received {m.group(3)}: "
                "check the in_channels of each conv against the tensor it is applied to"]
    return []


# --------------------------------------------------------------------------------------
# Parameters: layer-by-layer comparison and copying weights across
# --------------------------------------------------------------------------------------


def _has_state(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None or next(module.buffers(recurse=False), None) is not None


def _signature(module: nn.Module) -> tuple[Any, ...]:
    params = tuple((n, tuple(p.shape)) for n, p in module.named_parameters(recurse=False))
    buffers = tuple((n, tuple(b.shape)) for n, b in module.named_buffers(recurse=False))
    return params + buffers


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters or buffers directly, in registration order."""
    return [(name or "(the module itself)", m) for name, m in model.named_modules() if _has_state(m)]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _greedy_match(ref: list[tuple[str, nn.Module]], stu: list[tuple[str, nn.Module]],
                  key: Callable[[nn.Module], Any] = _signature) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pair each reference unit with the first unused student unit of the same signature."""
    used: set[int] = set()
    pairs, missing = [], []
    for i, (_, rm) in enumerate(ref):
        sig = key(rm)
        j = next((j for j, (_, sm) in enumerate(stu) if j not in used and key(sm) == sig), None)
        if j is None:
            missing.append(i)
        else:
            used.add(j)
            pairs.append((i, j))
    extra = [j for j in range(len(stu)) if j not in used]
    return pairs, missing, extra


def _parameter_problem(student: nn.Module, reference: nn.Module, limit: int = 4) -> str | None:
    """None when both have the same layers (up to order); else which layers differ, expected vs got."""
    ref_units, stu_units = _units(reference), _units(student)
    _, missing, extra = _greedy_match(ref_units, stu_units)
    total_r, total_s = count_parameters(reference), count_parameters(student)
    if not missing and not extra and total_r == total_s:
        return None
    lines = [f"parameter count: expected {total_r:,}, got {total_s:,}"]
    details = []
    # Align the two layer lists in registration order to say which layers differ.
    matcher = difflib.SequenceMatcher(None, [_signature(m) for _, m in ref_units],
                                      [_signature(m) for _, m in stu_units], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        pairs = list(zip(range(i1, i2), range(j1, j2)))
        for i, j in pairs:
            (rn, rm), (sn, sm) = ref_units[i], stu_units[j]
            details.append(
                f"layer `{sn}` ({_describe_module(sm)}): expected {_count(rm):,} parameters, got {_count(sm):,} "
                f"(the reference's `{rn}` is {_describe_module(rm)})"
            )
        for i in range(i1 + len(pairs), i2):
            rn, rm = ref_units[i]
            details.append(f"missing a layer like the reference's `{rn}` ({_describe_module(rm)}, "
                           f"{_count(rm):,} parameters)")
        for j in range(j1 + len(pairs), j2):
            sn, sm = stu_units[j]
            details.append(f"extra layer `{sn}` ({_describe_module(sm)}, {_count(sm):,} parameters) that the "
                           "reference doesn't have")
    if len(details) > limit:
        details = details[:limit] + [f"... and {len(details) - limit} more differences"]
    return "; ".join(lines + details)


def _fork_flags(tracer: _Tracer) -> dict[int, bool]:
    """For each module (by id): is its input read by more than one parametrised layer (a fork, e.g. conv1 and the projection)?"""
    readers: dict[tuple[int | None, tuple[int, ...] | None], int] = {}
    first: dict[int, _Call] = {}
    for call in tracer.calls:
        if _has_state(call.module) and id(call.module) not in first:
            first[id(call.module)] = call
            key = (call.in_ptr, call.in_shape)
            readers[key] = readers.get(key, 0) + 1
    return {mid: readers[(c.in_ptr, c.in_shape)] > 1 for mid, c in first.items()}


def _groups(model: nn.Module, tracer: _Tracer) -> list[list[tuple[str, nn.Module]]]:
    """Parametrised layers in execution order, each BN grouped with the conv right before it."""
    names = {id(m): n for n, m in _units(model)}
    order: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    for call in tracer.calls:
        m = call.module
        if _has_state(m) and id(m) not in seen:
            seen.add(id(m))
            order.append((names.get(id(m), call.name), m))
    order += [(n, m) for n, m in _units(model) if id(m) not in seen]
    groups: list[list[tuple[str, nn.Module]]] = []
    for name, m in order:
        prev = groups[-1][-1][1] if groups else None
        if isinstance(m, _BatchNorm) and isinstance(prev, nn.Conv2d) and prev.out_channels == m.num_features:
            groups[-1].append((name, m))
        else:
            groups.append([(name, m)])
    return groups


def _copy_pairs(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    with torch.no_grad():
        for rm, sm in pairs:
            for (_, rt), (_, st) in zip(
                [*rm.named_parameters(recurse=False), *rm.named_buffers(recurse=False)],
                [*sm.named_parameters(recurse=False), *sm.named_buffers(recurse=False)],
            ):
                st.copy_(rt)


def _weight_matchings(reference: nn.Module, ref_tracer: _Tracer, student: nn.Module,
                      stu_tracer: _Tracer) -> list[list[tuple[nn.Module, nn.Module]]]:
    """Candidate ways to pair the reference's layers with the student's (names may differ)."""
    candidates = []
    ref_forks, stu_forks = _fork_flags(ref_tracer), _fork_flags(stu_tracer)

    def group_key(forks: dict[int, bool]) -> Callable[[Any], Any]:
        return lambda group: (forks.get(id(group[0][1]), False), tuple(_signature(m) for _, m in group))

    rg, sg = _groups(reference, ref_tracer), _groups(student, stu_tracer)
    for with_forks in (True, False):
        rkey = group_key(ref_forks if with_forks else {})
        skey = group_key(stu_forks if with_forks else {})
        used: set[int] = set()
        pairs: list[tuple[nn.Module, nn.Module]] = []
        ok = True
        for group in rg:
            j = next((j for j, g in enumerate(sg) if j not in used and skey(g) == rkey(group)), None)
            if j is None:
                ok = False
                break
            used.add(j)
            pairs += [(rm, sm) for (_, rm), (_, sm) in zip(group, sg[j])]
        if ok and len(used) == len(sg):
            candidates.append(pairs)
    unit_pairs, missing, extra = _greedy_match(_units(reference), _units(student))
    if not missing and not extra:
        ru, su = _units(reference), _units(student)
        candidates.append([(ru[i][1], su[j][1]) for i, j in unit_pairs])
    unique, seen = [], set()
    for pairs in candidates:
        key = tuple(sorted((id(r), id(s)) for r, s in pairs))
        if key not in seen:
            seen.add(key)
            unique.append(pairs)
    return unique


def _randomize_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Give every BN non-trivial statistics and affine parameters, so wrong orders of operations show."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                if m.weight is not None:
                    m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=generator) * 0.5)
                if m.running_mean is not None:
                    m.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
                    m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=ATOL, rtol=RTOL)


# --------------------------------------------------------------------------------------
# The comparison engine shared by the module checkers
# --------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    student: nn.Module
    reference: nn.Module
    x: torch.Tensor
    ref_out: torch.Tensor
    stu_out: torch.Tensor  # with the reference's weights copied in
    tracer: _Tracer


def _compare(checker: str, where: str, student: nn.Module, reference: nn.Module, x: torch.Tensor,
             *, static_hints: Callable[[], list[str]] = lambda: [],
             error_hints: Callable[[BaseException, _Tracer], list[str]] | None = None,
             mismatch_hints: Callable[[_Outcome], list[str]] | None = None,
             extra_inputs: Sequence[torch.Tensor] = (), shape_hints: Callable[[tuple, tuple], list[str]] | None = None,
             after_trace: Callable[[_Tracer, _Tracer], None] | None = None) -> None:
    """Parameters, then a traced forward, then outputs with weights copied (on ``x`` and ``extra_inputs``)."""
    generator = torch.Generator().manual_seed(SEED)
    _randomize_norms(reference, generator)
    reference.eval()
    student.eval()

    problem = _parameter_problem(student, reference)
    if problem:
        raise _fail(where, problem, static_hints())

    def on_error(exc: BaseException, tracer: _Tracer) -> list[str]:
        return (error_hints(exc, tracer) if error_hints else []) + static_hints() + _generic_error_hints(exc)

    # One traced run with the student's own weights: it shows the execution order used to pair layers.
    _, stu_tracer = _forward(checker, where, student, x, on_error)
    with torch.no_grad(), _Tracer(reference) as ref_tracer:
        ref_first = reference(x.clone())
    if after_trace is not None:
        after_trace(stu_tracer, ref_tracer)

    candidates = _weight_matchings(reference, ref_tracer, student, stu_tracer)
    if not candidates:
        raise _fail(where, "could not pair your layers with the reference's (same parameter shapes, different roles)",
                    static_hints() or ["build the layers in the same order as the reference: conv1, bn1, conv2, bn2, ..."])

    first: _Outcome | None = None
    for k, inputs in enumerate((x, *extra_inputs)):
        if k == 0:
            ref_out = ref_first
        else:
            with torch.no_grad():
                ref_out = reference(inputs.clone())
        matched = False
        for pairs in candidates:
            _copy_pairs(pairs)
            stu_out, tracer = _forward(checker, where, student, inputs, on_error)
            if tuple(stu_out.shape) != tuple(ref_out.shape):
                hints = (shape_hints(tuple(stu_out.shape), tuple(ref_out.shape)) if shape_hints else []) + static_hints()
                raise _fail(where, f"output shape for input {_fmt_shape(inputs.shape)}: expected "
                                   f"{_fmt_shape(ref_out.shape)}, got {_fmt_shape(stu_out.shape)}", hints)
            if _close(stu_out, ref_out):
                matched = True
                break
            if first is None:
                first = _Outcome(student, reference, inputs, ref_out, stu_out, tracer)
        if not matched:
            assert first is not None
            hints = (mismatch_hints(first) if mismatch_hints else []) + static_hints()
            if not hints:
                hints = ["check the order of operations against the reference: conv -> BN -> ReLU, conv -> BN, "
                         "add the shortcut, then ReLU"]
            raise _fail(where, "shapes and parameter counts match, but the outputs differ (with the same weights)",
                        hints)


# --------------------------------------------------------------------------------------
# Diagnosis of block mistakes
# --------------------------------------------------------------------------------------


def _convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _padded_1x1_hints(model: nn.Module) -> list[str]:
    hints = []
    for name, conv in _convs(model):
        if conv.kernel_size == (1, 1) and conv.padding not in ((0, 0), "valid"):
            hints.append(
                f"`{name}` is a 1x1 convolution with padding={_pair_text(conv.padding)}: the 1x1 conv has padding, "
                "so the map grows by 2 pixels (H x W -> (H+2) x (W+2)) and no longer matches the shortcut. "
                "A 1x1 conv needs padding=0."
            )
    return hints


def _bias_hints(model: nn.Module) -> list[str]:
    named = [n for n, c in _convs(model) if c.bias is not None]
    if named:
        return [f"{', '.join('`' + n + '`' for n in named[:3])} {'has' if len(named) == 1 else 'have'} a bias: "
                "a conv followed by BN needs none (BN's own shift replaces it), so use bias=False"]
    return []


_SHORTCUT_NAME = re.compile(r"down|short|proj|skip|ident|resid", re.IGNORECASE)


def _projections(model: nn.Module, in_channels: int, out_channels: int,
                 bottleneck: bool = False) -> list[tuple[str, nn.Conv2d]]:
    """The 1x1 convs that look like a projection shortcut in_channels -> out_channels."""
    found = [(n, c) for n, c in _convs(model)
             if c.kernel_size == (1, 1) and c.in_channels == in_channels and c.out_channels == out_channels]
    if bottleneck and in_channels * 4 == out_channels and found:
        # When in_channels == planes, conv3 (planes -> 4 planes) has the projection's shape too.
        named = [(n, c) for n, c in found if _SHORTCUT_NAME.search(n)]
        if named:
            return named
        if sum(c.kernel_size == (1, 1) for _, c in _convs(model)) <= 2:
            return []  # just conv1 and conv3: no projection
        return [(n, c) for n, c in found if "conv3" not in n] or found[-1:]
    return found


def _block_static_hints(model: nn.Module, in_channels: int, out_channels: int, stride: int,
                        bottleneck: bool = False, residual: bool = True) -> list[str]:
    hints = _padded_1x1_hints(model) + _bias_hints(model)
    shape_changes = stride != 1 or in_channels != out_channels
    projections = _projections(model, in_channels, out_channels, bottleneck)
    if not residual:
        if projections:
            hints.append(f"with residual=False there is no shortcut at all, so nothing to project: "
                         f"`{projections[0][0]}` should not exist in a plain block")
        return hints
    if shape_changes and not projections:
        hints.append(
            f"the shape changes here ({in_channels} -> {out_channels} channels, stride {stride}) but your block has no "
            f"projection shortcut (a 1x1 conv {in_channels}->{out_channels} + BN): is the condition for a projection "
            "inverted? Use one exactly when stride != 1 or in_channels != out_channels."
        )
    if not shape_changes and projections:
        hints.append(
            f"the shape doesn't change here ({in_channels} -> {out_channels} channels, stride 1), yet your block has a "
            f"projection `{projections[0][0]}`: the shortcut should be the identity. Is the condition for a projection "
            "inverted? Use one exactly when stride != 1 or in_channels != out_channels."
        )
    for name, conv in projections:
        if shape_changes and conv.stride != (stride, stride):
            hints.append(
                f"your projection `{name}` has stride {_pair_text(conv.stride)} but the block has stride {stride}: "
                f"the shortcut keeps the full map while the branch shrinks it by {stride}, so the spatial sizes "
                f"disagree at the add. Give the projection's 1x1 conv stride={stride}."
            )
    if bottleneck and stride != 1:
        proj = {id(c) for _, c in projections}
        for name, conv in _convs(model):
            if conv.kernel_size == (1, 1) and conv.stride != (1, 1) and id(conv) not in proj:
                hints.append(
                    f"the stride sits on the 1x1 conv `{name}` (ResNet v1, as in the paper); this course, like "
                    "torchvision, puts it on the 3x3 conv (v1.5): conv2 = 3x3 with stride, the 1x1 convs stride 1"
                )
    return hints


def _projection_input_hints(model: nn.Module, in_channels: int, out_channels: int,
                            x_shape: tuple[int, ...], tracer: _Tracer, bottleneck: bool = False) -> list[str]:
    for name, conv in _projections(model, in_channels, out_channels, bottleneck) + [
        (n, c) for n, c in _convs(model) if c.kernel_size == (1, 1) and c.out_channels == out_channels
        and c.in_channels == out_channels and in_channels != out_channels
    ]:
        call = tracer.first_call(conv)
        if call is not None and call.in_shape is not None and call.in_shape != x_shape:
            return [
                f"your projection `{name}` was applied to a tensor of shape {_fmt_shape(call.in_shape)}, not to the "
                f"block's input x {_fmt_shape(x_shape)}: is the projection applied to the block's output instead of "
                "its input? The shortcut is projection(x), added to the branch's output."
            ]
    return []


def _reference_parts(ref: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference block's residual branch F(x) (before the add) and its shortcut."""
    with torch.no_grad():
        b = torch.relu(ref.bn1(ref.conv1(x)))
        if isinstance(ref, Bottleneck):
            b = torch.relu(ref.bn2(ref.conv2(b)))
            b = ref.bn3(ref.conv3(b))
        else:
            b = ref.bn2(ref.conv2(b))
        s = ref.downsample(x) if ref.downsample is not None else x
    return b, s


def _block_mismatch_hints(outcome: _Outcome, residual: bool = True) -> list[str]:
    ref = outcome.reference
    b, s = _reference_parts(ref, outcome.x)
    y = outcome.stu_out
    hints = []
    if residual:
        if _close(y, torch.relu(torch.relu(b) + s)) or (
            bool((y >= torch.relu(s) - 1e-4).all()) and bool((torch.relu(b + s) < torch.relu(s) - 1e-3).any())
        ):
            hints.append(HINT_RELU_BEFORE_ADD)
        elif _close(y, torch.relu(b)):
            hints.append("your output equals ReLU(F(x)): the shortcut is never added (or residual=True is ignored)")
        elif _close(y, b + s):
            hints.append("your output is F(x) + shortcut without the final ReLU: apply ReLU after the add")
        elif _close(y, torch.relu(b + outcome.x)) if b.shape == outcome.x.shape else False:
            hints.append("your shortcut adds x itself although the reference projects it: use the projection here")
    else:
        if _close(y, torch.relu(b + s)) if b.shape == s.shape else False:
            hints.append("with residual=False your block still adds the shortcut: a plain block returns ReLU(F(x))")
        elif _close(y, b):
            hints.append("with residual=False the output should still end with ReLU: return ReLU(F(x))")
    if not hints and bool((y < 0).any()) and not bool((outcome.ref_out < 0).any()):
        hints.append("your output has negative values: is the final ReLU (after the add) missing?")
    return hints


def _block_shape_hints(got: tuple, expected: tuple) -> list[str]:
    if len(got) == 4 and len(expected) == 4:
        if got[1] != expected[1]:
            return [f"the block should output {expected[1]} channels (planes x expansion), yours outputs {got[1]}"]
        if got[2] > expected[2]:
            return ["your output map is larger than expected: is the stride applied (first 3x3 conv of the branch, "
                    "and the projection)? Does a 1x1 conv have padding?"]
        if got[2] < expected[2]:
            return ["your output map is smaller than expected: is the stride applied more than once?"]
    return []


def _check_blocks(checker: str, cls: Any, ref_factory: Callable[..., nn.Module], configs: list[tuple],
                  call_kwargs: Callable[[tuple], dict[str, Any]], label: Callable[[tuple], str],
                  bottleneck: bool, size: int = 8) -> int:
    name = getattr(cls, "__name__", "your class")
    with torch.random.fork_rng(devices=[]):
        for config in configs:
            in_channels, planes, stride, residual = config
            out_channels = planes * (4 if bottleneck else 1)
            args, kwargs = call_kwargs(config)
            where = f"{checker}, {name}({label(config)})"
            call_text = f"{name}({label(config)})"
            torch.manual_seed(SEED)
            reference = ref_factory(in_channels, planes, stride, residual=residual)
            torch.manual_seed(SEED)
            student = _build(checker, where, call_text, cls, *args, **kwargs)
            x = torch.randn(2, in_channels, size, size, generator=torch.Generator().manual_seed(SEED + 1))

            def static() -> list[str]:
                return _block_static_hints(student, in_channels, out_channels, stride, bottleneck, residual)

            def errors(exc: BaseException, tracer: _Tracer) -> list[str]:
                return _projection_input_hints(student, in_channels, out_channels, tuple(x.shape), tracer,
                                               bottleneck)

            _compare(checker, where, student, reference, x, static_hints=static, error_hints=errors,
                     mismatch_hints=partial(_block_mismatch_hints, residual=residual), shape_hints=_block_shape_hints)
    return len(configs)


# --------------------------------------------------------------------------------------
# Public checkers
# --------------------------------------------------------------------------------------

_CONV_CASES = [
    # (n, kernel, stride, padding, what it is)
    (224, 7, 2, 3, "the ResNet stem: 7x7 conv, stride 2, padding 3"),
    (112, 3, 2, 1, "the stem's 3x3 max pool, stride 2, padding 1"),
    (56, 3, 1, 1, "a 3x3 conv, stride 1, padding 1"),
    (56, 3, 2, 1, "a strided 3x3 conv"),
    (56, 1, 1, 0, "a 1x1 conv"),
    (56, 1, 2, 0, "a strided 1x1 projection"),
    (28, 3, 2, 1, "a strided 3x3 conv"),
    (14, 3, 2, 1, "a strided 3x3 conv on an even map"),
    (7, 3, 2, 1, "a strided 3x3 conv on an odd map"),
    (7, 7, 1, 0, "a 7x7 window on a 7x7 map"),
    (32, 3, 1, 1, "a CIFAR 3x3 stem"),
    (6, 3, 2, 0, "a 3x3 window, stride 2, no padding"),
    (5, 2, 2, 0, "a 2x2 pool, stride 2, on an odd map"),
    (56, 1, 1, 1, "a 1x1 conv with padding 1 (the map grows by 2)"),
]

_WRONG_FORMULAS: list[tuple[Callable[[int, int, int, int], float], str]] = [
    (lambda n, k, s, p: (n + 2 * p - k) // s, "the +1 is missing: M = floor((n + 2p - k) / s) + 1"),
    (lambda n, k, s, p: (n + p - k) // s + 1, "padding is added on both sides: use 2p, not p"),
    (lambda n, k, s, p: (n - k) // s + 1, "the padding is missing: M = floor((n + 2p - k) / s) + 1"),
    (lambda n, k, s, p: n + 2 * p - k + 1, "the stride is missing: divide by s"),
    (lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1, "round down (floor, //), not up"),
    (lambda n, k, s, p: (n + 2 * p - k + 1) // s, "the +1 goes after the division: floor((n + 2p - k) / s) + 1"),
]


def conv_output_size(fn: Callable[[int, int, int, int], int]) -> None:
    """Check ``fn(n, kernel, stride, padding) -> int`` against the conv/pool output-size formula."""
    checker = "conv_output_size"
    results = {}
    call_texts = {(n, k, s, p): f"conv_output_size(n={n}, kernel={k}, stride={s}, padding={p})" for n, k, s, p, _ in _CONV_CASES}
    for n, k, s, p, what in _CONV_CASES:
        call_text = call_texts[(n, k, s, p)]
        got = _call(checker, checker, call_text, fn, n, k, s, p)
        expected = _reference_conv_output_size(n, k, s, p)
        if isinstance(got, bool) or not isinstance(got, numbers.Integral):
            hint = ("return an int: use floor division // instead of /"
                    if isinstance(got, numbers.Real) else "return the size as an int")
            raise _fail(checker, f"{call_text} ({what}) returned {got!r} of type {type(got).__name__}, "
                                 f"expected the int {expected}", hint)
        results[(n, k, s, p)] = int(got)
    for n, k, s, p, what in _CONV_CASES:
        got, expected = results[(n, k, s, p)], _reference_conv_output_size(n, k, s, p)
        if got != expected:
            hints = [hint for formula, hint in _WRONG_FORMULAS if all(results[c] == formula(*c) for c in results)]
            raise _fail(checker, f"{call_texts[(n, k, s, p)]} ({what}) returned {got}, expected {expected}",
                        hints[:1] or ["M = floor((n + 2p - k) / s) + 1"])
    print(f"✓ conv_output_size: {len(_CONV_CASES)} cases match floor((n + 2p - k) / s) + 1 "
          "(incl. the 7x7/2 stem and 1x1 convs)")


def residual_unit(cls: Callable[[int], nn.Module]) -> None:
    """Check ``cls(channels)``: H(x) = ReLU(F(x) + x), F = conv3x3-BN-ReLU-conv3x3-BN, against BasicBlock(c, c)."""
    configs = [(16, 16, 1, True), (64, 64, 1, True)]
    n = _check_blocks(
        "residual_unit", cls, BasicBlock, configs,
        call_kwargs=lambda c: ((c[0],), {}), label=lambda c: f"{c[0]}", bottleneck=False,
    )
    print(f"✓ residual_unit: {n} configurations match resnet_lab.BasicBlock(c, c) (shapes, parameter counts, outputs)")


def basic_block(cls: Callable[..., nn.Module]) -> None:
    """Check ``cls(in_channels, planes, stride=1)`` (option B shortcut) against ``resnet_lab.BasicBlock``."""
    configs = [(64, 64, 1, True), (64, 128, 2, True), (32, 64, 1, True), (64, 64, 2, True)]
    n = _check_blocks(
        "basic_block", cls, BasicBlock, configs,
        call_kwargs=lambda c: ((c[0], c[1], c[2]), {}), label=lambda c: f"{c[0]}, {c[1]}, stride={c[2]}",
        bottleneck=False,
    )
    print(f"✓ basic_block: {n} configurations match resnet_lab.BasicBlock "
          "(shapes, parameter counts, outputs; 3 with a projection shortcut)")


def bottleneck(cls: Callable[..., nn.Module]) -> None:
    """Check ``cls(in_channels, planes, stride=1)`` (expansion 4, stride on the 3x3) against ``resnet_lab.Bottleneck``."""
    expansion = getattr(cls, "expansion", None)
    if expansion is not None and expansion != 4:
        raise _fail(f"bottleneck, {getattr(cls, '__name__', 'your class')}",
                    f"expansion is {expansion}, expected 4", "a bottleneck's last 1x1 conv widens to 4 x planes")
    configs = [(64, 64, 1, True), (256, 64, 1, True), (256, 128, 2, True), (512, 128, 1, True)]
    n = _check_blocks(
        "bottleneck", cls, Bottleneck, configs,
        call_kwargs=lambda c: ((c[0], c[1], c[2]), {}), label=lambda c: f"{c[0]}, {c[1]}, stride={c[2]}",
        bottleneck=True, size=8,
    )
    print(f"✓ bottleneck: {n} configurations match resnet_lab.Bottleneck "
          "(shapes, parameter counts, outputs; 2 with a projection shortcut)")


def plain_switch(cls: Callable[..., nn.Module]) -> None:
    """Check ``cls(in_channels, planes, stride=1, residual=True)``: ``residual=False`` drops the shortcut."""
    configs = [(64, 64, 1, True), (64, 64, 1, False), (64, 128, 2, True), (64, 128, 2, False)]
    n = _check_blocks(
        "plain_switch", cls, BasicBlock, configs,
        call_kwargs=lambda c: ((c[0], c[1], c[2]), {"residual": c[3]}),
        label=lambda c: f"{c[0]}, {c[1]}, stride={c[2]}, residual={c[3]}", bottleneck=False,
    )
    print(f"✓ plain_switch: {n} configurations (residual and plain) match resnet_lab.BasicBlock "
          "(shapes, parameter counts, outputs)")


def _stage_hints(seq: nn.Module, ref_table: list, planes: int, expansion: int, num_blocks: int) -> list[str]:
    hints = []
    children = list(seq.children())
    if len(children) != num_blocks:
        return [f"the stage should have {num_blocks} blocks, yours has {len(children)}"]
    for i, (child, row) in enumerate(zip(children, ref_table)):
        convs = _convs(child)
        got_in = getattr(child, "in_channels", convs[0][1].in_channels if convs else None)
        if got_in is not None and got_in != row.in_channels:
            hint = f"block {i} was built for {got_in} input channels, but it receives {row.in_channels}"
            if i > 0 and got_in == planes and expansion != 1:
                hint += (f" (block {i - 1} outputs planes {planes} x expansion {expansion} = {planes * expansion}): "
                         "after each block set in_channels = planes * block.expansion")
            hints.append(hint)
            break
        got_stride = getattr(child, "stride", None)
        if isinstance(got_stride, int) and got_stride != row.stride:
            hints.append(f"block {i} has stride {got_stride}, expected {row.stride}: "
                         "only the first block of a stage strides, the others use stride 1")
            break
    return hints


def stage(fn: Callable[..., Any]) -> None:
    """Check ``fn(block, in_channels, planes, num_blocks, stride) -> nn.Sequential`` against ``resnet_lab.make_stage``."""
    checker = "stage"
    name = getattr(fn, "__name__", "your function")
    configs = [(BasicBlock, 64, 64, 2, 1), (BasicBlock, 64, 128, 2, 2), (Bottleneck, 64, 64, 3, 1),
               (Bottleneck, 256, 128, 2, 2)]
    with torch.random.fork_rng(devices=[]):
        for block, in_channels, planes, num_blocks, stride in configs:
            text = f"{name}({block.__name__}, {in_channels}, {planes}, {num_blocks}, stride={stride})"
            where = f"{checker}, {text}"
            torch.manual_seed(SEED)
            reference, table = make_stage(block, in_channels, planes, num_blocks, stride)
            torch.manual_seed(SEED)
            student = _build(checker, where, text, fn, block, in_channels, planes, num_blocks, stride)
            hints = _stage_hints(student, table, planes, block.expansion, num_blocks)
            if hints:
                raise _fail(where, "the blocks of your stage don't match resnet_lab.make_stage", hints)
            x = torch.randn(2, in_channels, 8, 8, generator=torch.Generator().manual_seed(SEED + 1))
            _compare(checker, where, student, reference, x,
                     static_hints=lambda: _padded_1x1_hints(student),
                     shape_hints=lambda got, exp: ["only the first block strides; the stage's output has "
                                                   "planes * block.expansion channels"])
    print(f"✓ stage: {len(configs)} configurations match resnet_lab.make_stage "
          "(blocks, shapes, parameter counts, outputs)")


class _SymmetricZeroPad(nn.Module):
    """Option A with the zero channels split before and after (a common equivalent implementation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


def _stem_hints(model: nn.Module, size: int) -> list[str]:
    convs = _convs(model)
    stem = convs[0][1] if convs else None
    has_maxpool = any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    parts = []
    if stem is not None and (stem.kernel_size[0] >= 7 or stem.stride != (1, 1)):
        parts.append(f"the stem is a {stem.kernel_size[0]}x{stem.kernel_size[1]} conv with stride {_pair_text(stem.stride)}")
    if has_maxpool:
        parts.append("there is a max pool")
    if not parts:
        return []
    factor = (stem.stride[0] if stem is not None else 1) * (2 if has_maxpool else 1)
    return [f"{' and '.join(parts)}: an ImageNet-style stem, which shrinks a {size}x{size} image by {factor} before "
            "the first stage (the ImageNet stem, 7x7 stride-2 conv + max pool, by 4). CIFAR nets use a 3x3 conv "
            "with stride 1 and no max pool."]


def cifar_net(fn: Callable[..., nn.Module]) -> None:
    """Check ``fn(depth, in_channels=3, num_classes=10)`` against ``resnet_lab.cifar_resnet`` (option A shortcuts).

    Parameter counts for depths 20 (269,722) and 56; shapes, feature-map sizes and outputs (weights
    copied) for ResNet-20 on 32x32 RGB and on 28x28 grayscale (in_channels=1) inputs.
    """
    checker = "cifar_net"
    name = getattr(fn, "__name__", "your function")
    configs = [(20, 3, 10, 32), (20, 1, 10, 28), (56, 3, 10, None)]
    with torch.random.fork_rng(devices=[]):
        for depth, in_channels, num_classes, size in configs:
            text = f"{name}({depth}, in_channels={in_channels}, num_classes={num_classes})"
            where = f"{checker}, {text}"
            torch.manual_seed(SEED)
            reference = cifar_resnet(depth, in_channels, num_classes)
            torch.manual_seed(SEED)
            student = _build(checker, where, text, fn, depth, in_channels, num_classes)
            expected, got = count_parameters(reference), count_parameters(student)

            def static(student: nn.Module = student, size: int = size or 32) -> list[str]:
                hints = _stem_hints(student, size)
                one_by_one = [n for n, c in _convs(student) if c.kernel_size == (1, 1)]
                if one_by_one:
                    hints.append(f"your net has 1x1 projection convs ({', '.join(one_by_one[:2])}, ...): the paper's "
                                 "CIFAR nets use option A shortcuts (subsample + zero-pad the extra channels, no "
                                 "parameters), e.g. resnet_lab.ZeroPadShortcut")
                return hints + _padded_1x1_hints(student) + _bias_hints(student)

            if got != expected:
                problem = _parameter_problem(student, reference) or ""
                raise _fail(where, f"ResNet-{depth} should have {expected:,} parameters, yours has {got:,}. {problem}",
                            static())
            if size is None:
                continue

            def maps(stu_tracer: _Tracer, ref_tracer: _Tracer, size: int = size, where: str = where,
                     static: Callable[[], list[str]] = static) -> None:
                got_map, want_map = stu_tracer.last_conv_map(), ref_tracer.last_conv_map()
                if got_map is not None and want_map is not None and got_map[2:] != want_map[2:]:
                    raise _fail(where, f"on {size}x{size} inputs the last feature map is {got_map[2]}x{got_map[3]}, "
                                       f"expected {want_map[2]}x{want_map[3]} (maps of {size}, {size // 2}, "
                                       f"{size // 4} in the three stages)",
                                static() or ["only the first conv of stages 2 and 3 strides"])

            x = torch.randn(1, in_channels, size, size, generator=torch.Generator().manual_seed(SEED + 1))
            try:
                _compare(checker, where, student, reference, x, static_hints=static, after_trace=maps)
            except AssertionError as first_error:
                if "outputs differ" not in str(first_error):
                    raise
                # Option A written with the zero channels on both sides is just as right.
                variant = copy.deepcopy(reference)
                for m in variant.modules():
                    if isinstance(m, BasicBlock) and isinstance(m.downsample, ZeroPadShortcut):
                        d = m.downsample
                        m.downsample = _SymmetricZeroPad(d.in_channels, d.out_channels, d.stride)
                try:
                    _compare(checker, where, student, variant, x, static_hints=static)
                except AssertionError:
                    raise first_error from None
    print("✓ cifar_net: ResNet-20 has 269,722 parameters and ResNet-56 853,018; ResNet-20 matches "
          "resnet_lab.cifar_resnet on 32x32 RGB and 28x28 grayscale inputs (shapes, feature maps, outputs)")


def _stage_lengths(model: nn.Module) -> list[int]:
    """Blocks per stage: top-level Sequential/ModuleList children that contain convolutions."""
    lengths = []
    for child in model.children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and _convs(child) and len(child) > 0:
            if all(_convs(block) for block in child):
                lengths.append(len(child))
    return lengths


def _fixed_pool_hints(model: nn.Module) -> list[str]:
    for name, m in model.named_modules():
        if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) and m.kernel_size in (7, (7, 7)):
            return [f"`{name}` is a fixed {type(m).__name__}(7): it only fits the 7x7 map that a 224x224 input leaves, "
                    "so the net only accepts 224x224 inputs. Use global average pooling, nn.AdaptiveAvgPool2d(1)."]
    return []


def _build_imagenet(checker: str, fn: Callable[..., nn.Module], depth: int) -> tuple[nn.Module, str]:
    name = getattr(fn, "__name__", "your function")
    try:
        params = inspect.signature(fn).parameters.values()
        required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        takes_depth = bool(required) or any(p.name == "depth" or p.kind is p.VAR_POSITIONAL for p in params)
    except (TypeError, ValueError):
        takes_depth = True
    text = f"{name}({depth})" if takes_depth else f"{name}()"
    args = (depth,) if takes_depth else ()
    return _build(checker, f"{checker}, {text}", text, fn, *args), text


def imagenet_resnet(fn: Callable[..., nn.Module], depth: int = 50) -> None:
    """Check an ImageNet ResNet builder against ``resnet_lab.resnet(depth)``.

    ``fn`` is called as ``fn(depth)``, or as ``fn()`` when it takes no arguments (e.g. ``my_resnet50``).
    Checks blocks per stage, parameter counts, outputs on 224x224 (and 64x64) inputs with weights copied, and
    that 160x160 and 100x100 inputs work too (a fixed AvgPool2d(7) head fails there).
    """
    checker = "imagenet_resnet"
    if depth not in IMAGENET_CONFIGS:
        raise ValueError(f"depth must be one of {sorted(IMAGENET_CONFIGS)}; got {depth}")
    block, layers = IMAGENET_CONFIGS[depth]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        reference = resnet(depth)
        torch.manual_seed(SEED)
        student, text = _build_imagenet(checker, fn, depth)
        where = f"{checker}, {text}"
        lengths = _stage_lengths(student)
        if len(lengths) == 4 and lengths != list(layers):
            raise _fail(where, f"blocks per stage: expected {list(layers)}, got {lengths}",
                        f"ResNet-{depth} has {list(layers)} {block.__name__} blocks in its four stages "
                        "(Table 1 of the paper)")

        def static() -> list[str]:
            hints = _fixed_pool_hints(student) + _padded_1x1_hints(student)
            expansion = block.expansion
            if expansion != 1:
                for sname, child in student.named_children():
                    if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
                        first_out = _convs(child[0])
                        second_in = _convs(child[1])
                        if first_out and second_in:
                            widest = max(c.out_channels for _, c in first_out)
                            if second_in[0][1].in_channels * expansion == widest:
                                hints.append(
                                    f"`{sname}.1` takes {second_in[0][1].in_channels} input channels, but `{sname}.0` "
                                    f"outputs {widest}: after a bottleneck, in_channels = planes * expansion "
                                    f"({second_in[0][1].in_channels} x {expansion})")
                                break
            return hints

        if _fixed_pool_hints(student):
            # Run 160x160 first: a fixed pool fails there even when 224x224 works.
            x160 = torch.randn(1, 3, 160, 160, generator=torch.Generator().manual_seed(SEED + 1))
            _forward(checker, where, student, x160,
                     lambda exc, tracer: ["your net fails on a 160x160 input"] + static())
            raise _fail(where, "your head has a fixed-size pooling window", static())
        any_size = ("a ResNet must accept any input size of at least 32x32: is there a fixed 7x7 pooling "
                    "(AvgPool2d(7), F.avg_pool2d(x, 7)) in the head? Use global average pooling, "
                    "nn.AdaptiveAvgPool2d(1).")
        small = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(SEED))
        x224 = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(SEED + 1))
        _compare(checker, where, student, reference, small, extra_inputs=[x224], static_hints=static,
                 error_hints=lambda exc, tracer: [any_size] + static())
        for size in ACCEPT_SIZES:
            x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(SEED + size))
            out, _ = _forward(checker, where, student, x,
                              lambda exc, tracer, size=size: [f"your net works on 224x224 but fails on {size}x{size}",
                                                              any_size] + static())
            if tuple(out.shape) != (1, 1000):
                raise _fail(where, f"output shape for a {size}x{size} input: expected (1, 1000), got "
                                   f"{_fmt_shape(out.shape)}", [any_size])
    total = count_parameters(reference)
    sizes = " and ".join(f"{s}x{s}" for s in ACCEPT_SIZES)
    print(f"✓ imagenet_resnet: ResNet-{depth} matches resnet_lab.resnet{depth} (blocks per stage {list(layers)}, "
          f"{total:,} parameters, outputs at 224x224 and 64x64; also accepts {sizes})")


def small_input_net(model: nn.Module, size: int = 32, min_map: int = 4) -> None:
    """Check that ``model`` suits small images: on ``size`` x ``size`` inputs its last feature map is >= ``min_map``.

    Flags the ImageNet stem (7x7 stride-2 conv + max pool) on 32x32 CIFAR images, where the
    last stage of ResNet-18 sees a 1x1 map.
    """
    checker = "small_input_net"
    where = f"{checker}, {type(model).__name__} on {size}x{size}"
    convs = _convs(model)
    if not convs:
        raise _fail(where, "the model has no Conv2d layers")
    in_channels = convs[0][1].in_channels
    x = torch.zeros(1, in_channels, size, size)
    was_training = model.training
    try:
        _, tracer = _forward(checker, where, model, x)
    finally:
        model.train(was_training)
    shape = tracer.last_conv_map()
    assert shape is not None
    h, w = shape[2], shape[3]
    if min(h, w) < min_map:
        raise _fail(where, f"on {size}x{size} inputs the last feature map is {h}x{w}: the last stage has almost "
                           "nothing left to look at",
                    _stem_hints(model, size) or ["too much downsampling for small images: use a 3x3 stride-1 stem "
                                                 "and no max pool (resnet_lab.cifar_resnet)"])
    print(f"✓ small_input_net: on {size}x{size} inputs the last feature map is {h}x{w} (at least {min_map}x{min_map})")
