"""Checkpoints in HDF5: everything a run needs to continue bit for bit, written atomically.

Layout of a checkpoint file (format ``minisnn-checkpoint``, version 2)::

    bytes 0-511            the header: b"minisnn-checkpoint sha256 ", the sha256 of every byte
                           after the header (64 hex digits), b"\\n", zeros (HDF5's "user block",
                           which HDF5 skips: h5py and h5dump read the file as usual)
    /                      attrs: format = "minisnn-checkpoint", format_version = 1,
                                  minisnn_version, created (ISO time),
                                  epoch (completed epochs), config (JSON),
                                  rng (JSON: seed and counters, see below),
                                  history (JSON: per-epoch metrics so far), extra (JSON),
                                  digest (sha256 of the attributes above and below)
    /weights/<name>        one dataset per parameter, e.g. "conv1.weight" (host dtype kept,
                           fletcher32 checksum)
    /optimizer             attrs: type ("sgd" | "adam"), lr, steps, hyper (JSON)
    /optimizer/<buffer>/<name>   the optimiser's state arrays (SGD "momentum"; Adam "m", "v")
    /scheduler             attrs: base_lr, milestones, gamma, epoch (next epoch to run)

Random state. All randomness in minisnn is counter-based (:meth:`Backend.rng`,
:meth:`Backend.host_rng`): the Poisson encoding and dropout of batch ``b`` in epoch ``e`` use
the key ``(seed, "train", e, b)``, and the data order / augmentation of epoch ``e`` the key
``(data_seed, "shuffle" | "augment", e, ...)``. The ``rng`` attribute therefore stores only the
seeds and the next epoch counter; nothing else is needed to replay the same draws.

A checkpoint taken in the middle of an epoch (on an interrupt) stores in ``extra["partial"]``
the next batch to run and the epoch's running sums; ``epoch`` still counts completed epochs.
A run started from another checkpoint's weights (``--init-from``) keeps that checkpoint's path,
sha256 and epoch in ``extra["init_from"]`` (for an ANN converted into a spiking run, also the
conversion's settings and scales, :mod:`minisnn.hybrid`); a run of 0 epochs keeps its evaluation of
the start in ``extra["start"]``, which a later ``--resume`` carries into its metrics.

Atomic write (:func:`save`): HDF5 builds the file in memory; its bytes are then written under a
unique temporary name in the destination folder, fsync'ed, renamed over the destination with
:func:`os.replace` and the folder is fsync'ed (:func:`minisnn.fileio.atomic_write_bytes`). A
process killed at any moment leaves either the previous complete file or the new complete file,
never a partial one, and a full disk is one plain OSError (HDF5 never writes to the disk itself).
Arrays that are not all finite are never written, and :func:`load` refuses them.

Bounded reading (:func:`load`, :mod:`minisnn.checkpoint_read`): a damaged byte in HDF5's own metadata can make the HDF5 library
loop forever or crash, so HDF5 never parses a file that has not been checked first. A version-2
file is checked against the sha256 in its header; a version-1 file (no header) is parsed once in
a child process with a time limit before it is parsed here.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import math
from pathlib import Path

import numpy as np

from .checkpoint_format import (FORMAT, FORMAT_VERSION, _HEADER_SIZE, Checkpoint, CheckpointError, NonFiniteError,
                                _digest, _header, check_finite)
from .checkpoint_read import load
from .fileio import atomic_write_bytes


# -------------------------------------------------------------------------------------------
# Capture and restore the state of a run
# -------------------------------------------------------------------------------------------

def capture(net, opt, sched, config, epoch, history, extra) -> Checkpoint:
    """The state of a training run after ``epoch`` completed epochs, as host arrays."""
    to_host = net.backend.to_host
    return Checkpoint(
        epoch=epoch,
        weights={k: to_host(v) for k, v in net.parameters().items()},
        optimizer={"type": config["optimizer"], **opt.state_dict(to_host=to_host),
                   "hyper": {"weight_decay": opt.weight_decay, "momentum": getattr(opt, "momentum", None)}},
        scheduler={"base_lr": sched.base_lr, "milestones": sched.milestones, "gamma": sched.gamma,
                   "epoch": epoch},
        config=config,
        rng={"seed": int(config["seed"]), "data_seed": int(config["seed"]), "next_epoch": epoch,
             "train_key": "(seed, 'train', epoch, batch)", "shuffle_key": "(data_seed, 'shuffle', epoch)",
             "augment_key": "(data_seed, 'augment', epoch, batch)"},
        history=history, extra=extra)


def restore(ckpt: Checkpoint, net, opt=None, sched=None):
    """Load the weights (and, given ``opt``/``sched``, the optimiser state and schedule)."""
    try:
        net.load_parameters(ckpt.weights)
    except ValueError as exc:
        raise CheckpointError(f"{ckpt.path}: weights do not fit model {ckpt.config.get('model')} "
                              f"(model mismatch: {exc})") from None
    if opt is None:
        return
    expected = ckpt.config.get("optimizer")
    if ckpt.optimizer["type"] != expected:
        raise CheckpointError(f"{ckpt.path}: optimiser state is {ckpt.optimizer['type']!r}, "
                              f"config says {expected!r}")
    opt.load_state_dict(ckpt.optimizer, to_device=net.backend.to_device)
    sched.base_lr = ckpt.scheduler["base_lr"]


# -------------------------------------------------------------------------------------------
# Writing
# -------------------------------------------------------------------------------------------

def _version():
    try:
        from . import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


def _json(obj):
    return json.dumps(obj, sort_keys=True, default=_json_default, allow_nan=False)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint attribute")


def _write_array(group, name, value):
    """One dataset with its fletcher32 sum, stored as a single chunk: HDF5's own chunk shape would
    pad a 3x3 kernel to 4x4 and store 1.8x its bytes."""
    value = np.asarray(value)
    group.create_dataset(name, data=value, fletcher32=True, chunks=value.shape if value.ndim and value.size else None)


def _write(h5, ckpt: Checkpoint):
    h5.attrs["format"] = FORMAT
    h5.attrs["format_version"] = FORMAT_VERSION
    h5.attrs["minisnn_version"] = _version()
    h5.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    h5.attrs["epoch"] = int(ckpt.epoch)
    h5.attrs["config"] = _json(ckpt.config)
    h5.attrs["rng"] = _json(ckpt.rng)
    h5.attrs["history"] = _json(ckpt.history)
    h5.attrs["extra"] = _json(ckpt.extra)
    weights = h5.create_group("weights")
    for name, value in ckpt.weights.items():
        _write_array(weights, name, value)
    opt = h5.create_group("optimizer")
    opt.attrs["type"] = str(ckpt.optimizer.get("type", ""))
    opt.attrs["lr"] = float(ckpt.optimizer["lr"])
    opt.attrs["steps"] = int(ckpt.optimizer["steps"])
    opt.attrs["hyper"] = _json(ckpt.optimizer.get("hyper", {}))
    for buffer, per in ckpt.optimizer.get("buffers", {}).items():
        group = opt.create_group(buffer)
        for name, value in per.items():
            _write_array(group, name, value)
    sched = h5.create_group("scheduler")
    sched.attrs["base_lr"] = float(ckpt.scheduler["base_lr"])
    sched.attrs["milestones"] = np.asarray(ckpt.scheduler["milestones"], dtype=np.int64)
    sched.attrs["gamma"] = float(ckpt.scheduler["gamma"])
    sched.attrs["epoch"] = int(ckpt.scheduler["epoch"])
    h5.attrs["digest"] = _digest(h5)


def save(path, ckpt: Checkpoint):
    """Write ``ckpt`` to ``path`` atomically (unique temporary file, fsync, os.replace, fsync
    dir). Refuses (NonFiniteError) a checkpoint whose arrays are not all finite."""
    import h5py

    check_finite(ckpt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = io.BytesIO()
    with h5py.File(image, "w", libver="latest", userblock_size=_HEADER_SIZE) as h5:   # checksummed metadata
        _write(h5, ckpt)
    body = image.getbuffer()[_HEADER_SIZE:]
    atomic_write_bytes(path, _header(body) + body)
    return path


# -------------------------------------------------------------------------------------------
# What a training run keeps
# -------------------------------------------------------------------------------------------

def _is_number(value, low=0):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= low


def run_state(ckpt: Checkpoint):
    """(best, standardize, partial, init_from, start): what a training run keeps in ``extra``, checked.
    ``best``: the best validation epoch; ``standardize``: the colour sets' channel statistics;
    ``partial``: the running sums of an interrupted epoch (None at an epoch's end); ``init_from``:
    the checkpoint whose weights the run started from (None: from a random initialisation);
    ``start``: the network's evaluation before its first epoch (None: not measured)."""
    extra = ckpt.extra
    best = extra.get("best", {"epoch": None, "val_accuracy": None})
    if not (isinstance(best, dict) and (best.get("epoch") is None or (isinstance(best["epoch"], int)
            and 0 < best["epoch"] <= ckpt.epoch and _is_number(best.get("val_accuracy"))))):
        raise CheckpointError(f"{ckpt.path}: the stored best epoch {best!r} is malformed")
    best = {"epoch": best.get("epoch"), "val_accuracy": best.get("val_accuracy"), "test_accuracy": best.get("test_accuracy")}
    stats = extra.get("standardize")
    if stats is not None and not (isinstance(stats, dict) and set(stats) == {"mean", "std"}
                                  and all(isinstance(stats[k], list) for k in stats)
                                  and len(stats["mean"]) == len(stats["std"]) > 0
                                  and all(_is_number(m, -math.inf) for m in stats["mean"])
                                  and all(_is_number(s) and s > 0 for s in stats["std"])):
        raise CheckpointError(f"{ckpt.path}: the stored standardisation {stats!r} is malformed")
    partial = extra.get("partial")
    counts = ("correct", "seen", "batches")
    if partial is not None and not (
            isinstance(partial, dict) and set(partial) == {"loss", "seconds", "rates", *counts}
            and all(isinstance(partial[k], int) and _is_number(partial[k]) for k in counts)
            and _is_number(partial["loss"]) and _is_number(partial["seconds"]) and partial["correct"] <= partial["seen"]
            and isinstance(partial["rates"], dict) and all(_is_number(v) for v in partial["rates"].values())):
        raise CheckpointError(f"{ckpt.path}: the stored state of the interrupted epoch is malformed")
    init_from = extra.get("init_from")
    if init_from is not None and not (isinstance(init_from, dict) and isinstance(init_from.get("checkpoint"), str)
                                      and isinstance(init_from.get("epoch"), int)):
        raise CheckpointError(f"{ckpt.path}: the stored initial checkpoint {init_from!r} is malformed")
    start = extra.get("start")
    if start is not None and not (isinstance(start, dict) and all(
            _is_number(start.get(f"{split}_{what}")) for split in ("val", "test") for what in ("loss", "accuracy")
            if f"{split}_loss" in start)):
        raise CheckpointError(f"{ckpt.path}: the stored evaluation of the start {start!r} is malformed")
    return best, stats, partial, init_from, start


def peek_epoch(path):
    """The completed-epoch counter of a checkpoint, or None when it cannot be read (for polling)."""
    try:
        return load(path).epoch
    except CheckpointError:
        return None


__all__ = ["FORMAT", "FORMAT_VERSION", "Checkpoint", "CheckpointError", "NonFiniteError", "capture", "restore",
           "check_finite", "run_state", "save", "load", "peek_epoch"]
