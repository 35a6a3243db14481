"""``python -m minisnn.analyze CHECKPOINT``: spike activity, synaptic operations and energy of a
trained network, and the time-step sweep of section 4.1.5.

    python -m minisnn.analyze runs/lenet5/last.h5 --limit 1000
    python -m minisnn.analyze runs/lenet5/last.h5 --sweep            # accuracy vs T
    python -m minisnn.analyze init:lenet5:mnist --limit 256          # an untrained network

CHECKPOINT is a file written by :mod:`minisnn.checkpoint` (``python -m minisnn.train``), or
``init:<model>[:<dataset>]`` for a freshly initialised network (seed ``--seed``).

Output: the per-layer table (:func:`minisnn.energy.format_table`) on the terminal; under
``--out`` (default ``runs/analyze-<name>``) ``analysis.json``, ``rates.png`` (spike rate per
layer), ``energy.png`` (SOPs vs MACs per layer and the two energy totals) and with
``--sweep`` ``sweep.png`` (accuracy and SNN energy against T). The **last line printed is one
JSON object**::

    {"model", "dataset", "T", "samples", "accuracy",
     "layers": [{"name", "type", "spike_rate", "input_rate", "sops", "macs", ...}, ...],
     "spike_rate": {neuron layer: rate}, "sops", "macs", "pool_ops", "neuron_updates",
     "energy_snn_j", "energy_ann_j", "energy_ratio", "first_layer_macs_j",
     "sweep": [{"T", "accuracy", "sops", "energy_snn_j"}, ...]   (with --sweep)}

``spike_rate``: spikes per neuron per time step; ``sops``: synaptic operations per inference
over all T steps; ``macs``: dense multiply-accumulates of the same network as an ANN;
``energy_snn_j`` = 0.9 pJ x sops, ``energy_ann_j`` = 4.6 pJ x macs (45 nm, Horowitz 2014;
caveats in :mod:`minisnn.energy`). Per inference (one sample).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SWEEP_T = (10, 20, 35, 50, 70, 100, 120)


def _get(config, *keys, default=None):
    """The first of ``keys`` present in ``config`` (also looking one level into sub-dicts such
    as "model" / "data" / "train"), since the train CLI's config layout may name them so."""
    for key in keys:
        if key in config and not isinstance(config[key], dict):
            return config[key]
    for value in config.values():
        if isinstance(value, dict):
            found = _get(value, *keys)
            if found is not None:
                return found
    return default


def load_network(spec, backend=None, seed=0, time_chunk=10):
    """(network, info) from a checkpoint path or ``init:<model>[:<dataset>]``.

    ``info``: model, dataset, T (trained; None for init), encoder scale, width, config."""
    from . import models
    from .data import DATASETS, canonical_name
    from .encoding import PoissonEncoder

    if str(spec).startswith("init:"):
        parts = str(spec).split(":")
        model = parts[1]
        dataset = parts[2] if len(parts) > 2 else models.default_dataset(model)
        config, weights = {"model": model, "dataset": dataset}, None
    else:
        from .checkpoint import load
        ckpt = load(spec)
        config, weights = ckpt.config, ckpt.weights
        model = _get(config, "model", "arch", "architecture")
        dataset = _get(config, "dataset", "data")
        if model is None:
            raise ValueError(f"{spec}: the checkpoint's config names no model: {config}")
    dataset = canonical_name(dataset) if dataset else models.default_dataset(model)
    input_shape = tuple(_get(config, "input_shape", default=DATASETS[dataset].input_shape))
    num_classes = int(weights["output.weight"].shape[0]) if weights else DATASETS[dataset].num_classes
    scale = _get(config, "encoding_scale", "input_scale", "encoder_scale", "encode_scale", "scale", default=1.0)
    width = float(_get(config, "width", default=1.0))
    kwargs = {}
    for key, names in (("threshold", ("threshold", "v_th")), ("leak", ("leak",)),
                       ("pool_threshold", ("pool_threshold",))):
        value = _get(config, *names)
        if value is not None:
            kwargs[key] = float(value)
    net = models.build(model, input_shape, num_classes, width, backend, dropout=0.0, seed=seed,
                       time_chunk=time_chunk, encoder=PoissonEncoder(float(scale)), **kwargs)
    if weights is not None:
        own = net.parameters()
        # dropout=0 drops the dropout layers, which hold no weights: the names still match
        net.load_parameters({k: v for k, v in weights.items() if k in own})
    T = _get(config, "T", "timesteps", "time_steps")
    info = {"model": model, "dataset": dataset, "T": int(T) if T else None, "input_scale": float(scale),
            "width": width, "config": config, "data_dir": _get(config, "data_dir")}
    return net, info


def _batches(net, images, labels, batch_size, transform=None):
    for i in range(0, len(labels), batch_size):
        x = images[i:i + batch_size].astype(np.float32) / 255.0
        if transform is not None:
            x = transform(x)
        yield (net.backend.to_device(np.ascontiguousarray(x, dtype=net.backend.dtype)),
               net.backend.to_device(np.asarray(labels[i:i + batch_size], dtype=np.int64)))


