"""Figures: training curves and the degradation plot in the style of the paper's Figure 6."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .training import History

# One colour per depth, shared by the plain and the residual net of that depth, from the Okabe-Ito
# palette (distinguishable with the common colour-vision deficiencies): 20 blue vs 56 vermillion.
DEPTH_COLOURS = {20: "#0072B2", 32: "#009E73", 44: "#CC79A7", 56: "#D55E00", 110: "black"}
# Training / validation / test curves of one run, same palette.
SPLIT_COLOURS = {"train": "#0072B2", "val": "#D55E00", "test": "#009E73"}


def _as_dict(history: History | Mapping[str, Any]) -> Mapping[str, Any]:
    return history.to_dict() if isinstance(history, History) else history


def _merge_short_windows(steps: list[int], errors: list[float]) -> tuple[list[int], list[float]]:
    """Fold each logged window much shorter than the typical one into the window before it.

    Training logs the error over windows of about a tenth of an epoch; rounding leaves a last
    window of one batch at the end of some epochs (71 batches = 10 windows of 7 + 1). One batch's
    error is noisy and drew a spike at every epoch end; merged (weighted by batches) it doesn't.
    """
    sizes = [b - a for a, b in zip([0, *steps], steps)]
    typical = sorted(sizes)[len(sizes) // 2] if sizes else 0
    out_steps: list[int] = []
    out_errors: list[float] = []
    out_sizes: list[int] = []
    for step, error, size in zip(steps, errors, sizes):
        if out_steps and 2 * size < typical:
            total = out_sizes[-1] + size
            out_errors[-1] = (out_errors[-1] * out_sizes[-1] + error * size) / total
            out_steps[-1], out_sizes[-1] = step, total
        else:
            out_steps.append(step)
            out_errors.append(error)
            out_sizes.append(size)
    return out_steps, out_errors


def _training_curve(history: Mapping[str, Any], per: str) -> tuple[list[float], list[float], str]:
    """x values, training error (%) and the x-axis label, per "epoch" or per "iteration"."""
    if per == "iteration" and history.get("step"):
        steps, errors = _merge_short_windows(history["step"], history["step_train_error"])
        return steps, errors, "iteration"
    return history["epoch"], history["train_error"], "epoch"


def plot_degradation(record: Mapping[str, Any], *, per: str = "iteration", ax: Axes | None = None) -> Figure:
    """Figure 6 style: training error of plain nets (dashed) and ResNets (solid) against iterations.

    ``record``: a degradation run record (``experiments.run_degradation`` / ``load_record``).
    per="iteration" uses the windows of iterations logged during training (finer; a one-batch
    window at an epoch's end is merged into the window before it), "epoch" one point per epoch.
    Left panel plain nets, right panel ResNets, same y-axis, as in the paper (one panel if the
    record has only one kind). Unlike the paper, where dashed is training and bold is test error,
    dashed/solid here means plain/residual: every curve is training error. The legend gives each
    net's training error averaged over its last epoch (an epoch mean, not the curve's last point).
    With ``ax`` all curves share that axes, which gets a title of its own; the figure is left
    without a suptitle, so it can hold other panels.
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
                color=DEPTH_COLOURS.get(net["depth"]), label=f"{name}: {net['final']['train_error']:.1f} % over its last epoch",
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
        fig.suptitle(
            f"Training error, plain (dashed) vs residual (solid) nets ({dataset}, {record['config']['epochs']} epochs)\n"
            "laid out like He et al. Fig. 6, where dashed means training and bold means test error"
        )
    else:
        ax.set_title(f"Training error, plain (dashed) vs residual (solid) nets ({dataset})")
    fig.tight_layout()
    return fig


def plot_history(
    history: History | Mapping[str, Any], *, title: str = "Learning curves", ax: Axes | None = None,
    picked_epoch: int | None = None,
) -> Figure:
    """Training, validation and (where measured) test error in percent per epoch of one run (whole-epoch ticks).

    ``picked_epoch``: the epoch whose model was kept (chosen on validation); marked with a vertical line.
    """
    values = _as_dict(history)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    epochs = values["epoch"]
    ax.plot(epochs, values["train_error"], "--", marker="o", color=SPLIT_COLOURS["train"],
            label="training error (augmented batches)")
    ax.plot(epochs, values["val_error"], "-", marker="o", color=SPLIT_COLOURS["val"], label="validation error")
    tested = [(e, t) for e, t in zip(epochs, values["test_error"]) if t is not None]
    if tested:
        ax.plot(*zip(*tested), "-", marker="s", color=SPLIT_COLOURS["test"], label="test error")
    if picked_epoch is not None:
        ax.axvline(picked_epoch, color="0.3", linestyle=":", linewidth=1.2,
                   label=f"epoch {picked_epoch}: lowest validation error, kept")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
