"""``python -m minisnn.train``: train, resume or evaluate a spiking network from the command line.

Examples::

    python -m minisnn.train --model lenet5 --data-dir /path/to/mnist            # the thesis' 150 epochs
    python -m minisnn.train --preset fast --data-dir /path/to/mnist             # 20 epochs
    python -m minisnn.train --resume runs/lenet5_mnist_X/checkpoint.h5
    python -m minisnn.train --resume runs/lenet5_mnist_X            # its interrupted.h5, else checkpoint.h5
    python -m minisnn.train --init-from runs/lenet5_mnist_X/checkpoint.h5 --epochs 5   # a new schedule
    python -m minisnn.train --eval-only runs/lenet5_mnist_X/checkpoint.h5
    mpiexec -n 4 python -m minisnn.train --model vgg9 --batch-size 64      # 4 processes, 16 samples each

Reading order: :func:`main` resolves the configuration (every knob and its default is listed
once, in :mod:`minisnn.config`), loads the data (:mod:`minisnn.data.pipeline`), builds the
network and the optimiser and calls :func:`~minisnn.epochs.fit`, whose loop reads forward ->
loss -> backward -> step per batch and evaluate -> save per epoch (:mod:`minisnn.epochs`). Run
files live in :mod:`minisnn.runs`, checkpoint capture and restore in :mod:`minisnn.checkpoint`
(a checkpoint becomes a network by :func:`minisnn.pretrained.from_checkpoint`), the steps that
differ across several processes (their rows of each batch, the sums over them, the agreements)
in :mod:`minisnn.distributed`.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import os
import sys
import traceback
from pathlib import Path

from . import checkpoint, events, models
from .backend import Backend, DeviceError, keep_freed_memory
from .checkpoint import CheckpointError
from .config import CONVERSION_KNOBS, EVAL_MAY_CHANGE, KNOBS, ConfigError, add_flags, flag, resolve, resolve_stored
from .data import DatasetError, pipeline
from .distributed import Agreed, DistributedError, Solo, connect, launcher_rank
from .epochs import evaluate, evaluate_start, fit
from .gradients import UnsupportedGradient
from .hybrid import initialize_from_ann
from .optim import SGD, Adam, MultiStepLR
from .pretrained import from_checkpoint
from .runs import (EXIT_BAD_INPUT, EXIT_DEAD, EXIT_NONFINITE, EXIT_OUTPUT, SIGNALS, Interrupted, Meter, RESUMABLE, RunFolder,
                   RunFolderError, Stop, device_error_text, error_text, versions, write_failure)

#: Exit status of every way a run ends (also in --help).
EXIT_STATUS = {
    0: "done (or nothing left to train: the checkpoint already has --epochs epochs)",
    1: "unexpected error (a bug: the traceback says where)",
    EXIT_BAD_INPUT: "bad input: flag, device, dataset, checkpoint, or a run folder in use or already holding a run",
    EXIT_NONFINITE: "weights, optimiser state or loss became NaN/inf (the last good checkpoint is kept)",
    EXIT_DEAD: "dead network: no spike reached the output layer during a whole epoch, from the start or after "
               "spikes did in an earlier one (the last good checkpoint is kept)",
    EXIT_OUTPUT: "cannot write the run folder: disk full, read-only, ... (the last good checkpoint is kept)",
    130: "interrupted by SIGINT (Ctrl-C): during training a resumable checkpoint is saved and the resume command "
         "printed (before training starts nothing is saved)",
    143: "terminated by SIGTERM: as 130",
}


# -------------------------------------------------------------------------------------------
# Command line
# -------------------------------------------------------------------------------------------

def build_parser():
    resumable = [flag(k) for k, knob in KNOBS.items() if not knob.experiment]
    epilog = ("with --resume only these flags may be given: " + ", ".join(resumable)
              + ", --out, --quiet, --no-download, --distributed (others only with the checkpoint's value); with --eval-only "
              "also " + ", ".join(flag(k) for k in EVAL_MAY_CHANGE)
              + ".\n\nexit status:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_STATUS.items())
              + "\n\nThe last line printed on stdout is a JSON summary.")
    p = argparse.ArgumentParser(
        prog="python -m minisnn.train", epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a spiking network with spike-based backpropagation (Lee et al. 2020), resume a "
                    "run, or evaluate a checkpoint. Flags left out take the preset's values; the resolved "
                    "config is printed and saved in OUT/metrics.json and in every checkpoint.")
    g, S = add_flags(p)["run"], argparse.SUPPRESS
    g.add_argument("--no-download", action="store_true", default=S,
                   help="never download: fail with a message saying which files to put where")
    g.add_argument("--out", default=S, help="run folder (default runs/<model>_<dataset>_<time>; with "
                   "--resume the checkpoint's folder; with --eval-only <checkpoint folder>/eval)")
    g.add_argument("--overwrite", action="store_true", default=S,
                   help="start a new run in a folder that already holds one, deleting its files")
    g.add_argument("--resume", metavar="PATH", default=S, help="continue the run saved in checkpoint PATH "
                   "exactly (same weights, optimiser state, schedule, RNG counters); PATH may be a run folder: "
                   "its interrupted.h5 (a stopped epoch) if there is one, else its checkpoint.h5")
    g.add_argument("--eval-only", metavar="CHECKPOINT", default=S, help="evaluate CHECKPOINT on the test set "
                   "(the whole test set unless --limit-test is given) and write metrics, without training")
    g.add_argument("--quiet", action="store_true", default=S, help="no progress bar")
    g.add_argument("--distributed", choices=("none", "auto", "mpi"), default=S,
                   help="data-parallel training over the processes of an MPI launcher (mpiexec -n K ...; "
                        "--batch-size is the global batch): 'auto' (default) when a launcher started more "
                        "than one process, 'mpi' always, 'none' never")
    return p


def parse_args(argv=None):
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    if "resume" in given and "eval_only" in given:
        parser.error("--resume and --eval-only cannot be combined")
    return given


def resolve_run(given, cluster=None):
    """(mode, config, checkpoint or None) from the flags; ConfigError/CheckpointError if bad.
    The checkpoint is read by rank 0 of a ``cluster`` and given to the others."""
    if "resume" not in given and "eval_only" not in given:
        return "train", resolve(given), None
    mode = "resume" if "resume" in given else "eval"
    path = given["resume"] if mode == "resume" else given["eval_only"]
    if mode == "resume" and Path(path).is_dir():
        path = RunFolder(path).resumable()
        if path is None:
            raise CheckpointError(f"{given['resume']}: the folder holds neither of {', '.join(RESUMABLE)}; "
                                  "give the checkpoint file to resume, or start a new run with --out")
    ckpt = checkpoint.load(path) if cluster is None else cluster.on_root(lambda: checkpoint.load(path))
    try:
        config = resolve_stored(given, ckpt.config, mode)
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt.path}: {exc}") from None
    if mode == "eval" and "limit_test" not in given and ckpt.config.get("limit_test") is not None:
        print(f"note: evaluating the whole test set (the run used --limit-test {ckpt.config['limit_test']}; "
              "pass --limit-test to use a subset)", flush=True)
    return mode, config, ckpt


# -------------------------------------------------------------------------------------------
# Main
# -------------------------------------------------------------------------------------------

def _fail(message, status=EXIT_BAD_INPUT):
    print(error_text("minisnn.train", message), file=sys.stderr, flush=True)
    return status


def main(argv=None, callbacks=()):
    """The command line; ``callbacks`` go to :func:`fit` (tests use them). Returns the exit status.
    Under an MPI launcher, every process runs it; rank 0 alone prints (the others' output goes to
    os.devnull) and writes the run folder."""
    def silence(stack):
        devnull = stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(contextlib.redirect_stdout(devnull))
        stack.enter_context(contextlib.redirect_stderr(devnull))

    previous, cluster = SIGNALS.install(), Solo()
    with contextlib.ExitStack() as silenced:
        try:
            with contextlib.ExitStack() as parsing:
                if launcher_rank() not in (None, 0):     # a usage error is printed once, by rank 0
                    silence(parsing)
                given = parse_args(argv)
            given["_argv"] = list(sys.argv[1:] if argv is None else argv)
            cluster = connect(given.get("distributed", "auto"))
            SIGNALS.deferring = cluster.collective        # signals act where the processes agree
            if not cluster.is_root:
                silence(silenced)
            return _main(given, callbacks, cluster)
        except SystemExit as exc:       # argparse: --help (0) or a usage error (2)
            return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
        except DeviceError as exc:
            return _stop(cluster, EXIT_BAD_INPUT, device_error_text(exc))
        except (ConfigError, CheckpointError, DatasetError, RunFolderError, DistributedError, UnsupportedGradient) as exc:
            return _stop(cluster, EXIT_BAD_INPUT, exc)
        except (Stop, Agreed) as exc:
            return _stop(cluster, exc.status, exc, shared=isinstance(exc, Agreed))
        except Interrupted as exc:
            print(f"minisnn.train: {exc} received {getattr(exc, 'when', 'before training started; nothing to resume')}",
                  file=sys.stderr)
            return 128 + exc.signum
        except Exception:
            if not cluster.collective:
                raise
            # an unexpected error on one process: every process stops
            print(f"minisnn.train (rank {cluster.rank}): unexpected error\n{traceback.format_exc()}",
                  file=sys.__stderr__, flush=True)
            cluster.fail(1, "unexpected error (a bug: the traceback above says where)")
            return 1
        finally:
            SIGNALS.restore(previous)


def _stop(cluster, status, message, shared=False):
    """Report a failure (rank 0 prints it); before training, the other processes stop with it."""
    if not shared:
        cluster.fail(status, str(message))
    return _fail(message, status)


def _main(given, callbacks, cluster):
    quiet = bool(given.get("quiet", False)) or not cluster.is_root
    mode, config, ckpt = resolve_run(given, cluster)
    best, standardize, partial, init_from, start = (checkpoint.run_state(ckpt) if ckpt is not None
                                                    else ({"epoch": None, "val_accuracy": None}, None, None, None, None))
    backend = Backend(cluster.device(config["device"]), config["dtype"])                   # the device
    keep_freed_memory()                                                                    # no page faults per step
    options = models.run_options(config, workers=config["threads"] or cluster.threads())  # how it runs
    if ckpt is not None:                                                                   # the network
        net = from_checkpoint(ckpt, backend, config, options=options).net                  # ... with its weights
    else:
        net = models.from_config(config, backend, options)
    if config["optimizer"] == "adam":
        opt = Adam(net.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    else:
        opt = SGD(net.parameters(), lr=config["lr"], momentum=config["momentum"], weight_decay=config["weight_decay"])
    sched = MultiStepLR(opt, config["milestones"], config["gamma"])
    if mode == "resume":
        checkpoint.restore(ckpt, net, opt, sched)                  # the optimiser state and schedule too
    elif ckpt is None and config["init_from"] is not None:
        init_from, standardize = initialize(net, config, cluster, download=not given.get("no_download", False))
    cluster.use_gpus(backend)
    cluster.agree()                                                 # every process has its network
    start_epoch = ckpt.epoch if ckpt is not None else 0
    if mode == "resume" and start_epoch >= config["epochs"]:
        print(f"nothing to train: {ckpt.path} has {start_epoch} completed epochs and --epochs is {config['epochs']}; "
              f"give --epochs N with N > {start_epoch} to train further", flush=True)
        print(json.dumps({"status": "completed", "epochs": start_epoch, "checkpoint": ckpt.path}), flush=True)
        return 0

    def load_data(download):                                                               # the data
        try:
            return pipeline.load_run_data(config, backend, download=download, need_train=mode != "eval",
                                 standardize=standardize, progress=not quiet)
        except (ValueError, OSError) as exc:
            raise Stop(f"cannot load dataset {config['dataset']}: {exc}", EXIT_BAD_INPUT) from None

    if cluster.is_root:
        data = load_data(not given.get("no_download", False))
    cluster.agree()                                     # rank 0 has the data (it may have downloaded it) ...
    if not cluster.is_root:
        data = load_data(False)
    cluster.agree()                                     # ... and so has every process
    if partial is not None and not partial["batches"] <= len(data.train):
        raise CheckpointError(f"{ckpt.path}: the interrupted epoch is at batch {partial['batches']} of {len(data.train)}")

    if "out" in given:                                                                     # the run folder
        out = Path(given["out"])
    elif ckpt is not None:
        out = Path(ckpt.path).parent / ("eval" if mode == "eval" else "")
    else:
        out = Path(cluster.on_root(lambda: f"runs/{config['model']}_{config['dataset']}_{_dt.datetime.now():%Y%m%d-%H%M%S}"))
    run = None                                                      # rank 0 alone holds the run folder

    def open_run():
        nonlocal run
        try:
            run = RunFolder(out).open(fresh=mode == "train", overwrite=given.get("overwrite", False))
            if mode == "resume" and partial is None and best["epoch"] == ckpt.epoch and checkpoint.peek_epoch(run / "best.h5") != ckpt.epoch:
                checkpoint.save(run / "best.h5", ckpt)
                print(f"repaired {run / 'best.h5'}: it now holds epoch {ckpt.epoch}, the best so far", flush=True)
        except OSError as exc:
            raise Stop(f"cannot write the run folder {out} ({exc.strerror or exc})", EXIT_OUTPUT) from None
    cluster.on_root(open_run)
    print(f"minisnn.train: {mode} {config['model']} on {config['dataset']} -> {out}", flush=True)
    print("config: " + json.dumps(config, sort_keys=True), flush=True)
    if not quiet:
        print(net.summary(), flush=True)
    print(events.describe_kernel(backend.xp), flush=True)
    metrics = {"mode": "eval-only" if mode == "eval" else "train", "config": config, "versions": versions(backend.device),
               "event_kernel": events.event_kernel(backend.xp),
               "seed": config["seed"], "command": ["python", "-m", "minisnn.train", *given["_argv"]]}
    if cluster.describe() is not None:
        metrics["distributed"] = cluster.describe()
    cluster.start()                                                 # every process is ready
    if mode == "eval":
        try:
            return _eval_only(net, data, config, ckpt, run, out, metrics, quiet, cluster)
        except Interrupted as exc:
            if run is not None:
                run.discard()
            exc.when = "during the evaluation; it was stopped and nothing was written"
            raise

    history = list(ckpt.history) if ckpt is not None else []
    metrics.update(resumed_from=ckpt.path if ckpt else None, init_from=init_from, status="running",
                   train_samples=data.train.num_samples, val_samples=data.val.num_samples if data.val is not None else 0,
                   test_samples=data.test.num_samples, parameters=net.num_parameters(), epochs=history, best=best,
                   wall_seconds=sum(r.get("epoch_seconds", 0.0) for r in history))
    if start is not None:
        metrics["start"] = start                                    # the evaluation of a 0-epoch run, carried on
    status, kept = 0, out / "checkpoint.h5"                        # kept: the last completed epoch, if any
    SIGNALS.deferring = True
    try:
        cluster.root_writes(lambda: run.write(metrics), lambda exc: write_failure(exc, out))   # the config, first
        if config["epochs"] == 0:                                   # a new run of 0 epochs: its start
            evaluate_start(net, opt, sched, data, config, run, metrics, quiet, cluster)
        else:
            fit(net, opt, sched, data, config, run, metrics, start_epoch, partial and Meter(**partial), callbacks,
                quiet, cluster)
        metrics["status"] = "completed"
    except Interrupted as exc:
        saved = getattr(exc, "saved", None)
        metrics.update(status="interrupted", resume_command=f"python -m minisnn.train --resume {saved}" if saved else None)
        aborted = f"aborted; the last completed epoch is in {kept}" if kept.exists() else "aborted; nothing was saved"
        print(f"minisnn.train: {exc} received; " + (f"the run is saved in {saved}; resume it with:\n  "
              f"{metrics['resume_command']}" if saved else aborted), file=sys.stderr, flush=True)
        status = 128 + exc.signum
    except (Stop, Agreed, OSError) as exc:
        status, reason = write_failure(exc, out) if isinstance(exc, (Stop, OSError)) else (exc.status, str(exc))
        metrics["status"] = f"failed: {reason}"
        _fail(f"{reason}; " + (f"the last good checkpoint {kept} is kept" if kept.exists() else "no checkpoint had been written yet"))
    finally:
        SIGNALS.deferring = cluster.collective
    last = next((r for r in reversed(history) if r.get("test_accuracy") is not None), metrics.get("start", {}))
    metrics["test_accuracy"] = last.get("test_accuracy")
    if run is not None:
        try:
            run.write(metrics)
        except OSError:
            pass                                                    # already reported
    print(json.dumps({"test_accuracy": last.get("test_accuracy"), "test_loss": last.get("test_loss"),
                      "epochs": len(history), "best_val_accuracy": best.get("val_accuracy"), "best_epoch": best.get("epoch"),
                      "wall_seconds": round(metrics["wall_seconds"], 3), "status": metrics["status"].split(":")[0],
                      "out": str(out)}), flush=True)
    return status


def initialize(net, config, cluster=None, download=True):
    """Load the weights of the checkpoint ``config["init_from"]`` into ``net`` (a warm start: the
    optimiser state, schedule and epoch count start afresh); an ANN's weights (``--network ann``)
    in a spiking run are first converted (:func:`minisnn.hybrid.initialize_from_ann`, hybrid
    training). Returns what the run records of it and the input standardisation to use: the
    checkpoint's on the same dataset (the weights were trained on it), else None (computed from
    this run's training set). Rank 0 of a ``cluster`` reads the checkpoint and gives it to the others."""
    def read():
        source = checkpoint.load(config["init_from"])
        return source, hashlib.sha256(Path(source.path).read_bytes()).hexdigest()
    source, digest = read() if cluster is None else cluster.on_root(read)
    theirs, ours = ((c.get("model"), c.get("width")) for c in (source.config, config))
    if theirs != ours:
        raise CheckpointError(f"--init-from {source.path}: the checkpoint holds {theirs[0]} at width {theirs[1]}, this "
                              f"run builds {ours[0]} at width {ours[1]}; give the checkpoint's --model and --width")
    tested = [row["test_accuracy"] for row in source.history if row.get("test_accuracy") is not None]
    record = {"checkpoint": str(source.path), "sha256": digest, "epoch": source.epoch,
              "network": source.config.get("network", "snn"), "dataset": source.config.get("dataset"),
              "test_accuracy": tested[-1] if tested else None}
    standardize = checkpoint.run_state(source)[1] if record["dataset"] == config["dataset"] else None
    if record["network"] == "ann" and config["network"] == "snn":
        record["conversion"] = initialize_from_ann(net, source, config, standardize, download)
        tested = "not recorded" if record["test_accuracy"] is None else f"{100 * record['test_accuracy']:.2f} %"
        print(f"converted the ANN of {source.path} (epoch {source.epoch}, test accuracy {tested}) "
              f"into the spiking network: {record['conversion']['percentile']}th percentile of "
              f"{record['conversion']['images']} training images, reset {config['reset']}, input {config['input']}"
              + (f", output scaled by {fit['factor']:.4g} (fitted on {fit['images']} of them)"
                 if (fit := record["conversion"].get("output_calibration")) else "")
              + "; optimiser state and schedule start afresh", flush=True)
        return record, standardize
    changed = [flag(k) for k in CONVERSION_KNOBS if config[k] != KNOBS[k].default]
    if changed:
        raise CheckpointError(f"--init-from {source.path}: {' and '.join(changed)} apply to an ANN checkpoint converted "
                              f"into a spiking run; this is a {record['network']} checkpoint for a {config['network']} run")
    checkpoint.restore(source, net)
    print(f"initialised the weights from {source.path} (epoch {source.epoch} of a {record['network']} run on "
          f"{record['dataset']}); optimiser state and schedule start afresh", flush=True)
    return record, standardize