def _transform(dataset, data_dir):
    """Colour sets are standardised per channel with the training set's statistics."""
    from .data import COLOUR_DATASETS, Standardize, channel_stats, load
    if dataset not in COLOUR_DATASETS:
        return None
    train_x, _ = load(dataset, "train", data_dir)
    return Standardize(*channel_stats(train_x))


def analyse(net, info, images, labels, T, batch_size=64, seed=0, transform=None):
    from .energy import measure
    report = measure(net, _batches(net, images, labels, batch_size, transform), T, seed=seed,
                     model=info["model"])
    report["dataset"] = info["dataset"]
    return report


def plot_report(report, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = report["spike_rate"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(list(rates), [100 * r for r in rates.values()], color="tab:blue")
    ax.set_ylabel("spikes per neuron per step (%)")
    ax.set_title(f"{report['model']}: spike rates, T={report['T']}")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out / "rates.png", dpi=120)
    plt.close(fig)

    syn = [r for r in report["layers"] if r["macs"]]
    names = [r["name"] for r in syn]
    pos = np.arange(len(syn))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    ax1.bar(pos - 0.2, [r["sops"] for r in syn], 0.4, label="SNN SOPs (T steps)")
    ax1.bar(pos + 0.2, [r["macs"] for r in syn], 0.4, label="ANN MACs")
    ax1.set_xticks(pos, names)
    ax1.set_yscale("log")
    ax1.set_ylabel("operations per inference")
    ax1.legend()
    ax2.bar(["SNN", "ANN"], [report["energy_snn_j"] * 1e6, report["energy_ann_j"] * 1e6],
            color=["tab:blue", "tab:orange"])
    ax2.set_ylabel("energy per inference (uJ, 45 nm)")
    fig.suptitle(f"{report['model']}: operations and energy, T={report['T']}")
    fig.tight_layout()
    fig.savefig(out / "energy.png", dpi=120)
    plt.close(fig)


def plot_sweep(sweep, out, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    ts = [s["T"] for s in sweep]
    ax.plot(ts, [100 * s["accuracy"] for s in sweep], "o-", color="tab:blue")
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(ts, [s["energy_snn_j"] * 1e6 for s in sweep], "s--", color="tab:red")
    ax2.set_ylabel("SNN energy per inference (uJ)", color="tab:red")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minisnn.analyze", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="checkpoint file, or init:<model>[:<dataset>]")
    p.add_argument("--data-dir", default=None, help="data root (default: minisnn's)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=1000, help="samples to analyse (0 = all)")
    p.add_argument("--timesteps", "-T", type=int, default=None,
                   help="T for the analysis (default: the checkpoint's, else the model's)")
    p.add_argument("--out", default=None, help="output folder (default runs/analyze-<name>)")
    p.add_argument("--sweep", action="store_true", help="accuracy against T (section 4.1.5)")
    p.add_argument("--sweep-steps", default=",".join(map(str, SWEEP_T)))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)

    from . import models
    from .backend import Backend
    from .data import load, subset
    from .energy import format_table

    backend = Backend(args.device)
    net, info = load_network(args.checkpoint, backend, seed=args.seed)
    T = args.timesteps or info["T"] or models.DEFAULT_T[info["model"]]
    data_dir = args.data_dir
    if data_dir is None and info["data_dir"] and Path(info["data_dir"]).exists():
        data_dir = info["data_dir"]                  # where the training run read its data
    args.data_dir = data_dir
    images, labels = load(info["dataset"], args.split, data_dir)
    images, labels = subset(images, labels, args.limit or None, seed=args.seed)
    transform = _transform(info["dataset"], args.data_dir)
    name = Path(args.checkpoint).stem if not args.checkpoint.startswith("init:") else args.checkpoint.replace(":", "-")
    out = Path(args.out or Path("runs") / f"analyze-{name}")
    out.mkdir(parents=True, exist_ok=True)

    report = analyse(net, info, images, labels, T, args.batch_size, args.seed, transform)
    print(format_table(report), flush=True)
    if args.sweep:
        sweep = []
        for t in (int(s) for s in args.sweep_steps.split(",") if s.strip()):
            r = report if t == T else analyse(net, info, images, labels, t, args.batch_size, args.seed, transform)
            sweep.append({"T": t, "accuracy": r["accuracy"], "sops": r["sops"], "energy_snn_j": r["energy_snn_j"],
                          "spike_rate": r["spike_rate"]})
            print(f"sweep T={t:4d}: accuracy {100 * r['accuracy']:.2f} %, SNN energy "
                  f"{r['energy_snn_j'] * 1e6:.3f} uJ", flush=True)
        report["sweep"] = sweep
    report["checkpoint"] = str(args.checkpoint)
    report["split"] = args.split
    report["config"] = info["config"]
    (out / "analysis.json").write_text(json.dumps(report, indent=2, default=str))
    if not args.no_plots:
        plot_report(report, out)
        if args.sweep:
            plot_sweep(report["sweep"], out, f"{info['model']} on {info['dataset']}: accuracy vs T")
    print(f"wrote {out}/analysis.json" + ("" if args.no_plots else " and plots"), flush=True)
    summary = {k: v for k, v in report.items() if k not in ("caveats", "config")}
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
