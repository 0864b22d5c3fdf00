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

The package:

* :mod:`~resnet_lab.checks.engine`: calling student code safely, tracing, pairing layers, comparing;
* :mod:`~resnet_lab.checks.diagnosis`: turning a difference into a hint;
* the public checkers, one module per kind of exercise, listed in ``CHECKER_MODULES``;
* :mod:`~resnet_lab.checks.exercises` and :mod:`~resnet_lab.checks.hints`: the exercises as the lesson
  notebooks define them, and ``checks.hint(name)`` / ``checks.solution(name)`` for a stuck student.

To add a module of checkers, write ``resnet_lab/checks/<name>.py`` with an ``__all__`` of its public
checkers and add its name to ``CHECKER_MODULES`` below: that one line makes its checkers
``checks.<checker>(...)`` and lists them in ``checks.CHECKERS``. A checker takes the student's
class or function and ``configs=None`` (its default configurations), runs them through
``engine.run_configs`` (so the grader can give partial credit and add hidden configurations), compares
with ``engine.compare(..., Diagnosis(...))`` and ends with ``engine.passed(name, what was compared)``.
An exercise cell in a lesson whose check cell calls it is then found by hints and the grader as well.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

CHECKER_MODULES: tuple[str, ...] = (
    "blocks",  # conv_output_size, residual_unit, plain_unit, basic_block, bottleneck, plain_switch
    "networks",  # stage, cifar_net, imagenet_resnet, small_input_net, classifier_head, zero_pad_shortcut
    "formulas",  # bottleneck_parameters, stage_map_sizes (notebooks 03, 04)
    "bug_hunt",  # fix_bottleneck, fix_basic_block, fix_resnet50 (notebook 09)
    "training",  # plain_twin, degradation_gaps (notebook 07), warmup_cosine, train_step (notebook 08)
    "family",  # preact_block, squeeze_excitation, se_block, grouped_bottleneck (notebook 10)
    "probes_exercises",  # lesion_block, filter_normalize (notebook 11)
    "inside",  # grad_cam (notebook 12)
    "speed",  # triangular_lr, ema_update, flip_tta (notebook 13)
)

CHECKERS: dict[str, Callable[..., None]] = {}
"""Every public checker by name, e.g. ``CHECKERS["basic_block"]``."""

for _module_name in CHECKER_MODULES:
    _module = importlib.import_module(f"{__name__}.{_module_name}")
    for _name in _module.__all__:
        if _name in CHECKERS:
            raise ImportError(f"checker {_name!r} of resnet_lab.checks.{_module_name} is already defined elsewhere")
        CHECKERS[_name] = getattr(_module, _name)
        globals()[_name] = CHECKERS[_name]
del _module_name, _module, _name

from .hints import hint, solution  # noqa: E402  (hints for a stuck student; not checkers)

__all__ = [*CHECKERS, "CHECKERS", "CHECKER_MODULES", "hint", "solution"]
