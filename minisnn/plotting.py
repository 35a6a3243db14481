"""Figures, drawn with matplotlib's Agg backend and written atomically (temporary name, rename).

* :func:`plot_curves`: training curves from the per-epoch records ``python -m minisnn.train``
  keeps in ``metrics.json`` (keys ``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``,
  ``val_accuracy``, ``test_loss``, ``test_accuracy``; missing or None values are skipped);
* :func:`plot_runs`: one accuracy per epoch of several runs in one panel, to compare them;
* :func:`plot_sweep`: accuracy and energy against the evaluation time steps T, on the full
  0-100 % scale with binomial error bars, so a difference of two images does not look like a
  collapse;
* :func:`plot_operations`: synaptic operations (SNN) and MACs (ANN) per layer, on a linear
  scale so the small layers are not hidden, each bar labelled with its value.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

from .fileio import atomic_write_bytes


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Render ``fig`` as PNG in memory, then write it atomically (a full disk: one OSError)."""
    path = Path(path)
    image = io.BytesIO()
    fig.savefig(image, dpi=100, format="png")
    atomic_write_bytes(path, image.getvalue())
    return path


def _series(history, key):
    xs, ys = [], []
    for row in history:
        value = row.get(key)
        if value is not None:
            xs.append(row["epoch"])
            ys.append(value)
    return xs, ys


def _epoch_axis(ax, epochs):
    """An epoch x-axis: whole-epoch ticks and limits (even for a single epoch), grid, legend."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs:
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def plot_curves(history, path, title=None):
    """Write a two-panel figure (loss | accuracy in %) of ``history`` to ``path`` (PNG).

    The file is written under a temporary name and renamed, so a reader never sees half a PNG.
    Returns the path.
    """
    fig = _figure((10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    styles = {"train": "-", "val": "--", "test": ":"}
    for split, style in styles.items():
        xs, ys = _series(history, f"{split}_loss")
        if xs:
            ax_loss.plot(xs, ys, style, marker="o", markersize=3, label=split)
        xs, ys = _series(history, f"{split}_accuracy")
        if xs:
            ax_acc.plot(xs, [100.0 * y for y in ys], style, marker="o", markersize=3, label=split)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel(r"loss per sample, $\frac{1}{2}\sum_j e_j^2$")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    epochs = [row["epoch"] for row in history]
    for ax in (ax_loss, ax_acc):
        _epoch_axis(ax, epochs)
    if len(set(epochs)) == 1:           # one point per split: full scales, and say so
        ax_loss.set_ylim(bottom=0)
        ax_acc.set_ylim(0, 100)
        for ax in (ax_loss, ax_acc):
            ax.text(0.5, 0.5, "one epoch so far: one point per split;\nthe curves grow with the epochs",
                    transform=ax.transAxes, ha="center", va="center", color="gray", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_runs(runs, path, key="test_accuracy", title=None, ylabel=None):
    """Write one panel with ``key`` (an accuracy, in %) per epoch of each run in ``runs``
    (``{label: history}``, histories as in :func:`plot_curves`) to ``path`` (PNG)."""
    fig = _figure((7, 4.5))
    ax = fig.subplots()
    for label, history in runs.items():
        xs, ys = _series(history, key)
        if xs:
            ax.plot(xs, [100.0 * y for y in ys], marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or key.replace("_", " ") + " (%)")
    _epoch_axis(ax, [row["epoch"] for history in runs.values() for row in history])
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_sweep(sweep, samples, path, title=None):
    """Accuracy (with 95 % binomial error bars over ``samples`` test images, full 0-100 %
    scale) and energy per inference against the time steps T of each ``sweep`` entry
    (``{"T", "accuracy", "energy_snn_j"}``, as ``python -m minisnn.analyze --sweep`` writes)."""
    fig = _figure((9, 3.8))
    ax_acc, ax_energy = fig.subplots(1, 2)
    ts = [s["T"] for s in sweep]
    acc = [100.0 * s["accuracy"] for s in sweep]
    err = [196.0 * math.sqrt(max(s["accuracy"] * (1 - s["accuracy"]), 1e-12) / samples) for s in sweep]
    ax_acc.errorbar(ts, acc, yerr=err, fmt="o-", capsize=3,
                    label=f"error bars: 95 % binomial interval\nof an accuracy on {samples} images")
    ax_acc.legend(loc="lower right", fontsize=8)
    ax_acc.set_ylim(0, 100)
    ax_acc.set_xlabel("time steps T")
    ax_acc.set_ylabel(f"test accuracy (%), {samples} images")
    ax_energy.plot(ts, [s["energy_snn_j"] * 1e6 for s in sweep], "s-", color="tab:red")
    ax_energy.set_ylim(bottom=0)
    ax_energy.set_xlabel("time steps T")
    ax_energy.set_ylabel("energy per inference (uJ, 45 nm)")
    for ax in (ax_acc, ax_energy):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _count(n):
    """2623742 -> '2.62 M', 4000 -> '4.0 k', 12 -> '12'."""
    if n >= 1e5:
        return f"{n / 1e6:.2f} M"
    return f"{n / 1e3:.1f} k" if n >= 1e3 else f"{n:.0f}"


def plot_operations(layers, path, title=None):
    """Per weighted layer: synaptic operations of the SNN and MACs of the equivalent ANN
    (``layers``: dicts with ``name``, ``sops``, ``macs``), linear scale, values on the bars."""
    rows = [r for r in layers if r.get("macs")]
    fig = _figure((max(6, 1.6 * len(rows) + 2), 4))
    ax = fig.subplots()
    pos = range(len(rows))
    for offset, key, label in ((-0.2, "sops", "SNN synaptic operations"), (0.2, "macs", "ANN MACs")):
        bars = ax.bar([p + offset for p in pos], [r[key] / 1e6 for r in rows], 0.4, label=label)
        ax.bar_label(bars, [_count(r[key]) for r in rows], fontsize=8)
    ax.set_xticks(list(pos), [r["name"] for r in rows])
    ax.set_ylabel("millions per inference")
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["plot_curves", "plot_operations", "plot_sweep"]
