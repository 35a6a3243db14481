"""Redraw the committed figures of ``experiments/results/`` from their JSON.

    python experiments/plot_results.py

``analyze-lenet5-mnist.json`` (written by ``python -m minisnn.analyze ... --sweep``) gives
``sweep-lenet5-mnist.png`` (accuracy and energy against T) and ``operations-lenet5-mnist.png``
(synaptic operations and MACs per layer).
"""
import json
from pathlib import Path

from minisnn.plotting import plot_operations, plot_sweep

RESULTS = Path(__file__).resolve().parent / "results"

if __name__ == "__main__":
    report = json.loads((RESULTS / "analyze-lenet5-mnist.json").read_text())
    trained = report["T"]
    plot_sweep(report["sweep"], report["samples"], RESULTS / "sweep-lenet5-mnist.png",
               f"LeNet5 on MNIST (trained at T = {trained}), evaluated at other T")
    plot_operations(report["layers"], RESULTS / "operations-lenet5-mnist.png",
                    f"LeNet5 on MNIST, T = {trained}: operations per inference")
    print("wrote", RESULTS / "sweep-lenet5-mnist.png", "and", RESULTS / "operations-lenet5-mnist.png")
