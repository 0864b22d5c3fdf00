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


def _degradation_panels(nets: Mapping[str, Any], ax: Axes | None) -> tuple[Figure, list[Axes], list[bool]]:
    """The figure, one panel per kind of net present (plain first, then residual) and those kinds.

    With ``ax`` every panel is that axes and the figure is ``ax``'s; otherwise a new figure with shared y-axis.
    """
    kinds = [kind for kind in (False, True) if any(net["residual"] == kind for net in nets.values())]
    if ax is None:
        fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), sharey=True, squeeze=False)
        return fig, list(axes[0]), kinds
    return ax.figure, [ax] * len(kinds), kinds


def _nets_of_kind(nets: Mapping[str, Any], residual: bool) -> list[tuple[str, Any]]:
    """(name, net) for the nets of ``nets`` that are residual (or plain), in order."""
    return [(name, net) for name, net in nets.items() if net["residual"] == residual]


def _label_panel(panel: Axes, residual: bool, xlabel: str) -> None:
    """Title, x label (integer ticks per epoch) and grid of one degradation panel."""
    panel.set_title("residual nets (solid)" if residual else "plain nets (dashed)")
    panel.set_xlabel(xlabel)
    if xlabel == "epoch":
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
    panel.grid(alpha=0.3)


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
    fig, axes, kinds = _degradation_panels(nets, ax)
    xlabel = "epoch"
    for panel, residual in zip(axes, kinds):
        for name, net in _nets_of_kind(nets, residual):
            x, y, xlabel = _training_curve(net["history"], per)
            panel.plot(
                x, y, linestyle="-" if residual else "--", linewidth=1.8 if residual else 1.5,
                color=DEPTH_COLOURS.get(net["depth"]), label=f"{name}: {net['final']['train_error']:.1f} % over its last epoch",
            )  # fmt: skip
        _label_panel(panel, residual, xlabel)
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
    history: History | Mapping[str, Any],
    *,
    title: str = "Learning curves",
    ax: Axes | None = None,
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
    ax.plot(
        epochs,
        values["train_error"],
        "--",
        marker="o",
        color=SPLIT_COLOURS["train"],
        label="training error (augmented batches)",
    )
    validated = [(e, v) for e, v in zip(epochs, values["val_error"]) if v is not None]  # eval_every > 1 skips epochs
    if validated:
        ax.plot(*zip(*validated), "-", marker="o", color=SPLIT_COLOURS["val"], label="validation error")
    tested = [(e, t) for e, t in zip(epochs, values["test_error"]) if t is not None]
    if tested:
        ax.plot(*zip(*tested), "-", marker="s", color=SPLIT_COLOURS["test"], label="test error")
    if picked_epoch is not None:
        ax.axvline(
            picked_epoch,
            color="0.3",
            linestyle=":",
            linewidth=1.2,
            label=f"epoch {picked_epoch}: lowest validation error, kept",
        )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Several seeds of the degradation experiment (notebook 07) and the probes of notebook 11

from collections.abc import Sequence  # noqa: E402  (kept with the functions below, which alone need it)

# plain nets dashed, residual nets solid (as in Figure 6); one colour per kind in the probe plots
KIND_STYLE = {False: {"color": "tab:red", "linestyle": "--"}, True: {"color": "tab:blue", "linestyle": "-"}}


def _seed_curves(runs: Mapping[str, Mapping[str, Any]], name: str, per: str) -> tuple[Any, Any, Any, Any, str]:
    """x, mean, min and max over seeds of one net's training-error curve (arrays), and the x label."""
    import numpy as np

    curves = [_training_curve(run["nets"][name]["history"], per) for run in runs.values()]
    length = min(len(c[1]) for c in curves)
    values = np.array([c[1][:length] for c in curves], dtype=float)
    return np.asarray(curves[0][0][:length]), values.mean(0), values.min(0), values.max(0), curves[0][2]


