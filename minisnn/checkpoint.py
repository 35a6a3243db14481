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
conversion's settings and scales, :mod:`minisnn.hybrid`).

Atomic write (:func:`save`): HDF5 builds the file in memory; its bytes are then written under a
unique temporary name in the destination folder, fsync'ed, renamed over the destination with
:func:`os.replace` and the folder is fsync'ed (:func:`minisnn.fileio.atomic_write_bytes`). A
process killed at any moment leaves either the previous complete file or the new complete file,
never a partial one, and a full disk is one plain OSError (HDF5 never writes to the disk itself).
Arrays that are not all finite are never written, and :func:`load` refuses them.

Bounded reading (:func:`load`): a damaged byte in HDF5's own metadata can make the HDF5 library
loop forever or crash, so HDF5 never parses a file that has not been checked first. A version-2
file is checked against the sha256 in its header; a version-1 file (no header) is parsed once in
a child process with a time limit before it is parsed here.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import io
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fileio import atomic_write_bytes

FORMAT = "minisnn-checkpoint"
FORMAT_VERSION = 2
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HEADER_SIZE = 512                       # HDF5's smallest user block
_HEADER_MAGIC = b"minisnn-checkpoint sha256 "
_LEGACY_SECONDS = 30.0                   # time limit of the child parsing a version-1 file, plus 1 s per 20 MB
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


def _header(body):
    """The 512-byte header of a version-2 file whose bytes after the header are ``body``."""
    line = _HEADER_MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n"
    return line.ljust(_HEADER_SIZE, b"\0")


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
    image = io.BytesIO()
    with h5py.File(image, "w", libver="latest", userblock_size=_HEADER_SIZE) as h5:   # checksummed metadata
        _write(h5, ckpt)
    body = image.getbuffer()[_HEADER_SIZE:]
    atomic_write_bytes(path, _header(body) + body)
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
    """Read one dataset: a real floating type with its fletcher32 checksum, no larger than the
    file could hold."""
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise CheckpointError(f"{path}: {name} is not an array")
    if ds.dtype.kind != "f" or ds.dtype.itemsize not in (4, 8):
        raise CheckpointError(f"{path}: {name} has dtype {ds.dtype}; expected float32 or float64")
    if ds.size * ds.dtype.itemsize > file_size:
        raise CheckpointError(f"{path}: {name} declares {ds.shape} values, more than the "
                              f"{file_size}-byte file holds; the file is corrupt")
    if not ds.fletcher32:
        raise CheckpointError(f"{path}: {name} is stored without its fletcher32 checksum; the file was "
                              "edited or not written by minisnn")
    return ds[()]


def load(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save`; every problem raises :class:`CheckpointError`.

    Checked before HDF5 parses the file: it is a regular file; a version-2 file matches the
    sha256 in its header (any changed, missing or added byte is refused), a version-1 file is
    parsed within a time limit in a child process. Then: the ``format`` marker and
    ``format_version`` are ours; the signed attributes match their ``digest`` and every array
    carries and matches its fletcher32 checksum; counters and rates are in range; arrays are
    float32 or float64, no larger than the file, finite; every optimiser buffer matches its
    weight, and every buffer the optimiser keeps is there for every weight.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    data = path.read_bytes()
    if data.startswith(_HEADER_MAGIC):
        if len(data) < _HEADER_SIZE or data[:_HEADER_SIZE] != _header(memoryview(data)[_HEADER_SIZE:]):
            raise CheckpointError(f"{path}: the file does not match the sha256 in its header: the file is truncated "
                                  "or corrupt, or was edited")
        return _parse(data, path, sealed=True)
    if data.startswith(_HDF5_SIGNATURE):
        _parse_in_child(data, path)
        return _parse(data, path, sealed=False)
    raise CheckpointError(f"{path}: not an HDF5 file (wrong signature, no minisnn header); not a minisnn checkpoint")


def _parse(data, path, sealed):
    """The checkpoint in the bytes ``data`` of the file ``path``, checked."""
    import h5py

    try:
        h5 = h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot open as HDF5, the file is truncated or corrupt ({exc})") from exc
    try:
        with h5:
            ckpt = _read(h5, path, len(data), sealed)
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


def _parse_in_child(data, path):
    """Parse a version-1 file (no header checksum) in a child process killed after a time limit:
    damaged HDF5 metadata can hang or crash the HDF5 library, which no signal interrupts."""
    limit = _LEGACY_SECONDS + len(data) / 20e6
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    try:
        child = subprocess.run([sys.executable, "-c", "import minisnn.checkpoint as c; c._child_main()", str(path)],
                               input=data, capture_output=True, timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        raise CheckpointError(f"{path}: HDF5 did not finish reading the file in {limit:.0f} s; its metadata is "
                              "corrupt") from None
    if child.returncode == 0:
        return
    said = child.stderr.decode(errors="replace").strip().splitlines()
    if child.returncode == 3 and said:
        raise CheckpointError(said[-1])
    raise CheckpointError(f"{path}: HDF5 failed reading the file (exit status {child.returncode}); it is corrupt")


def _child_main():
    """The child of :func:`_parse_in_child`: parse the bytes on stdin; exit 3 with the message."""
    try:
        _parse(sys.stdin.buffer.read(), sys.argv[1], sealed=False)
    except CheckpointError as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)


def _read(h5, path, file_size, sealed):
    import h5py

    marker = _str_attr(h5.attrs, "format")
    if marker != FORMAT:
        raise CheckpointError(f"{path}: not a minisnn checkpoint (format marker {marker!r}, expected {FORMAT!r})")
    version = _number(h5.attrs, "format_version", path, int)
    if version not in (1, FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format version {version} is not supported "
                              f"(this minisnn reads versions 1 and {FORMAT_VERSION})")
    if (version == FORMAT_VERSION) != sealed:
        raise CheckpointError(f"{path}: a version-{version} checkpoint " + ("with" if sealed else "without")
                              + " a minisnn header; the file was edited or not written by minisnn")
    for group in ("weights", "optimizer", "scheduler"):
        if group not in h5 or not isinstance(h5[group], h5py.Group):
            raise CheckpointError(f"{path}: checkpoint lacks the /{group} group (incomplete file)")
    if "digest" not in h5.attrs:
        raise CheckpointError(f"{path}: checkpoint lacks the 'digest' attribute that signs its attributes; "
                              "the file was edited or not written by minisnn")
    if _str_attr(h5.attrs, "digest") != _digest(h5):
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
    _check_complete(optimizer, weights, path)
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


def _check_complete(optimizer, weights, path):
    """After a first step, SGD with momentum keeps a ``momentum`` buffer and Adam ``m`` and ``v``
    for every weight: a checkpoint missing one would resume with it silently reset."""
    if optimizer["steps"] == 0:
        return
    needed = ("m", "v") if optimizer["type"] == "adam" else ("momentum",) if optimizer["hyper"].get("momentum") else ()
    for buffer in needed:
        missing = sorted(set(weights) - set(optimizer["buffers"].get(buffer, {})))
        if missing:
            raise CheckpointError(f"{path}: the {optimizer['type']} optimiser state lacks {buffer}/{missing[0]}"
                                  f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}; the file is "
                                  "incomplete and cannot resume exactly")


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
