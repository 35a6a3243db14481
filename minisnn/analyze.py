"""``python -m minisnn.analyze CHECKPOINT``: spike activity, synaptic operations and energy of a
trained network, and the time-step sweep of section 4.1.5 (``--help`` for the flags).

CHECKPOINT is a ``checkpoint.h5`` or ``best.h5`` written by ``python -m minisnn.train``, or
``init:<model>[:<dataset>]`` for a freshly initialised network (seed ``--seed``). The inputs are
preprocessed as in training: colour images standardised with the per-channel statistics the
checkpoint stores (those of the run's own, possibly ``--limit-train``-ed, training set),
N-MNIST recordings binned into T frames. The samples and input spikes are those of
``python -m minisnn.train --eval-only``: ``--limit N`` takes the subset ``--limit-test N`` takes,
with the run's seed, and the Poisson draws are the run's evaluation's, so at the same T and
batch size both report the same accuracy.

The last line printed is one JSON object::

    {"model", "dataset", "T", "samples", "accuracy",
     "layers": [{"name", "type", "spike_rate", "input_rate", "sops", "macs", ...}, ...],
     "spike_rate": {neuron layer: rate}, "sops", "macs", "pool_ops", "neuron_updates",
     "energy_snn_j", "energy_ann_j", "energy_ratio", "first_layer_macs_j",
     "sweep": [{"T", "accuracy", "sops", "energy_snn_j", "spike_rate"}, ...]   (with --sweep)}

``spike_rate``: spikes per neuron per time step; ``sops``: synaptic operations per inference
over all T steps; ``macs``: dense multiply-accumulates of the same network as an ANN;
``energy_snn_j`` = 0.9 pJ x sops, ``energy_ann_j`` = 4.6 pJ x macs (45 nm, Horowitz 2014;
caveats in :mod:`minisnn.energy`). Per inference (one sample).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import errno
import json
import os
import signal
import sys
import threading
from pathlib import Path

from . import checkpoint, models
from .backend import Backend, DeviceError, keep_freed_memory, parse_device
from .checkpoint import CheckpointError
from .config import thesis_preset
from .data import DATASETS, BatchIterator, DatasetError, Standardize, canonical_name, load, pipeline
from .data.registry import DATA_ROOT_RULE, check_split
from .energy import format_table, measure
from .pretrained import from_checkpoint
from .runs import device_error_text, error_text

SWEEP_T = (10, 20, 35, 50, 70, 100, 120)
# the exit codes of python -m minisnn.train with the same meanings
EXIT_BAD_INPUT, EXIT_OUTPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 5, 130, 143

DESCRIPTION = """\
Spike rates, synaptic operations (SOPs) and energy per inference of a trained spiking
network, compared with the same network as an ANN; with --sweep also the accuracy and energy
at other numbers of time steps T (thesis section 4.1.5). The inputs are preprocessed as in
training: colour images standardised with the statistics stored in the checkpoint."""

EPILOG = f"""\
examples:
  python -m minisnn.analyze runs/lenet5_mnist_20250101-120000/checkpoint.h5
  python -m minisnn.analyze runs/lenet5_mnist_20250101-120000/checkpoint.h5 --sweep --limit 500
  python -m minisnn.analyze runs/vgg9_cifar10_20250101-120000/best.h5 --out analysis/vgg9
  python -m minisnn.analyze init:lenet5:mnist --limit 256      # an untrained network

output: the per-layer table on the terminal; in the output folder analysis.json (the full
report), rates.png (spike rate per layer), operations.png (SOPs against MACs per layer,
the energy totals in the title) and, with --sweep, sweep.png (accuracy and energy against
T). The last line printed is the report as one JSON object.

exit status:
    0  done
    {EXIT_BAD_INPUT}  bad input: flag, device, missing or corrupt checkpoint or data
    {EXIT_OUTPUT}  cannot write the output folder (read-only, disk full, ...)
  {EXIT_INTERRUPTED}  interrupted by SIGINT (Ctrl-C)
  {EXIT_TERMINATED}  terminated by SIGTERM"""


class UsageError(ValueError):
    """A problem with the command line or the checkpoint's contents, stated in one line."""


