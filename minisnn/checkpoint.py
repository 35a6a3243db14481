"""Checkpoints in HDF5: everything a run needs to continue bit for bit, written atomically.

Layout of a checkpoint file (format ``minisnn-checkpoint``, version 1)::

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
conversion's settings and scales, :mod:`minisnn.hybrid`).

Atomic write (:func:`save`): the file is written under a unique temporary name in the
destination folder, fsync'ed, renamed over the destination with :func:`os.replace` and the
folder is fsync'ed (:func:`minisnn.fileio.atomic_path`). A process killed at any moment leaves
either the previous complete file or the new complete file, never a partial one. Arrays that
are not all finite are never written, and :func:`load` refuses them.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fileio import atomic_path

FORMAT = "minisnn-checkpoint"
FORMAT_VERSION = 1
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_BUFFERS = ("momentum", "m", "v")        # SGD momentum; Adam first and second moments


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, not ours, corrupt, or does not fit the model."""


class NonFiniteError(ValueError):
    """Weights or optimiser state hold NaN or infinity (never written to a checkpoint)."""


@dataclass
class Checkpoint:
    """The content of a checkpoint file, as host objects."""

    epoch: int
    weights: dict
    optimizer: dict                      # {"type", "lr", "steps", "hyper", "buffers"}
    scheduler: dict                      # {"base_lr", "milestones", "gamma", "epoch"}
    config: dict
    rng: dict
    history: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    minisnn_version: str = ""
    path: str = ""

    def arrays(self):
        """(name, array) of every weight and optimiser buffer."""
        yield from self.weights.items()
        for buffer, per in self.optimizer.get("buffers", {}).items():
            for name, value in per.items():
                yield f"{buffer}/{name}", value


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


#: The attributes covered by the ``digest`` attribute (the arrays carry HDF5 fletcher32 sums).
_SIGNED = (("/", ("epoch", "config", "rng", "history", "extra")),
           ("optimizer", ("type", "lr", "steps", "hyper")),
           ("scheduler", ("base_lr", "milestones", "gamma", "epoch")))


def _digest(h5):
    """sha256 of the signed attributes as stored, so that a changed byte in them is noticed."""
    h = hashlib.sha256()
    for group, keys in _SIGNED:
        attrs = h5[group].attrs
        for key in keys:
            value = attrs.get(key)
            value = value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
            value = value.decode(errors="replace") if isinstance(value, bytes) else value
            h.update(f"{group}/{key}={value!r};".encode())
    return h.hexdigest()


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


def check_finite(ckpt: Checkpoint):
    """Raise NonFiniteError naming the first weight or buffer that holds NaN or infinity."""
    for name, value in ckpt.arrays():
        if not np.isfinite(value).all():
            raise NonFiniteError(f"{name} holds NaN or infinite values")


def save(path, ckpt: Checkpoint):
    """Write ``ckpt`` to ``path`` atomically (unique temporary file, fsync, os.replace, fsync
    dir). Refuses (NonFiniteError) a checkpoint whose arrays are not all finite."""
    import h5py

    check_finite(ckpt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver="latest") as h5:   # checksummed metadata
        _write(h5, ckpt)
    return path


# -------------------------------------------------------------------------------------------
# Reading: nothing is trusted
# -------------------------------------------------------------------------------------------

def _attr_json(h5, key, path, kind, default=None):
    if key not in h5.attrs:
        if default is not None:
            return default
        raise CheckpointError(f"{path}: checkpoint lacks the {key!r} attribute (incomplete or foreign file)")
    raw = h5.attrs[key]
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        value = json.loads(str(raw))
    except ValueError as exc:
        raise CheckpointError(f"{path}: attribute {key!r} is not valid JSON ({exc})") from exc
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: attribute {key!r} is a {type(value).__name__}, expected a {kind.__name__}")
    return value


def _str_attr(attrs, key):
    value = attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value


def _number(attrs, key, path, kind, low=None):
    """A scalar attribute of type ``kind`` (int or float), finite and >= ``low``."""
    if key not in attrs:
        raise CheckpointError(f"{path}: checkpoint lacks the {key!r} attribute (incomplete file)")
    value = attrs[key]
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
        raise CheckpointError(f"{path}: {key} = {value!r} is not a number")
    if kind is int and not isinstance(value, (int, np.integer)):
        raise CheckpointError(f"{path}: {key} = {value!r} is not an integer")
    value = kind(value)
    if not math.isfinite(value) or (low is not None and value < low):
        raise CheckpointError(f"{path}: {key} = {value!r} is out of range (must be finite and >= {low})")
    return value


def _array(ds, path, name, file_size):
    """Read one dataset: a real floating type, no larger than the file could hold."""
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise CheckpointError(f"{path}: {name} is not an array")
    if ds.dtype.kind != "f" or ds.dtype.itemsize not in (4, 8):
        raise CheckpointError(f"{path}: {name} has dtype {ds.dtype}; expected float32 or float64")
    if ds.size * ds.dtype.itemsize > file_size:
        raise CheckpointError(f"{path}: {name} declares {ds.shape} values, more than the "
                              f"{file_size}-byte file holds; the file is corrupt")
    return ds[()]


