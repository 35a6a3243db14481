"""Figures: training curves (loss and accuracy per epoch), drawn with matplotlib's Agg backend.

Only :func:`plot_curves` lives here so far; it takes the per-epoch records that
``python -m minisnn.train`` keeps in ``metrics.json`` (keys ``epoch``, ``train_loss``,
``train_accuracy``, ``val_loss``, ``val_accuracy``, ``test_loss``, ``test_accuracy``; missing
or None values are skipped).
"""
from __future__ import annotations

import os
from pathlib import Path


def _series(history, key):
    xs, ys = [], []
    for row in history:
        value = row.get(key)
        if value is not None:
            xs.append(row["epoch"])
            ys.append(value)
    return xs, ys


def plot_curves(history, path, title=None):
    """Write a two-panel figure (loss | accuracy in %) of ``history`` to ``path`` (PNG).

    The file is written under a temporary name and renamed, so a reader never sees half a PNG.
    Returns the path.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
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
    ax_loss.set_ylabel("loss per sample (1/2 sum e^2)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    from matplotlib.ticker import MaxNLocator
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, format="png")
    os.replace(tmp, path)
    return path


__all__ = ["plot_curves"]
