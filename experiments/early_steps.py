"""The first steps of a LeNet5 training on MNIST, step by step, for both gradients.

    python experiments/early_steps.py --data-dir /path/to/data/mnist --lr 0.017 --steps 100

Trains ``--steps`` steps of ``python -m minisnn.train`` (batch 64, T=50, summed loss, no
momentum, seed 0: the authors' setting when ``--lr 0.017``) once with the aggregated gradient
and once with the gradient through time, and records the spike rate of each layer at every
step (the last one feeds the output layer). A large learning rate
makes the first updates overshoot: the hidden layers fall silent, no spike reaches the output,
and the network needs some steps to recover. Prints one line per gradient (steps without a
spike into the output layer, the step from which it stays active) and writes
``<out>/early-steps.json`` and ``<out>/early-steps.png``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisnn import train  # noqa: E402


def run(gradient, args, folder):
    """Per step: {"step", "rates": {layer: spike rate per step}} for one gradient."""
    steps = []

    def record(net, epoch, batch):
        steps.append({"step": batch + 1, "rates": net.spike_rates()})

    argv = ["--model", "lenet5", "--dataset", "mnist", "--data-dir", args.data_dir, "--epochs", "1",
            "--limit-train", str(64 * args.steps), "--limit-test", "64", "--batch-size", "64",
            "--lr", str(args.lr), "--momentum", str(args.momentum), "--loss-reduction", "sum",
            "--gradient", gradient, "--threads", str(args.threads), "--seed", str(args.seed),
            "--out", str(folder / gradient), "--overwrite", "--quiet"]
    status = train.main(argv, callbacks=[record])
    if status != 0:
        raise SystemExit(f"training with the {gradient} gradient ended with status {status}")
    return steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="MNIST folder")
    p.add_argument("--lr", type=float, default=0.017, help="summed-loss learning rate (0.017: the authors')")
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/early-steps")
    args = p.parse_args(argv)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    report = {"lr": args.lr, "momentum": args.momentum, "steps": args.steps, "seed": args.seed, "runs": {}}
    for gradient in ("aggregated", "through-time"):
        steps = run(gradient, args, folder)
        last = [list(s["rates"].values())[-1] for s in steps]
        silent = [s["step"] for s, r in zip(steps, last) if r == 0]
        recovered = max(silent) + 1 if silent else 1
        report["runs"][gradient] = {"per_step": steps, "silent_steps": len(silent), "active_from_step": recovered}
        print(f"{gradient}: {len(silent)} of {len(steps)} steps without a spike into the output layer; "
              f"active from step {recovered}", flush=True)
    (folder / "early-steps.json").write_text(json.dumps(report, indent=1))
    from minisnn.plotting import _figure, _save
    fig = _figure((7, 4))
    ax = fig.subplots()
    for gradient, r in report["runs"].items():
        ax.plot([s["step"] for s in r["per_step"]], [100 * list(s["rates"].values())[-1] for s in r["per_step"]],
                label=gradient)
    ax.set_xlabel("training step (batch of 64)")
    ax.set_ylabel("spike rate into the output layer (% per step)")
    ax.set_title(f"LeNet5, MNIST, T=50, lr {args.lr:g}, momentum {args.momentum:g}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, folder / "early-steps.png")
    print(json.dumps({g: {k: v for k, v in r.items() if k != "per_step"} for g, r in report["runs"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