def plot_degradation_seeds(record: Mapping[str, Any], *, per: str = "iteration", ax: Axes | None = None) -> Figure:
    """Figure 6 over several seeds: the mean training error per net, with a band from the lowest to the highest seed.

    ``record``: a several-seed degradation record (``experiments.run_degradation_seeds`` /
    ``load_record("degradation-seeds")``). Layout as ``plot_degradation``: plain nets dashed (left),
    ResNets solid (right), one colour per depth, shared y-axis; with ``ax`` everything on that axes.
    """
    runs = record["runs"]
    first = next(iter(runs.values()))["nets"]
    fig, axes, kinds = _degradation_panels(first, ax)
    xlabel = "epoch"
    for panel, residual in zip(axes, kinds):
        for name, net in _nets_of_kind(first, residual):
            x, mean, low, high, xlabel = _seed_curves(runs, name, per)
            finals = [run["nets"][name]["final"]["train_error"] for run in runs.values()]
            colour = DEPTH_COLOURS.get(net["depth"])
            panel.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
            panel.plot(x, mean, linestyle="-" if residual else "--", linewidth=1.8 if residual else 1.5, color=colour,
                       label=f"{name}: final {sum(finals) / len(finals):.1f}% ({min(finals):.1f}-{max(finals):.1f})")  # fmt: skip
        _label_panel(panel, residual, xlabel)
        panel.legend(title=f"mean of {len(runs)} seeds; band: min to max")
    axes[0].set_ylabel("training error (%)")
    dataset = next(iter(runs.values()))["dataset"]["name"]
    text = f"Training error over {len(runs)} seeds (mean, band = range), plain dashed vs residual solid ({dataset})"
    if ax is None:
        fig.suptitle(text)
    else:
        ax.set_title(text)
    fig.tight_layout()
    return fig


def _finish_log_plot(fig: Figure, ax: Axes, xlabel: str, ylabel: str, title: str) -> Figure:
    """Log y-axis, labels, title, grid and legend on ``ax``; lays out ``fig`` and returns it."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_layer_gradient_norms(curves: Mapping[str, Mapping[str, float]], *, title: str, ax: Axes | None = None,
                              residual: Mapping[str, bool] | None = None) -> Figure:  # fmt: skip
    """Gradient norm per weight layer (x: layer index in forward order; y: log scale), one line per entry of ``curves``.

    ``curves``: {label: {parameter name: norm}} (``probes.layer_gradient_norms``); ``residual``:
    {label: True/False} picks solid/dashed and colour (plain dashed red, residual solid blue).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    else:
        fig = ax.figure
    for label, norms in curves.items():
        style = KIND_STYLE.get(residual.get(label)) if residual else None
        ax.plot(range(1, len(norms) + 1), list(norms.values()), marker=".", label=label, **(style or {}))
    return _finish_log_plot(fig, ax, "weight layer (1 = first conv, last = fc)", "gradient norm ||dL/dW||", title)


