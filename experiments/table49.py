"""Table 4.9-style comparison: ANN, ANN-to-SNN conversion and the spike-trained SNN, LeNet5.

    python experiments/table49.py --dataset mnist --epochs 5
    python experiments/table49.py --dataset fashion-mnist --snn-checkpoint runs/fmnist/last.h5

Steps (all with minisnn's own engine, no autograd):
1. ANN: LeNet5 with ReLU and average pooling (minisnn.ann.build), SGD with momentum on the
   MSE loss, ``--epochs`` epochs on the training set (``--limit-train`` to shorten), test
   accuracy on the whole test set, dense MACs and energy.
2. Converted SNN: data-based normalisation (``--percentile`` of each ReLU's positive
   activations on 2000 training images), IF neurons with reset by subtraction, Poisson
   input with scale 1, evaluated at each T of ``--convert-T`` on ``--limit-test`` test
   images (CPU time), with SOPs and energy (minisnn.energy).
3. Spike-trained SNN: a checkpoint of ``python -m minisnn.train`` (``--snn-checkpoint``),
   evaluated at its T (or ``--snn-T``); without one, ``--snn-epochs`` > 0 trains a short one
   here (``--snn-limit-train`` images, ``--snn-T`` steps); otherwise the row is left empty.

Writes ``<out>/table49-<dataset>.md`` and ``.json`` (default out: runs/table49) and prints
the markdown table; the last line is the JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisnn import ann, energy, models  # noqa: E402
from minisnn.backend import Backend  # noqa: E402
from minisnn.config import thesis_preset  # noqa: E402
from minisnn.data import load, subset  # noqa: E402
from minisnn.loss import correct, mse_loss  # noqa: E402
from minisnn.optim import SGD  # noqa: E402


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def snn_measure(net, images, labels, T, batch_size=64, seed=0):
    return energy.measure(net, ann._device_batches(net, images, labels, batch_size), T, seed=seed)


def train_snn(images, labels, T, epochs, lr, batch_size, backend, seed=0, input_scale=1.0):
    """A short spike-based training run (Lee et al. 2020), for when no checkpoint is given."""
    from minisnn.encoding import PoissonEncoder
    net = models.build("lenet5", (1, 28, 28), backend=backend, seed=seed,
                       encoder=PoissonEncoder(input_scale))
    opt = SGD(net.parameters(), lr, momentum=0.0, weight_decay=5e-4)
    for epoch in range(epochs):
        order = Backend.host_rng(seed, "snn-shuffle", epoch).permutation(len(labels))
        hits = seen = 0
        t0 = time.time()
        for step, (x, y) in enumerate(ann._device_batches(net, images, labels, batch_size, order)):
            out = net.forward(x, T, train=True, rng_key=(seed, "train", epoch, step))
            _, error = mse_loss(out, y)
            net.backward(error)
            opt.step(net.gradients())
            hits += int(correct(out, y))
            seen += len(y)
            if step % 20 == 0:
                log(f"snn epoch {epoch + 1} step {step}: running train acc {100 * hits / seen:.1f} % "
                    f"({seen / (time.time() - t0):.1f} img/s)")
        log(f"snn epoch {epoch + 1}/{epochs}: train acc {100 * hits / seen:.2f} %")
    return net


def write(args, rows, results, macs):
    """Write the markdown table and the JSON so far (called after every row)."""
    lines = [f"LeNet5 on {args.dataset} (thesis table 4.9 style; energy per inference, 45 nm: "
             "4.6 pJ/MAC, 0.9 pJ/SOP, memory and neuron updates not counted)", "",
             "| network | T | test accuracy (%) | test images | training | SOPs / MACs | energy (uJ) |",
             "|---|---|---|---|---|---|---|"]
    for name, T, acc, n, how, sops, e in rows:
        ops = f"{sops:,.0f} SOPs" if sops is not None else f"{macs:,} MACs"
        lines.append(f"| {name} | {T} | {100 * acc:.2f} | {n} | {how} | {ops} | {e * 1e6:.2f} |")
    table = "\n".join(lines)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"table49-{args.dataset}.md").write_text(table + "\n")
    (out / f"table49-{args.dataset}.json").write_text(json.dumps(results, indent=2, default=str))
    return table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=5, help="ANN training epochs")
    p.add_argument("--lr", type=float, default=0.0005, help="ANN SGD learning rate (summed MSE)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit-train", type=int, default=0, help="ANN training images (0 = all)")
    p.add_argument("--limit-test", type=int, default=2000, help="test images for the SNN rows (0 = all)")
    p.add_argument("--convert-T", default="50,100,200", help="T values for the converted SNN")
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--reset", default="subtract", choices=("subtract", "zero"))
    p.add_argument("--snn-checkpoint", default=None)
    p.add_argument("--snn-T", type=int, default=None)
    p.add_argument("--snn-epochs", type=int, default=0)
    p.add_argument("--snn-lr", type=float, default=0.005, help="0.005: the train CLI's LeNet5 default; 0.01 killed the network in a 3000-image run")
    p.add_argument("--snn-limit-train", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/table49")
    args = p.parse_args(argv)

    backend = Backend("cpu")
    train_x, train_y = load(args.dataset, "train", args.data_dir)
    test_x, test_y = load(args.dataset, "test", args.data_dir)
    ann_x, ann_y = subset(train_x, train_y, args.limit_train or None, seed=args.seed)
    snn_test_x, snn_test_y = subset(test_x, test_y, args.limit_test or None, seed=args.seed)
    rows, results = [], {"dataset": args.dataset, "model": "lenet5", "args": vars(args)}

    # 1. ANN --------------------------------------------------------------------------------
    log(f"ANN: training {args.epochs} epochs on {len(ann_y)} images")
    net = ann.build("lenet5", (1, 28, 28), backend=backend, seed=args.seed)
    t0 = time.time()
    history = ann.train(net, ann_x, ann_y, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        momentum=args.momentum, seed=args.seed, log=log,
                        milestones=[int(args.epochs * 0.75)] if args.epochs >= 4 else [])
    ann_acc = ann.evaluate(net, test_x, test_y)
    ann_acc_sub = ann.evaluate(net, snn_test_x, snn_test_y)
    macs = sum(energy.dense_macs(layer) for layer in net.all_layers())
    log(f"ANN test accuracy {100 * ann_acc:.2f} % ({len(test_y)} images), "
        f"{100 * ann_acc_sub:.2f} % on the SNN subset; {time.time() - t0:.0f} s")
    results["ann"] = {"accuracy": ann_acc, "accuracy_subset": ann_acc_sub, "epochs": args.epochs,
                      "history": history, "macs": macs, "energy_j": energy.E_MAC_J * macs,
                      "test_images": len(test_y)}
    rows.append(("ANN (ReLU, avg pool)", "1", ann_acc, len(test_y), f"{args.epochs} ep on {len(ann_y)} img",
                 None, energy.E_MAC_J * macs))
    write(args, rows, results, macs)

    # 2. Converted SNN ------------------------------------------------------------------------
    snn, scales = ann.convert(net, train_x, percentile=args.percentile, reset=args.reset)
    results["converted"] = {"percentile": args.percentile, "reset": args.reset, "scales": scales, "runs": []}
    for T in (int(t) for t in args.convert_T.split(",") if t.strip()):
        t0 = time.time()
        rep = snn_measure(snn, snn_test_x, snn_test_y, T, seed=args.seed)
        log(f"converted SNN T={T}: accuracy {100 * rep['accuracy']:.2f} % ({len(snn_test_y)} images), "
            f"SOPs {rep['sops']:,.0f}, {time.time() - t0:.0f} s")
        results["converted"]["runs"].append({k: rep[k] for k in (
            "T", "accuracy", "samples", "sops", "energy_snn_j", "spike_rate")})
        rows.append((f"ANN-to-SNN (p{args.percentile:g}, reset-{args.reset})", str(T), rep["accuracy"],
                     rep["samples"], "from ANN", rep["sops"], rep["energy_snn_j"]))
        write(args, rows, results, macs)

    # 3. Spike-trained SNN --------------------------------------------------------------------
    trained = None
    if args.snn_checkpoint:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from minisnn.analyze import load_network
        trained, info = load_network(args.snn_checkpoint, backend, seed=args.seed)
        T = args.snn_T or info["T"] or thesis_preset("lenet5", info["dataset"])["timesteps"]
        from minisnn.checkpoint import load as load_checkpoint
        done = load_checkpoint(args.snn_checkpoint).epoch
        how = f"{done} ep on {info['config'].get('limit_train') or 'all'} img (checkpoint {Path(args.snn_checkpoint).name})"
    elif args.snn_epochs > 0:
        T = args.snn_T or 20
        sx, sy = subset(train_x, train_y, args.snn_limit_train or None, seed=args.seed)
        log(f"spike-trained SNN: {args.snn_epochs} epochs on {len(sy)} images at T={T}")
        trained = train_snn(sx, sy, T, args.snn_epochs, args.snn_lr, args.batch_size, backend, args.seed)
        how = f"{args.snn_epochs} ep on {len(sy)} img here"
    if trained is not None:
        rep = snn_measure(trained, snn_test_x, snn_test_y, T, seed=args.seed)
        log(f"spike-trained SNN T={T}: accuracy {100 * rep['accuracy']:.2f} %, SOPs {rep['sops']:,.0f}")
        results["spike_trained"] = {k: rep[k] for k in ("T", "accuracy", "samples", "sops", "energy_snn_j",
                                                       "spike_rate")}
        results["spike_trained"]["how"] = how
        rows.append(("SNN, spike-based BP (Lee 2020)", str(T), rep["accuracy"], rep["samples"], how,
                     rep["sops"], rep["energy_snn_j"]))

    table = write(args, rows, results, macs)
    print(table)
    print(json.dumps({k: v for k, v in results.items() if k != "args"}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