def load(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save`; every problem raises :class:`CheckpointError`.

    Checked: the file is a regular file with the HDF5 signature that HDF5 can read (a truncated
    file fails here); the ``format`` marker and ``format_version`` are ours; the signed
    attributes match their digest and every array its fletcher32 checksum (checkpoints written
    before both existed skip these two); counters and rates are in range; arrays are float32 or
    float64, no larger than the file, finite, and each optimiser buffer matches its weight.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head != _HDF5_SIGNATURE:
        raise CheckpointError(f"{path}: not an HDF5 file (wrong signature); not a minisnn checkpoint")
    file_size = path.stat().st_size
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot open as HDF5, the file is truncated or corrupt ({exc})") from exc
    try:
        with h5:
            ckpt = _read(h5, path, file_size)
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint, the file is truncated or corrupt "
                              f"({type(exc).__name__}: {exc})") from exc
    try:
        check_finite(ckpt)
    except NonFiniteError as exc:
        raise CheckpointError(f"{path}: {exc}; a checkpoint must hold finite numbers") from None
    return ckpt


def _read(h5, path, file_size):
    import h5py

    marker = _str_attr(h5.attrs, "format")
    if marker != FORMAT:
        raise CheckpointError(f"{path}: not a minisnn checkpoint (format marker {marker!r}, expected {FORMAT!r})")
    version = _number(h5.attrs, "format_version", path, int)
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is not supported "
                              f"(this minisnn reads version {FORMAT_VERSION})")
    for group in ("weights", "optimizer", "scheduler"):
        if group not in h5 or not isinstance(h5[group], h5py.Group):
            raise CheckpointError(f"{path}: checkpoint lacks the /{group} group (incomplete file)")
    if "digest" in h5.attrs and _str_attr(h5.attrs, "digest") != _digest(h5):
        raise CheckpointError(f"{path}: the checkpoint's attributes do not match their checksum; the file is corrupt")
    if len(h5["weights"]) == 0:
        raise CheckpointError(f"{path}: checkpoint holds no weights")
    weights = {name: _array(h5["weights"][name], path, f"weights/{name}", file_size) for name in h5["weights"]}
    dtypes = {w.dtype for w in weights.values()}
    if len(dtypes) != 1:
        raise CheckpointError(f"{path}: the weights mix dtypes {sorted(map(str, dtypes))}")
    opt = h5["optimizer"]
    buffers = {}
    for buffer in opt:
        if buffer not in _BUFFERS or not isinstance(opt[buffer], h5py.Group):
            raise CheckpointError(f"{path}: unknown optimiser state /optimizer/{buffer}")
        buffers[buffer] = {}
        for name in opt[buffer]:
            value = _array(opt[buffer][name], path, f"optimizer/{buffer}/{name}", file_size)
            if name not in weights or value.shape != weights[name].shape or value.dtype != weights[name].dtype:
                raise CheckpointError(f"{path}: optimiser state {buffer}/{name} does not match any weight "
                                      "(name, shape or dtype)")
            buffers[buffer][name] = value
    kind = _str_attr(opt.attrs, "type")
    if kind not in ("sgd", "adam"):
        raise CheckpointError(f"{path}: unknown optimiser type {kind!r}")
    optimizer = {"type": kind, "lr": _number(opt.attrs, "lr", path, float, 0.0),
                 "steps": _number(opt.attrs, "steps", path, int, 0),
                 "hyper": _attr_json(opt, "hyper", path, dict, default={}), "buffers": buffers}
    sched = h5["scheduler"].attrs
    milestones = np.atleast_1d(sched.get("milestones", np.zeros(0, np.int64)))
    if milestones.dtype.kind not in "iu" or milestones.ndim != 1 or (milestones < 0).any():
        raise CheckpointError(f"{path}: scheduler milestones {milestones.tolist()} are not epochs >= 0")
    scheduler = {"base_lr": _number(sched, "base_lr", path, float, 0.0),
                 "milestones": [int(m) for m in milestones],
                 "gamma": _number(sched, "gamma", path, float, 0.0), "epoch": _number(sched, "epoch", path, int, 0)}
    for key, value in (("lr", optimizer["lr"]), ("base_lr", scheduler["base_lr"]), ("gamma", scheduler["gamma"])):
        if value <= 0:
            raise CheckpointError(f"{path}: {key} = {value} must be positive")
    epoch = _number(h5.attrs, "epoch", path, int, 0)
    if scheduler["epoch"] != epoch:
        raise CheckpointError(f"{path}: the scheduler is at epoch {scheduler['epoch']} but the checkpoint at {epoch}")
    return Checkpoint(
        epoch=epoch, weights=weights, optimizer=optimizer, scheduler=scheduler,
        config=_attr_json(h5, "config", path, dict), rng=_attr_json(h5, "rng", path, dict),
        history=_attr_json(h5, "history", path, list, default=[]),
        extra=_attr_json(h5, "extra", path, dict, default={}), format_version=version,
        minisnn_version=str(_str_attr(h5.attrs, "minisnn_version") or ""), path=str(path))


def _is_number(value, low=0):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= low


def run_state(ckpt: Checkpoint):
    """(best, standardize, partial, init_from): what a training run keeps in ``extra``, checked.
    ``best``: the best validation epoch; ``standardize``: the colour sets' channel statistics;
    ``partial``: the running sums of an interrupted epoch (None at an epoch's end); ``init_from``:
    the checkpoint whose weights the run started from (None: from a random initialisation)."""
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
    return best, stats, partial, init_from


def peek_epoch(path):
    """The completed-epoch counter of a checkpoint, or None when it cannot be read (for polling)."""
    try:
        return load(path).epoch
    except CheckpointError:
        return None


__all__ = ["FORMAT", "FORMAT_VERSION", "Checkpoint", "CheckpointError", "NonFiniteError", "capture", "restore",
           "check_finite", "run_state", "save", "load", "peek_epoch"]