def plot_lesions(single: Mapping[str, Mapping[str, float]], random: Mapping[str, Mapping[int, Any]],
                 intact: Mapping[str, float], *, residual: Mapping[str, bool], downsampling: Sequence[str] = (),
                 title: str = "Lesion study") -> Figure:  # fmt: skip
    """Two panels: test error after deleting each single block (left), and after deleting k random blocks (right).

    single: {net: {block: error %}} (``probes.single_block_lesions``); random: {net: {k: errors over draws}}
    (``probes.random_lesions``), drawn as the mean with a band from the lowest to the highest draw;
    intact: {net: error % with no block deleted}; downsampling: block names marked on the left panel.
    """
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3), sharey=True)
    for net, errors in single.items():
        style = KIND_STYLE[residual[net]]
        names = list(errors)
        left.plot(
            range(1, len(names) + 1),
            list(errors.values()),
            marker="o",
            markersize=3.5,
            label=f"{net}, one block deleted",
            **style,
        )
        left.axhline(
            intact[net], color=style["color"], linewidth=0.8, linestyle=":", label=f"{net}, intact ({intact[net]:.1f}%)"
        )
        for i, name in enumerate(names, start=1):
            if name in downsampling:
                left.axvline(i, color="0.6", linewidth=0.8)
    if downsampling:
        left.plot([], [], color="0.6", linewidth=0.8, label="downsampling block (grey lines)")
    left.set_xlabel("deleted block (1 = first block of layer1)")
    left.set_ylabel("test error (%)")
    left.set_title("Deleting one block")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    for net, by_k in random.items():
        style = KIND_STYLE[residual[net]]
        ks = np.array(sorted(by_k))
        values = [np.asarray(by_k[k], dtype=float) for k in ks]
        mean = np.array([v.mean() for v in values])
        right.fill_between(
            ks, [v.min() for v in values], [v.max() for v in values], color=style["color"], alpha=0.2, linewidth=0
        )
        right.plot(
            ks, mean, marker="o", markersize=3.5, label=f"{net} (mean of {len(values[0])} draws, band: range)", **style
        )
    right.axhline(90, color="0.3", linewidth=0.8, linestyle=":", label="chance (10 classes)")
    right.set_xlabel("number of blocks deleted at random (downsampling blocks kept)")
    right.set_title("Deleting k random blocks")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_loss_lines(lines: Mapping[str, Mapping[str, Any]], *, residual: Mapping[str, bool], title: str, xlabel: str,
                    ax: Axes | None = None) -> Figure:  # fmt: skip
    """Loss along a 1-D line (``probes.loss_slice_1d`` or ``probes.interpolate``), one curve per net, log y-axis."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    for label, line in lines.items():
        ax.plot(line["alpha"], line["loss"], marker=".", label=label, **KIND_STYLE[residual[label]])
    return _finish_log_plot(fig, ax, xlabel, "training loss (cross-entropy, log scale)", title)


def plot_loss_contours(
    surfaces: Mapping[str, Mapping[str, Any]], *, title: str, levels: Sequence[float] | None = None
) -> Figure:
    """2-D loss slices (``probes.loss_slice_2d``) side by side with the same contour levels and one colour bar.

    Levels are log-spaced (16 of them) from the lowest loss of all surfaces up to 20 unless given; higher
    losses are drawn in the top colour. The trained weights sit at (0, 0) (marked).
    """
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter

    if levels is None:
        low = min(float(np.min(s["loss"])) for s in surfaces.values())
        levels = np.geomspace(max(low, 1e-3), max(20.0, 2 * low), 16)
    levels = np.asarray(levels, dtype=float)
    fig, axes = plt.subplots(1, len(surfaces), figsize=(5 * len(surfaces) + 1.2, 4.8), squeeze=False, sharey=True,
                             layout="constrained")  # fmt: skip
    filled = None
    for ax, (label, s) in zip(axes[0], surfaces.items()):
        loss = np.clip(s["loss"], levels[0], levels[-1])
        filled = ax.contourf(
            s["alpha"], s["beta"], loss, levels=levels, norm=LogNorm(levels[0], levels[-1]), cmap="viridis"
        )
        ax.contour(s["alpha"], s["beta"], loss, levels=levels, colors="white", linewidths=0.4)
        centre = float(s["loss"][np.argmin(np.abs(s["beta"])), np.argmin(np.abs(s["alpha"]))])
        ax.plot(
            0,
            0,
            marker="*",
            color="white",
            markeredgecolor="black",
            markersize=12,
            linestyle="none",
            label=f"trained weights (loss {centre:.3f})",
        )
        ax.set_title(label)
        ax.set_xlabel("alpha (direction 1, filter-normalised)")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    axes[0][0].set_ylabel("beta (direction 2, filter-normalised)")
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if levels[0] <= t <= levels[-1]]
    bar = fig.colorbar(filled, ax=list(axes[0]), shrink=0.9, ticks=ticks or None)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    bar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    bar.set_label(f"training loss (log scale; above {levels[-1]:g} drawn as {levels[-1]:g})")
    fig.suptitle(title)
    return fig


def plot_shattering(result: Mapping[str, Any], *, title: str, ax: Axes | None = None) -> Figure:
    """Input-gradient correlation of nearby inputs against depth (``probes.shattering_vs_depth``), plain vs residual."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    else:
        fig = ax.figure
    markers = ("o", "s", "^", "v")
    for j, scale in enumerate(result["scale"]):
        for kind, residual in (("plain", False), ("residual", True)):
            ax.plot(result["depth"], result[kind][:, j], marker=markers[j % len(markers)], alpha=1.0 if j == 0 else 0.6,
                    label=f"{kind}, inputs {scale:g} std apart", **KIND_STYLE[residual])  # fmt: skip
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel("depth (weighted layers) at initialization")
    ax.set_ylabel("correlation of input gradients")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
