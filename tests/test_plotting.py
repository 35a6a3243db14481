"""Figures: whole-epoch ticks, full-scale sweeps with error bars, linear operation bars."""
import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from minisnn import plotting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def figures(monkeypatch):
    """The Figure objects the plotting functions save, for inspection."""
    saved = []
    original = plotting._save

    def keep(fig, path):
        saved.append(fig)
        return original(fig, path)
    monkeypatch.setattr(plotting, "_save", keep)
    return saved


def test_one_epoch_curves_have_whole_epoch_ticks(tmp_path, figures):
    plotting.plot_curves([{"epoch": 1, "train_loss": 0.2, "train_accuracy": 0.9,
                           "test_loss": 0.1, "test_accuracy": 0.95}], tmp_path / "c.png")
    for ax in figures[0].axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1.0]
    assert "^" not in figures[0].axes[0].get_ylabel().replace("e_j^2", "")   # mathtext, no raw caret
    assert (tmp_path / "c.png").stat().st_size > 0


def test_runs_share_one_panel_in_percent_and_skip_missing_values(tmp_path, figures):
    runs = {"snn": [{"epoch": 1, "test_accuracy": 0.4}, {"epoch": 2, "test_accuracy": 0.5}],
            "ann": [{"epoch": 1, "test_accuracy": None}, {"epoch": 2, "test_accuracy": 0.6}]}
    plotting.plot_runs(runs, tmp_path / "r.png", title="t")
    ax, = figures[0].axes
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert lines == {"snn": ([1, 2], [40.0, 50.0]), "ann": ([2], [60.0])}
    assert ax.get_xlim() == (0.5, 2.5)                                 # whole epochs, as plot_curves
    assert "%" in ax.get_ylabel() and (tmp_path / "r.png").stat().st_size > 0


def test_sweep_full_scale_error_bars_and_sample_count(tmp_path, figures):
    sweep = [{"T": t, "accuracy": a, "energy_snn_j": t * 1e-7} for t, a in ((10, 0.984), (50, 0.982))]
    plotting.plot_sweep(sweep, 1000, tmp_path / "s.png")
    acc = figures[0].axes[0]
    assert acc.get_ylim() == (0, 100) and "1000 images" in acc.get_ylabel()
    assert acc.containers and acc.containers[0].has_yerr


def test_operations_linear_with_labels(tmp_path, figures):
    layers = [{"name": "conv2", "sops": 36.5e6, "macs": 4.9e6}, {"name": "output", "sops": 7e3, "macs": 2e3}]
    plotting.plot_operations(layers, tmp_path / "o.png")
    ax = figures[0].axes[0]
    assert ax.get_yscale() == "linear"
    labels = [t.get_text() for t in ax.texts]
    assert "36.50 M" in labels and "7.0 k" in labels


def test_committed_sweep_figure_matches_its_json():
    report = json.loads((ROOT / "experiments/results/analyze-lenet5-mnist.json").read_text())
    assert report["samples"] > 0 and all(0 <= s["accuracy"] <= 1 for s in report["sweep"])
    assert (ROOT / "experiments/results/sweep-lenet5-mnist.png").is_file()


def test_one_epoch_curves_say_so_on_full_scales(tmp_path, figures):
    plotting.plot_curves([{"epoch": 1, "train_loss": 0.2, "train_accuracy": 0.9,
                           "test_loss": 0.1, "test_accuracy": 0.95}], tmp_path / "c.png")
    loss, acc = figures[0].axes
    assert acc.get_ylim() == (0, 100) and loss.get_ylim()[0] == 0
    assert all("one epoch so far" in ax.texts[0].get_text() for ax in (loss, acc))


def test_sweep_legend_says_what_the_error_bars_are(tmp_path, figures):
    plotting.plot_sweep([{"T": t, "accuracy": 0.9, "energy_snn_j": 1e-6 * t} for t in (10, 20)], 500,
                        tmp_path / "s.png")
    acc, energy = figures[0].axes
    assert "95 % binomial interval" in acc.get_legend().get_texts()[0].get_text()
    assert "uJ" in energy.get_ylabel()