def load_network(spec, backend=None, seed=0, time_chunk=10):
    """(network, info) from a checkpoint path (:func:`minisnn.pretrained.from_checkpoint`) or
    ``init:<model>[:<dataset>]``; the network without dropout, its initial weights drawn from
    ``seed``.

    ``info``: model, dataset, T (trained; None for init), input_scale, width, config,
    data_dir (where training read its data), trained (False for init), standardize (the
    checkpoint's per-channel ``{"mean", "std"}`` of a standardised dataset, else None)."""
    if str(spec).startswith("init:"):
        parts = str(spec).split(":")
        if len(parts) not in (2, 3) or not parts[1]:
            raise UsageError(f"{spec}: write init:<model> or init:<model>:<dataset>")
        config, ckpt = {"model": parts[1]}, None
        if len(parts) == 3:
            config["dataset"] = parts[2]
    else:
        ckpt = checkpoint.load(spec)
        config = ckpt.config
        if not isinstance(config, dict) or not isinstance(ckpt.extra, dict):
            raise UsageError(f"{spec}: the checkpoint's configuration is not a mapping")
    model = config.get("model")
    if config.get("network", "snn") != "snn":
        raise UsageError(f"{spec}: analyze studies spiking networks; this checkpoint holds an ANN (--network ann)")
    if model not in models.MODELS:
        raise UsageError(f"{spec}: unknown model {model!r}; known: {', '.join(models.MODELS)}")
    dataset = config.get("dataset")
    dataset = canonical_name(dataset) if dataset else models.default_dataset(model)
    try:
        scale, width = float(config.get("encoding_scale", 1.0)), float(config.get("width", 1.0))
        T = int(config["timesteps"]) if config.get("timesteps") else None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{spec}: unusable configuration values ({exc})") from exc
    described, build = {**config, "dataset": dataset}, {"dropout": 0.0, "seed": seed, "time_chunk": time_chunk}
    if ckpt is None:
        try:
            net, standardize = models.from_config({**described, **build}, backend), None
        except (KeyError, ValueError) as exc:
            raise UsageError(f"{spec}: cannot build {model} ({type(exc).__name__}: {exc})") from exc
    else:
        restored = from_checkpoint(ckpt, backend, described, **build)
        net, standardize = restored.net, restored.standardize
    return net, {"model": model, "dataset": dataset, "T": T, "input_scale": scale,
                 "width": width, "config": config, "data_dir": config.get("data_dir"),
                 "trained": ckpt is not None, "standardize": standardize, "epoch": ckpt.epoch if ckpt else 0}


