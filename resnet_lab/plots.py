"""Figures: training curves and the degradation plot in the style of the paper's Figure 6."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .training import History

# one colour per depth, shared by the plain and the residual net of that depth
DEPTH_COLOURS = {20: "tab:orange", 32: "tab:blue", 44: "tab:green", 56: "tab:red", 110: "black"}


def _as_dict(history: History | Mapping[str, Any]) -> Mapping[str, Any]:
    return history.to_dict() if isinstance(history, History) else history


def _training_curve(history: Mapping[str, Any], per: str) -> tuple[list[float], list[float], str]:
    """x values, training error (%) and the x-axis label, per "epoch" or per "iteration"."""
    if per == "iteration" and history.get("step"):
        return history["step"], history["step_train_error"], "iteration"
    return history["epoch"], history["train_error"], "epoch"


def plot_degradation(record: Mapping[str, Any], *, per: str = "iteration", ax: Axes | None = None) -> Figure:
    """Figure 6 style: training error of plain nets (dashed) and ResNets (solid) against iterations.

    ``record``: a degradation run record (``experiments.run_degradation`` / ``load_record``).
    per="iteration" uses the windows of iterations logged during training (finer), "epoch" one
    point per epoch. Left panel plain nets, right panel ResNets, same y-axis, as in the paper
    (one panel if the record has only one kind). With ``ax`` all curves share that axes, which gets
    a title of its own; the figure is left without a suptitle, so it can hold other panels.
    """
    nets = record["nets"]
    kinds = [kind for kind in (False, True) if any(net["residual"] == kind for net in nets.values())]
    if ax is None:
        fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), sharey=True, squeeze=False)
        axes = list(axes[0])
    else:
        fig, axes = ax.figure, [ax] * len(kinds)
    xlabel = "epoch"
    for panel, residual in zip(axes, kinds):
        for name, net in nets.items():
            if net["residual"] != residual:
                continue
            x, y, xlabel = _training_curve(net["history"], per)
            panel.plot(
                x, y, linestyle="-" if residual else "--", linewidth=1.8 if residual else 1.5,
                color=DEPTH_COLOURS.get(net["depth"]), label=f"{name} (final {net['final']['train_error']:.1f}%)",
            )  # fmt: skip
        panel.set_title("residual nets (solid)" if residual else "plain nets (dashed)")
        panel.set_xlabel(xlabel)
        if xlabel == "epoch":
            panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.grid(alpha=0.3)
        panel.legend()
    axes[0].set_ylabel("training error (%)")
    dataset = record.get("dataset", {}).get("name", "")
    if ax is None:
        fig.suptitle(f"Training error, plain (dashed) vs residual (solid) nets, as in He et al. Fig. 6 ({dataset}, {record.get('mode', '')} mode)")
    else:
        ax.set_title(f"Training error, plain (dashed) vs residual (solid) nets ({dataset})")
    fig.tight_layout()
    return fig


def plot_history(history: History | Mapping[str, Any], *, title: str = "Learning curves", ax: Axes | None = None) -> Figure:
    """Training, validation and (where measured) test error in percent per epoch of one run (whole-epoch ticks)."""
    values = _as_dict(history)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    epochs = values["epoch"]
    ax.plot(epochs, values["train_error"], "--", marker="o", label="training error (augmented batches)")
    ax.plot(epochs, values["val_error"], "-", marker="o", label="validation error")
    tested = [(e, t) for e, t in zip(epochs, values["test_error"]) if t is not None]
    if tested:
        ax.plot(*zip(*tested), "-", marker="s", label="test error")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
