"""The comparison engine shared by the checkers: messages, calling student code safely, tracing,
pairing the student's layers with the reference's, and comparing outputs with the same weights.

Everything here is neutral about *what* is checked; hints about particular mistakes live in
:mod:`resnet_lab.checks.diagnosis` and are passed in through a :class:`Diagnosis`.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .pairing import (  # noqa: F401  (re-exported: checkers import these from the engine)
    TracedCall,
    Tracer,
    _copy_pairs,
    _describe_module,
    _randomize_norms,
    _weight_matchings,
    fmt_shape,
    pair_text,
    parameter_problem,
)

ATOL = 1e-5
RTOL = 1e-4
SEED = 0
ACCEPT_SIZES = (160, 100)  # besides 224x224: a fixed AvgPool2d(7) head fails on both

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
# Frames inside resnet_lab (this package's parent) are the course's, not the student's.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ADD_RE = re.compile(
    r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (\d+)"
)
_CONV_CHANNELS_RE = re.compile(r"expected input\[([\d, ]+)\] to have (\d+) channels, but got (\d+) channels")

HINT_NOT_DONE = "this exercise is not done yet: fill in the cell above"

# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------


def fail(where: str, problem: str, hints: Sequence[str] | str | None = None) -> AssertionError:
    """An AssertionError whose first line says where and what, followed by one line per hint."""
    if isinstance(hints, str):
        hints = [hints]
    lines = [f"{where}: {problem}"]
    seen: set[str] = set()
    for hint in hints or ():
        if hint and hint not in seen:
            seen.add(hint)
            lines.append(f"Hint: {hint}")
    return short_in_notebooks(AssertionError("\n".join(lines)))


def short_in_notebooks(error: AssertionError) -> AssertionError:
    """Let Jupyter show only the message, not a wall of traceback through this package: IPython prints
    what an exception's ``_render_traceback_()`` returns instead of the traceback. Elsewhere (pytest,
    plain Python) nothing changes; ``ename``/``evalue`` stay those of an AssertionError."""
    error._render_traceback_ = lambda: [f"AssertionError: {error}"]  # type: ignore[attr-defined]
    return error


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 300 else line[:297] + "..."


def _student_line(exc: BaseException) -> str:
    """`` (at `code`)`` for the innermost frame of the student's own code, if there is one.

    For an exception the grader's judge raises on behalf of the student's code (which ran in another
    process; see resnet_lab.grade.remote), the line found there."""
    remote = getattr(exc, "_resnet_lab_student_line", None)
    if isinstance(remote, str):
        return remote
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = os.path.abspath(frame.filename)
        if path.startswith(_TORCH_DIR) or path.startswith(_PACKAGE_DIR):
            continue
        return f" (at `{frame.line.strip()}`)" if frame.line else ""
    return ""


def _describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_first_line(exc)}{_student_line(exc)}"


class NotDone(AssertionError):
    """A checker's failure because the exercise is still a stub (its code raised NotImplementedError).

    The grader tells "not attempted" from "failed" by this class, not by the message's text."""


def not_done(checker: str, exc: BaseException) -> AssertionError:
    detail = _first_line(exc)
    return short_in_notebooks(
        NotDone(f"{checker}: {HINT_NOT_DONE} (your code raised NotImplementedError{': ' + detail if detail else ''})")
    )


# --------------------------------------------------------------------------------------
# Calling student code safely
# --------------------------------------------------------------------------------------


def after_student_code() -> None:
    """Runs each time the student's code returns to a checker (through :func:`call_student` or
    :func:`forward`). Does nothing; the grader's answer process replaces it with a tamper check, so a
    patch made inside the student's code is caught before the checker compares anything."""