def preprocessing(info, data_dir):
    """The transform training applied after scaling uint8 images to [0, 1] on a dataset
    standardised per channel: the checkpoint's standardisation (for ``init:`` networks, that
    of the full training set); else None (:func:`analyse` then takes the dataset's own, e.g.
    event frames at its T)."""
    if not DATASETS[info["dataset"]].standardize:
        return None
    stats = info["standardize"]
    if stats is None:
        if not info["trained"]:
            return Standardize.from_train(load(info["dataset"], "train", data_dir)[0])
        raise UsageError(f"the checkpoint stores no input standardisation, which a "
                         f"{info['dataset']} network needs; was it written by minisnn.train?")
    try:
        return Standardize(stats["mean"], stats["std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"the checkpoint's input standardisation is unusable ({exc})") from exc


def analyse(net, info, images, labels, T, batch_size=64, seed=0, transform=None, progress=None, split="test"):
    """Run ``net`` over the samples at ``T`` steps: :func:`minisnn.energy.measure`'s report.

    ``images`` are uint8 arrays or event recordings; ``transform`` comes after the [0, 1]
    scaling (:func:`preprocessing`), by default the dataset's at ``T`` steps
    (:meth:`~minisnn.data.DatasetInfo.transform`: event recordings binned into ``T`` frames);
    ``progress`` wraps the batch iterator (e.g. a tqdm bar). The input spikes are those of the
    training run's evaluation of ``split`` after the checkpoint's last epoch (``--eval-only``):
    batch b uses the key (seed, "eval", split, epoch - 1, b)."""
    dataset = DATASETS[info["dataset"]]
    iterator = BatchIterator(images, labels, batch_size, net.backend, shuffle=False,
                             transform=transform or dataset.transform(T, info["standardize"]))
    batches = ((x, y) for _, x, y in pipeline.batches(iterator, 0, dataset.frames))
    if progress is not None:
        batches = progress(batches, total=len(iterator))
    report = measure(net, batches, T, model=info["model"],
                     rng_key=(seed, "eval", split, max(info.get("epoch", 0) - 1, 0)))
    report["dataset"] = info["dataset"]
    return report


def plot_report(report, out):
    """rates.png (spike rate per layer), operations.png (SOPs against MACs per layer, the energy
    totals in the title) and, when the report has a sweep, sweep.png (accuracy and energy
    against T, error bars over the report's samples)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_operations, plot_sweep

    rates = report["spike_rate"]
    what = f"{report['model']} on {report['dataset']} ({report['samples']} {report.get('split', 'test')} samples, T={report['T']})"
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(list(rates), [100 * r for r in rates.values()], color="tab:blue")
    ax.set_ylabel("spikes per neuron per step (%)")
    ax.set_title(f"spike rates: {what}", fontsize=10)
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out / "rates.png", dpi=120)
    plt.close(fig)

    plot_operations(report["layers"], out / "operations.png",
                    f"operations per inference: {what}\nenergy SNN {report['energy_snn_j'] * 1e6:.3g} uJ, "
                    f"ANN {report['energy_ann_j'] * 1e6:.3g} uJ (45 nm)")
    if report.get("sweep"):
        plot_sweep(report["sweep"], report["samples"], out / "sweep.png",
                   f"{report['model']} on {report['dataset']}: accuracy and energy against T")


# -------------------------------------------------------------------------------------------
# Command line
# -------------------------------------------------------------------------------------------

def _count(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def _steps(text):
    steps = [_count(s.strip(), 1) for s in text.split(",") if s.strip()]
    if not steps:
        raise argparse.ArgumentTypeError("give at least one T, e.g. 10,20,50")
    return steps


def _device(text):
    try:
        parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parser():
    p = argparse.ArgumentParser(prog="python -m minisnn.analyze", description=DESCRIPTION,
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="checkpoint.h5 or best.h5 of a training run, or init:MODEL[:DATASET] for "
                        "an untrained network")
    p.add_argument("--data-dir", metavar="DIR", default=None,
                   help="folder holding the dataset (default: the training run's data folder "
                        "if it still exists, else the data root: " + DATA_ROOT_RULE + ")")
    p.add_argument("--split", default="test", help="dataset split to analyse (default: test)")
    p.add_argument("--limit", metavar="N", type=lambda s: _count(s, 0), default=1000,
                   help="analyse a seeded subset of N samples, the one --limit-train / "
                        "--limit-test N of python -m minisnn.train takes; 0 = the whole split "
                        "(default: 1000)")
    p.add_argument("--timesteps", "-T", metavar="T", type=lambda s: _count(s, 1), default=None,
                   help="time steps of the analysis (default: the checkpoint's, else the "
                        "model's: 50 for lenet5, 100 for the others)")
    p.add_argument("--sweep", action="store_true",
                   help="also measure accuracy and energy at each T of --sweep-steps "
                        "(default: off)")
    p.add_argument("--sweep-steps", metavar="T,T,...", type=_steps, default=list(SWEEP_T),
                   help=f"the T values of --sweep (default: {','.join(map(str, SWEEP_T))})")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: a new folder next to the checkpoint, "
                        "analyze-<checkpoint name>-<date>-<time>; runs/analyze-init-... for init:)")
    p.add_argument("--batch-size", metavar="N", type=lambda s: _count(s, 1), default=None,
                   help="samples per forward pass (default: the run's --eval-batch-size, else 64; "
                        "the input spikes are drawn per batch, so this size is part of the result)")
    p.add_argument("--device", default="cpu", type=_device,
                   help="where to run the network: cpu, gpu (or cuda: GPU 0), gpu:N (or cuda:N: "
                        "GPU N) (default: cpu)")
    p.add_argument("--seed", metavar="N", type=int, default=None,
                   help="seed of the sample subset, the Poisson encoding and init: weights "
                        "(default: the run's --seed, else 0)")
    p.add_argument("--no-plots", action="store_true",
                   help="write analysis.json only, no PNG plots (default: plots are written)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (default: a bar per pass on stderr)")
    return p


def default_out(checkpoint, now=None):
    """A new folder per run: next to the checkpoint, named after it and the time."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    if checkpoint.startswith("init:"):
        return Path("runs") / f"analyze-{checkpoint.replace(':', '-')}-{stamp}"
    path = Path(checkpoint)
    return path.parent / f"analyze-{path.stem}-{stamp}"


def _fail(message, status=EXIT_BAD_INPUT):
    print(error_text("minisnn.analyze", message), file=sys.stderr, flush=True)
    return status


class _Terminated(Exception):
    """SIGTERM arrived."""


def _terminate(signum, frame):
    raise _Terminated


def main(argv=None):
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:       # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {signal.SIGTERM: _terminate, signal.SIGINT: signal.default_int_handler}   # Ctrl-C: KeyboardInterrupt
    previous = {signum: signal.signal(signum, h) for signum, h in handlers.items()} if main_thread else {}
    try:
        return run(args)
    except KeyboardInterrupt:
        print("minisnn.analyze: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("minisnn.analyze: terminated", file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run(args):
    try:
        backend = Backend(args.device)
        keep_freed_memory()
        net, info = load_network(args.checkpoint, backend, seed=args.seed or 0)
        seed = args.seed if args.seed is not None else int(info["config"].get("seed", 0))
        batch_size = args.batch_size or int(info["config"].get("eval_batch_size", 64))
        split = check_split(info["dataset"], args.split)
        data_dir = args.data_dir
        if data_dir is None and info["data_dir"] and Path(info["data_dir"]).exists():
            data_dir = info["data_dir"]                  # where the training run read its data
        images, labels = load(info["dataset"], split, data_dir, progress=not args.quiet)
        images, labels = pipeline.split_subset(images, labels, split, args.limit or None, seed)
        transform = preprocessing(info, data_dir)
    except DeviceError as exc:
        return _fail(device_error_text(exc))
    except (CheckpointError, DatasetError, UsageError) as exc:
        return _fail(exc)
    T = args.timesteps or info["T"] or thesis_preset(info["model"], info["dataset"])["timesteps"]
    out = Path(args.out) if args.out else default_out(args.checkpoint)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied")
    except OSError as exc:
        return _fail(f"cannot write the analysis to {out}/ ({exc.strerror or exc}); "
                     "choose another folder with --out", EXIT_OUTPUT)
    try:
        return _analyse_and_write(args, net, info, split, images, labels, transform, T, seed, batch_size, out)
    except (KeyboardInterrupt, _Terminated):
        if created:                                  # stopped before writing: leave no empty folder
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


def _analyse_and_write(args, net, info, split, images, labels, transform, T, seed, batch_size, out):
    from tqdm.auto import tqdm             # imported when needed: a second to import

    def progress(label):
        return lambda batches, total: tqdm(batches, total=total, desc=label, unit="batch",
                                           leave=False, disable=args.quiet, file=sys.stderr)

    print(f"analysing {info['model']} on {info['dataset']} {split}: {len(labels)} samples, "
          f"T={T}, output {out}/", flush=True)
    report = analyse(net, info, images, labels, T, batch_size, seed, transform, progress(f"T={T}"), split)
    print(format_table(report), flush=True)
    if args.sweep:
        sweep = []
        for i, t in enumerate(args.sweep_steps, 1):
            r = report if t == T else analyse(net, info, images, labels, t, batch_size, seed, transform,
                                              progress(f"sweep {i}/{len(args.sweep_steps)} T={t}"), split)
            sweep.append({"T": t, "accuracy": r["accuracy"], "sops": r["sops"],
                          "energy_snn_j": r["energy_snn_j"], "spike_rate": r["spike_rate"]})
            print(f"sweep {i}/{len(args.sweep_steps)} T={t:4d}: accuracy "
                  f"{100 * r['accuracy']:.2f} %, SNN energy {r['energy_snn_j'] * 1e6:.3f} uJ",
                  flush=True)
        report["sweep"] = sweep
    report.update(checkpoint=str(args.checkpoint), split=split, config=info["config"])
    try:
        (out / "analysis.json").write_text(json.dumps(report, indent=2, default=str))
        if not args.no_plots:
            plot_report(report, out)
    except OSError as exc:
        return _fail(f"cannot write the analysis to {out}/ ({exc.strerror or exc})", EXIT_OUTPUT)
    print(f"wrote {out}/analysis.json" + ("" if args.no_plots else " and plots"), flush=True)
    summary = {k: v for k, v in report.items() if k not in ("caveats", "config")}
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