def _eval_only(net, data, config, ckpt, run, out, metrics, quiet, cluster):
    # the same Poisson draws as the test evaluation after the checkpoint's last epoch
    result = evaluate(net, data.test, config, "test", max(ckpt.epoch - 1, 0), data.frames, quiet, cluster)
    print(f"test: loss {result['loss']:.4f} accuracy {100 * result['accuracy']:.2f}% "
          f"({result['samples']} samples, {result['seconds']:.1f}s)", flush=True)
    metrics.update(checkpoint=str(ckpt.path), checkpoint_epoch=ckpt.epoch, test_loss=result["loss"],
                   test_accuracy=result["accuracy"], test_samples=result["samples"],
                   spike_rates={"test": result["spike_rates"]}, epochs=[], wall_seconds=result["seconds"])
    try:
        cluster.root_writes(lambda: run.write(metrics, plot=False), lambda exc: write_failure(exc, out))
    except OSError as exc:
        raise Stop(f"cannot write the run folder {out} ({exc.strerror or exc})", EXIT_OUTPUT) from None
    print(json.dumps({"test_accuracy": result["accuracy"], "test_loss": result["loss"], "epochs": ckpt.epoch,
                      "checkpoint": str(ckpt.path), "wall_seconds": round(result["seconds"], 3),
                      "out": str(out)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
