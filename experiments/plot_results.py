"""Redraw the committed figures of ``experiments/results/`` from their JSON.

    python experiments/plot_results.py

``analyze-lenet5-mnist.json`` (written by ``python -m minisnn.analyze ... --sweep``) gives
``sweep-lenet5-mnist.png`` (accuracy and energy against T) and ``operations-lenet5-mnist.png``
(synaptic operations and MACs per layer); ``analyze-vgg7-cifar10-T30-epoch3.json`` gives
``sweep-vgg7-cifar10.png`` and ``analyze-vgg9-cifar10-T20-epoch8.json`` gives
``sweep-vgg9-cifar10.png``. The run records give ``curves-cifar10-vgg7.png`` (test accuracy per
epoch of the spiking VGG7 and its ANN, each with SGD and with Adam, and the SNN's further cycles
of the Adam schedule), ``curves-cifar10-vgg9.png`` (the spiking VGG9 with SGD, its second cycle
of the schedule, with Adam, and its ANN), ``curves-lenet5-mnist-fast.png`` (the fast preset and
its first run), ``curves-lenet5-fashion-mnist-fast.png`` (the fast preset on Fashion-MNIST) and
``timesteps-vgg7-cifar10.png`` (one short VGG7 training per T,
``experiments/timesteps_sweep.sh``).
"""
import json
from pathlib import Path

from minisnn.plotting import plot_operations, plot_runs, plot_sweep

RESULTS = Path(__file__).resolve().parent / "results"


def history(run, after=None):
    """The per-epoch rows of a committed run record (its metrics.json, as the CLI writes it); the
    epochs of a run started with ``--init-from`` count on from those of its starting checkpoint,
    or from the last epoch of the run ``after`` where that checkpoint came from a further cycle."""
    metrics = json.loads((RESULTS / run / "metrics.json").read_text())
    start = history(after)[-1]["epoch"] if after else (metrics.get("init_from") or {}).get("epoch", 0)
    return [{**row, "epoch": row["epoch"] + start} for row in metrics["epochs"]]


if __name__ == "__main__":
    report = json.loads((RESULTS / "analyze-lenet5-mnist.json").read_text())
    trained = report["T"]
    plot_sweep(report["sweep"], report["samples"], RESULTS / "sweep-lenet5-mnist.png",
               f"LeNet5 on MNIST (trained at T = {trained}), evaluated at other T")
    plot_operations(report["layers"], RESULTS / "operations-lenet5-mnist.png",
                    f"LeNet5 on MNIST, T = {trained}: operations per inference")
    for record, epochs in (("analyze-vgg7-cifar10-T30-epoch3.json", 3), ("analyze-vgg9-cifar10-T20-epoch8.json", 8)):
        report = json.loads((RESULTS / record).read_text())
        plot_sweep(report["sweep"], report["samples"], RESULTS / f"sweep-{report['model']}-cifar10.png",
                   f"{report['model'].upper()} on CIFAR-10 after {epochs} epochs (trained at T = {report['T']}), "
                   "evaluated at other T")
    runs = {"SNN, T = 30, SGD": history("vgg7-cifar10-T30"), "ANN, SGD": history("vgg7-ann-cifar10"),
            "SNN, T = 20, Adam": history("vgg7-adam-cifar10-T20"), "ANN, Adam": history("vgg7-ann-adam-cifar10"),
            "SNN, Adam, second cycle (6 epochs)": history("vgg7-adam-cifar10-T20-cycle2"),
            "SNN, Adam, third cycle (6 epochs)": history("vgg7-adam-cifar10-T20-cycle3", after="vgg7-adam-cifar10-T20-cycle2")}
    plot_runs(runs, RESULTS / "curves-cifar10-vgg7.png",
              title="VGG7 on CIFAR-10 (JPEG rebuild): 12-epoch schedules, then further cycles")
    runs = {"SNN, T = 20, SGD": history("vgg9-cifar10-T20"),
            "SNN, SGD, second cycle from epoch 8": history("vgg9-cifar10-T20-cycle2"),
            "SNN, T = 20, Adam": history("vgg9-adam-cifar10-T20"),
            "ANN, same engine": history("vgg9-ann-cifar10")}
    plot_runs(runs, RESULTS / "curves-cifar10-vgg9.png",
              title="VGG9 on CIFAR-10 (JPEG rebuild): SGD and Adam")
    plot_runs({"--preset fast (weight decay 7.8125e-6)": history("lenet5-mnist-fast"),
               "first run, weight decay 5e-4": history("lenet5-mnist-fast-decay5e-4")},
              RESULTS / "curves-lenet5-mnist-fast.png", title="LeNet5 on MNIST, --preset fast")
    plot_runs({"--preset fast": history("lenet5-fashion-mnist-fast")},
              RESULTS / "curves-lenet5-fashion-mnist-fast.png", title="LeNet5 on Fashion-MNIST, --preset fast")
    sweep = sorted((RESULTS / "timesteps-vgg7-cifar10").glob("T*"), key=lambda run: int(run.name[1:]))
    plot_runs({f"trained at T = {run.name[1:]}": history(f"timesteps-vgg7-cifar10/{run.name}") for run in sweep},
              RESULTS / "timesteps-vgg7-cifar10.png",
              title="VGG7 on CIFAR-10, one run per training T (10,000 images)")
    print("wrote the figures in", RESULTS)
