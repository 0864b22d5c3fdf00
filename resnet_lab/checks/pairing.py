"""Pairing the student's layers with the reference's: tracing which leaf modules run, comparing
parameters layer by layer, and copying the reference's weights across.

Split out of :mod:`resnet_lab.checks.engine` (which re-exports every name here), so each stays small.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..costs import count_parameters


def fmt_shape(shape: Sequence[int] | None) -> str:
    return "None" if shape is None else "(" + ", ".join(str(int(s)) for s in shape) + ")"


def pair_text(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return str(value[0])
    return str(value)


def _describe_module(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = "x".join(str(s) for s in module.kernel_size)
        text = (
            f"Conv2d {module.in_channels}->{module.out_channels}, {k}, "
            f"stride {pair_text(module.stride)}, padding {pair_text(module.padding)}"
        )
        return text + (", with bias" if module.bias is not None else "")
    if isinstance(module, _BatchNorm):
        return f"{type(module).__name__}({module.num_features})"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}->{module.out_features}" + ("" if module.bias is not None else ", no bias")
    shapes = ", ".join(f"{n} {fmt_shape(p.shape)}" for n, p in module.named_parameters(recurse=False))
    return f"{type(module).__name__}({shapes})"


# --------------------------------------------------------------------------------------
# Tracing: which leaf modules run, in what order, on what inputs
# --------------------------------------------------------------------------------------


@dataclass
class TracedCall:
    name: str
    module: nn.Module
    in_shape: tuple[int, ...] | None
    in_ptr: int | None
    out_shape: tuple[int, ...] | None = None


@dataclass
class Tracer:
    """Forward pre/post hooks on every leaf module; keeps the tensors alive so pointers stay unique."""

    model: nn.Module
    calls: list[TracedCall] = field(default_factory=list)
    _keep: list[torch.Tensor] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list)

    def __enter__(self) -> Tracer:
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
        self.calls.append(
            TracedCall(name, module, tuple(t.shape) if t is not None else None, t.data_ptr() if t is not None else None)
        )

    def _post(self, name: str, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if isinstance(out, torch.Tensor):
            self._keep.append(out)
            for call in reversed(self.calls):
                if call.module is module:
                    call.out_shape = tuple(out.shape)
                    break

    def first_call(self, module: nn.Module) -> TracedCall | None:
        return next((c for c in self.calls if c.module is module), None)

    def last_conv_map(self) -> tuple[int, ...] | None:
        for call in reversed(self.calls):
            if isinstance(call.module, nn.Conv2d) and call.out_shape is not None:
                return call.out_shape
        return None


# --------------------------------------------------------------------------------------
# Parameters: layer-by-layer comparison and copying weights across
# --------------------------------------------------------------------------------------


def _has_state(module: nn.Module) -> bool:
    return (
        next(module.parameters(recurse=False), None) is not None
        or next(module.buffers(recurse=False), None) is not None
    )


def _signature(module: nn.Module) -> tuple[Any, ...]:
    params = tuple((n, tuple(p.shape)) for n, p in module.named_parameters(recurse=False))
    buffers = tuple((n, tuple(b.shape)) for n, b in module.named_buffers(recurse=False))
    return params + buffers


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters or buffers directly, in registration order."""
    return [(name or "(the module itself)", m) for name, m in model.named_modules() if _has_state(m)]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _greedy_match(
    ref: list[tuple[str, nn.Module]], stu: list[tuple[str, nn.Module]], key: Callable[[nn.Module], Any] = _signature
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
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


def parameter_problem(student: nn.Module, reference: nn.Module, limit: int = 4) -> str | None:
    """None when both have the same layers (up to order); else which layers differ, expected vs got."""
    ref_units, stu_units = _units(reference), _units(student)
    _, missing, extra = _greedy_match(ref_units, stu_units)
    total_r, total_s = count_parameters(reference), count_parameters(student)
    if not missing and not extra and total_r == total_s:
        return None
    lines = [f"parameter count: expected {total_r:,}, got {total_s:,}"]
    details = []
    # Align the two layer lists in registration order to say which layers differ.
    matcher = difflib.SequenceMatcher(
        None, [_signature(m) for _, m in ref_units], [_signature(m) for _, m in stu_units], autojunk=False
    )
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
            details.append(
                f"missing a layer like the reference's `{rn}` ({_describe_module(rm)}, {_count(rm):,} parameters)"
            )
        for j in range(j1 + len(pairs), j2):
            sn, sm = stu_units[j]
            details.append(
                f"extra layer `{sn}` ({_describe_module(sm)}, {_count(sm):,} parameters) that the "
                "reference doesn't have"
            )
    if len(details) > limit:
        details = details[:limit] + [f"... and {len(details) - limit} more differences"]
    return "; ".join(lines + details)


def _fork_flags(tracer: Tracer) -> dict[int, bool]:
    """For each module (by id): is its input read by more than one parametrised layer (a fork, e.g. conv1 and the projection)?"""
    readers: dict[tuple[int | None, tuple[int, ...] | None], int] = {}
    first: dict[int, TracedCall] = {}
    for call in tracer.calls:
        if _has_state(call.module) and id(call.module) not in first:
            first[id(call.module)] = call
            key = (call.in_ptr, call.in_shape)
            readers[key] = readers.get(key, 0) + 1
    return {mid: readers[(c.in_ptr, c.in_shape)] > 1 for mid, c in first.items()}


def _groups(model: nn.Module, tracer: Tracer) -> list[list[tuple[str, nn.Module]]]:
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


def _weight_matchings(
    reference: nn.Module, ref_tracer: Tracer, student: nn.Module, stu_tracer: Tracer
) -> list[list[tuple[nn.Module, nn.Module]]]:
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