def call_student(
    checker: str,
    where: str,
    what: str,
    fn: Callable[..., Any],
    *args: Any,
    hints: Callable[[BaseException], list[str]] | None = None,
    **kwargs: Any,
) -> Any:
    """Call student code; NotImplementedError and every other exception become AssertionErrors."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise not_done(checker, exc) from None
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything the student's code raises is reported
        extra = hints(exc) if hints else []
        if isinstance(exc, TypeError) and "argument" in str(exc):
            extra = [*extra, f"the checker calls {what}: does your code take these arguments?"]
        raise fail(where, f"{what} raised {_describe_exception(exc)}", extra) from None
    finally:
        after_student_code()


def build(
    checker: str, where: str, call_text: str, factory: Callable[..., Any], *args: Any, **kwargs: Any
) -> nn.Module:
    module = call_student(checker, where, call_text, factory, *args, **kwargs)
    if isinstance(module, tuple) and module and isinstance(module[0], nn.Module):
        module = module[0]
    if not isinstance(module, nn.Module):
        raise fail(
            where,
            f"{call_text} returned {type(module).__name__}, expected an nn.Module",
            "return the module you built (for a function: `return nn.Sequential(...)`)",
        )
    return module


def forward(
    checker: str,
    where: str,
    module: nn.Module,
    x: torch.Tensor,
    hints: Callable[[BaseException, Tracer], list[str]] | None = None,
) -> tuple[torch.Tensor, Tracer]:
    """Run ``module`` on a copy of ``x`` in eval mode; report exceptions and in-place changes of the input."""
    module.eval()
    x_in = x.clone()
    tracer = Tracer(module)
    try:
        with torch.no_grad(), tracer:
            out = module(x_in)
    except NotImplementedError as exc:
        raise not_done(checker, exc) from None
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001
        extra = hints(exc, tracer) if hints else []
        raise fail(
            where, f"your forward raised {_describe_exception(exc)}", extra or generic_error_hints(exc)
        ) from None
    finally:
        after_student_code()
    if not torch.equal(x_in, x):
        changed = "lost its negative values" if bool((x < 0).any()) and not bool((x_in < 0).any()) else "was changed"
        raise fail(
            where,
            f"your forward modified its input tensor in place: after the call, the input {changed}",
            "an in-place operation overwrote a tensor that the shortcut still needs: nn.ReLU(inplace=True) "
            "(or `x += ...`, `x.relu_()`) applied to the block's input x changes the very tensor that is added "
            "back at the end. Apply in-place ReLU only to fresh tensors (a BN output, the sum after the add), "
            "or use inplace=False.",
        )
    if not isinstance(out, torch.Tensor):
        raise fail(
            where, f"your forward returned {type(out).__name__}, expected a tensor", "end forward with `return out`"
        )
    return out, tracer


def generic_error_hints(exc: BaseException) -> list[str]:
    text = str(exc)
    m = _ADD_RE.search(text)
    if m:
        a, b, dim = m.groups()
        what = "channels" if dim == "1" else "height/width"
        return [
            f"two tensors that are added (or combined) disagree in {what}: {a} vs {b}. "
            "At a residual add the branch and the shortcut must have exactly the same shape."
        ]
    if "mat1 and mat2" in text:
        return [
            "the classifier got a different number of features than it expects: "
            "is the pooling before the fc layer global (nn.AdaptiveAvgPool2d(1))?"
        ]
    m = _CONV_CHANNELS_RE.search(text)
    if m:
        return [
            f"a convolution built for {m.group(2)} input channels received {m.group(3)}: "
            "check the in_channels of each conv against the tensor it is applied to"
        ]
    return []


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=ATOL, rtol=RTOL)


# --------------------------------------------------------------------------------------
# The comparison engine shared by the module checkers
# --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    student: nn.Module
    reference: nn.Module
    x: torch.Tensor
    ref_out: torch.Tensor
    stu_out: torch.Tensor  # with the reference's weights copied in
    tracer: Tracer


@dataclass
class Diagnosis:
    """How a checker explains a difference: each field returns hint lines (or raises, for ``after_trace``).

    static: hints from the student's module alone (its layers), added to every failure.
    on_error: hints for an exception raised by the student's forward, given the trace so far.
    on_mismatch: hints when outputs differ with the same weights, given the first such outcome.
    on_shape: hints when the output shape differs, given (got, expected).
    after_trace: called with (student trace, reference trace) after the first traced forward; may raise.
    """

    static: Callable[[], list[str]] = field(default=lambda: [])
    on_error: Callable[[BaseException, Tracer], list[str]] | None = None
    on_mismatch: Callable[[Outcome], list[str]] | None = None
    on_shape: Callable[[tuple, tuple], list[str]] | None = None
    after_trace: Callable[[Tracer, Tracer], None] | None = None


def compare(
    checker: str,
    where: str,
    student: nn.Module,
    reference: nn.Module,
    x: torch.Tensor,
    diagnosis: Diagnosis | None = None,
    extra_inputs: Sequence[torch.Tensor] = (),
) -> None:
    """Parameters, then a traced forward, then outputs with weights copied (on ``x`` and ``extra_inputs``).

    ``x`` is a batch (N, C, H, W) for the module; ``diagnosis`` says how to explain a difference.
    """
    d = diagnosis or Diagnosis()
    static_hints = d.static
    generator = torch.Generator().manual_seed(SEED)
    _randomize_norms(reference, generator)
    reference.eval()
    student.eval()

    problem = parameter_problem(student, reference)
    if problem:
        raise fail(where, problem, static_hints())

    def on_error(exc: BaseException, tracer: Tracer) -> list[str]:
        return (d.on_error(exc, tracer) if d.on_error else []) + static_hints() + generic_error_hints(exc)

    # One traced run with the student's own weights: it shows the execution order used to pair layers.
    _, stu_tracer = forward(checker, where, student, x, on_error)
    with torch.no_grad(), Tracer(reference) as ref_tracer:
        ref_first = reference(x.clone())
    if d.after_trace is not None:
        d.after_trace(stu_tracer, ref_tracer)

    candidates = _weight_matchings(reference, ref_tracer, student, stu_tracer)
    if not candidates:
        raise fail(
            where,
            "could not pair your layers with the reference's (same parameter shapes, different roles)",
            static_hints() or ["build the layers in the same order as the reference: conv1, bn1, conv2, bn2, ..."],
        )

    first: Outcome | None = None
    for k, inputs in enumerate((x, *extra_inputs)):
        if k == 0:
            ref_out = ref_first
        else:
            with torch.no_grad():
                ref_out = reference(inputs.clone())
        matched = False
        for pairs in candidates:
            _copy_pairs(pairs)
            stu_out, tracer = forward(checker, where, student, inputs, on_error)
            if tuple(stu_out.shape) != tuple(ref_out.shape):
                hints = (d.on_shape(tuple(stu_out.shape), tuple(ref_out.shape)) if d.on_shape else []) + static_hints()
                raise fail(
                    where,
                    f"output shape for input {fmt_shape(inputs.shape)}: expected "
                    f"{fmt_shape(ref_out.shape)}, got {fmt_shape(stu_out.shape)}",
                    hints,
                )
            if close(stu_out, ref_out):
                matched = True
                break
            if first is None:
                first = Outcome(student, reference, inputs, ref_out, stu_out, tracer)
        if not matched:
            assert first is not None
            hints = (d.on_mismatch(first) if d.on_mismatch else []) + static_hints()
            if not hints:
                hints = [
                    "check the order of operations against the reference: conv -> BN -> ReLU, conv -> BN, "
                    "add the shortcut, then ReLU"
                ]
            raise fail(
                where, "shapes and parameter counts match, but the outputs differ (with the same weights)", hints
            )


# --------------------------------------------------------------------------------------
# Running a checker's configurations and reporting success
# --------------------------------------------------------------------------------------

Config = Any
_RESULTS: contextvars.ContextVar[list[tuple[Config, AssertionError | None]] | None] = contextvars.ContextVar(
    "resnet_lab_check_results", default=None
)


@contextlib.contextmanager
def collecting() -> Iterator[list[tuple[Config, AssertionError | None]]]:
    """Record every configuration's result instead of stopping at the first failure (used by the grader).

    Inside the block a checker still raises its first failure at the end, but the yielded list holds
    ``(configuration, None or the AssertionError)`` for each configuration it tried, for partial credit.
    """
    results: list[tuple[Config, AssertionError | None]] = []
    token = _RESULTS.set(results)
    try:
        yield results
    finally:
        _RESULTS.reset(token)


def run_configs(configs: Sequence[Config], check_one: Callable[[Config], None]) -> int:
    """Call ``check_one`` on each configuration; raise the first failure. Returns how many were checked.

    For a student the first failing configuration stops the checker; under :func:`collecting` every
    configuration runs, so a grader can give partial credit. Not-done exercises stop at once either way.
    """
    results = _RESULTS.get()
    first: AssertionError | None = None
    for i, config in enumerate(configs):
        try:
            check_one(config)
        except AssertionError as exc:
            if results is None:
                raise
            results.append((config, exc))
            if isinstance(exc, NotDone):  # nothing to gain from trying the others
                results.extend((c, exc) for c in configs[i + 1 :])
                raise
            first = first or exc
        else:
            if results is not None:
                results.append((config, None))
    if first is not None:
        raise first
    return len(configs)


def n_match(n: int, what: str = "configurations") -> str:
    """``"4 configurations match"`` / ``"1 configuration matches"``."""
    return f"{n} {what} match" if n != 1 else f"1 {what.removesuffix('s')} matches"


def passed(checker: str, what: str) -> None:
    """Print the success line: what was compared, and that these checks passed (not that nothing else could fail).

    A teacher's hidden configurations, or a property nobody checked, may still find a mistake, so the line
    names what it compared and claims no more.
    """
    print(f"✓ {checker}: {what}: these checks passed")
