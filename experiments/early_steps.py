"""The first epoch of a LeNet5 training on MNIST, step by step, for both gradients.

    python experiments/early_steps.py --data-dir /path/to/data/mnist --lr 0.017
    python experiments/early_steps.py --report runs/early-steps/early-steps.json   # redraw only

Trains the first epoch of ``python -m minisnn.train`` on the setup of the gradient comparison in
docs/results.md (12,000 training images: a seeded subset of 15,000 less a 20 % validation split;
batch 64, T=50, summed loss, no momentum, seed 0: the authors' setting when ``--lr 0.017``), so
the steps are exactly those of that comparison's epoch 1, once with the aggregated gradient
and once with the gradient through time, and records the spike rate of each layer at every
step (the last one feeds the output layer). A large learning rate
makes the first updates overshoot: the hidden layers fall silent, no spike reaches the output,
and the network needs some steps to recover. Prints one line per gradient (the steps in which
the layer feeding the output fires below ``--silent-below`` per step, 0.1 % by default: a few
spikes per sample over the window, the longest such stretch) and writes
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
            "--limit-train", str(args.limit_train), "--val-split", str(args.val_split), "--milestones", "1000",
            "--limit-test", "64", "--test-every", "100", "--batch-size", "64", "--execution", "dense",
            "--lr", str(args.lr), "--momentum", str(args.momentum), "--loss-reduction", "sum",
            "--gradient", gradient, "--threads", str(args.threads), "--seed", str(args.seed),
            "--out", str(folder / gradient), "--overwrite", "--quiet"]
    status = train.main(argv, callbacks=[record])
    if status != 0:
        raise SystemExit(f"training with the {gradient} gradient ended with status {status}")
    return steps


def summarise(per_step, below):
    """Steps whose last layer's rate is under ``below``, and the longest run of them."""
    quiet = [list(s["rates"].values())[-1] < below for s in per_step]
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return {"quiet_steps": sum(quiet), "longest_quiet_stretch": longest, "silent_below": below,
            "output_input_rate_first_last": [list(per_step[i]["rates"].values())[-1] for i in (0, -1)]}


def report(data, folder, below):
    for gradient, r in data["runs"].items():
        r.update(summarise(r["per_step"], below))
        print(f"{gradient}: {r['quiet_steps']} of {len(r['per_step'])} steps with the output layer's input "
              f"under {100 * below:g} % per step; longest stretch {r['longest_quiet_stretch']} steps", flush=True)
    (folder / "early-steps.json").write_text(json.dumps(data, indent=1))
    from minisnn.plotting import _figure, _save
    fig = _figure((7, 4))
    ax = fig.subplots()
    for gradient, r in data["runs"].items():
        ax.plot([s["step"] for s in r["per_step"]], [100 * list(s["rates"].values())[-1] for s in r["per_step"]],
                label=gradient)
    ax.axhline(100 * below, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("training step (batch of 64)")
    ax.set_ylabel("spike rate into the output layer (% per step)")
    ax.set_title(f"LeNet5, MNIST, T=50, lr {data['lr']:g}, momentum {data['momentum']:g}, seed {data['seed']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, folder / "early-steps.png")
    print(json.dumps({g: {k: v for k, v in r.items() if k != "per_step"} for g, r in data["runs"].items()}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", help="MNIST folder (needed unless --report)")
    p.add_argument("--lr", type=float, default=0.017, help="summed-loss learning rate (0.017: the authors')")
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--limit-train", type=int, default=15000)
    p.add_argument("--val-split", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--silent-below", type=float, default=0.001, help="rate per step counted as (near) silent")
    p.add_argument("--out", default="runs/early-steps")
    p.add_argument("--report", metavar="JSON", help="summarise and redraw an early-steps.json, without training")
    args = p.parse_args(argv)
    if args.report:
        path = Path(args.report)
        report(json.loads(path.read_text()), path.parent, args.silent_below)
        return 0
    if not args.data_dir:
        p.error("--data-dir is required to train")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"lr": args.lr, "momentum": args.momentum, "limit_train": args.limit_train, "val_split": args.val_split,
            "seed": args.seed, "runs": {}}
    for gradient in ("aggregated", "through-time"):
        data["runs"][gradient] = {"per_step": run(gradient, args, folder)}
    report(data, folder, args.silent_below)
    return 0


if __name__ == "__main__":
    sys.exit(main())
