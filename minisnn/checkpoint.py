"""Checkpoints in HDF5: everything a run needs to continue bit for bit, written atomically.

Layout of a checkpoint file (format ``minisnn-checkpoint``, version 1)::

    /                      attrs: format = "minisnn-checkpoint", format_version = 1,
                                  minisnn_version, created (ISO time),
                                  epoch (completed epochs), config (JSON),
                                  rng (JSON: seed and counters, see below),
                                  history (JSON: per-epoch metrics so far), extra (JSON)
    /weights/<name>        one dataset per parameter, e.g. "conv1.weight" (host dtype kept)
    /optimizer             attrs: type ("sgd" | "adam"), lr, steps, hyper (JSON)
    /optimizer/<buffer>/<name>   the optimiser's state arrays (SGD "momentum"; Adam "m", "v")
    /scheduler             attrs: base_lr, milestones, gamma, epoch (next epoch to run)

Random state. All randomness in minisnn is counter-based (:meth:`Backend.rng`,
:meth:`Backend.host_rng`): the Poisson encoding and dropout of batch ``b`` in epoch ``e`` use
the key ``(seed, "train", e, b)``, and the data order / augmentation of epoch ``e`` the key
``(data_seed, "shuffle" | "augment", e, ...)``. The ``rng`` attribute therefore stores only the
seeds and the next epoch counter; nothing else is needed to replay the same draws.

Atomic write (:func:`save`): the file is written under a temporary name in the destination
folder, flushed and fsync'ed, renamed over the destination with :func:`os.replace` and the
folder is fsync'ed. A process killed at any moment leaves either the previous complete file
or the new complete file, never a partial one.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fileio import fsync_dir

FORMAT = "minisnn-checkpoint"
FORMAT_VERSION = 1
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, not ours, or does not fit the model."""


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


def _version():
    try:
        from . import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


def _json(obj):
    return json.dumps(obj, sort_keys=True, default=_json_default)


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
        weights.create_dataset(name, data=np.asarray(value))
    opt = h5.create_group("optimizer")
    opt.attrs["type"] = str(ckpt.optimizer.get("type", ""))
    opt.attrs["lr"] = float(ckpt.optimizer["lr"])
    opt.attrs["steps"] = int(ckpt.optimizer["steps"])
    opt.attrs["hyper"] = _json(ckpt.optimizer.get("hyper", {}))
    for buffer, per in ckpt.optimizer.get("buffers", {}).items():
        group = opt.create_group(buffer)
        for name, value in per.items():
            group.create_dataset(name, data=np.asarray(value))
    sched = h5.create_group("scheduler")
    sched.attrs["base_lr"] = float(ckpt.scheduler["base_lr"])
    sched.attrs["milestones"] = np.asarray(ckpt.scheduler["milestones"], dtype=np.int64)
    sched.attrs["gamma"] = float(ckpt.scheduler["gamma"])
    sched.attrs["epoch"] = int(ckpt.scheduler["epoch"])


def save(path, ckpt: Checkpoint):
    """Write ``ckpt`` to ``path`` atomically (temporary file, fsync, os.replace, fsync dir)."""
    import h5py

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)        # mkstemp makes 0600; give the usual file mode
    try:
        with h5py.File(tmp, "w") as h5:
            _write(h5, ckpt)
            h5.flush()
        with open(tmp, "rb+") as handle:   # h5py closed the file; make its bytes durable
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(folder)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _attr_json(h5, key, path, default=None):
    if key not in h5.attrs:
        if default is not None:
            return default
        raise CheckpointError(f"{path}: checkpoint lacks the {key!r} attribute (incomplete or foreign file)")
    raw = h5.attrs[key]
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(str(raw))
    except ValueError as exc:
        raise CheckpointError(f"{path}: attribute {key!r} is not valid JSON ({exc})") from exc


def _str_attr(attrs, key):
    value = attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value


def load(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save`; every problem raises :class:`CheckpointError`.

    Checked: the file exists and is a regular file; it starts with the HDF5 signature; HDF5 can
    open and read it (a truncated file fails here); the ``format`` marker and ``format_version``
    are ours; the weights, optimiser and scheduler groups are present.
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
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot open as HDF5, the file is truncated or corrupt ({exc})") from exc
    try:
        with h5:
            marker = _str_attr(h5.attrs, "format")
            if marker != FORMAT:
                raise CheckpointError(f"{path}: not a minisnn checkpoint (format marker {marker!r}, "
                                      f"expected {FORMAT!r})")
            version = int(h5.attrs.get("format_version", -1))
            if version != FORMAT_VERSION:
                raise CheckpointError(f"{path}: checkpoint format version {version} is not supported "
                                      f"(this minisnn reads version {FORMAT_VERSION})")
            for group in ("weights", "optimizer", "scheduler"):
                if group not in h5 or not isinstance(h5[group], h5py.Group):
                    raise CheckpointError(f"{path}: checkpoint lacks the /{group} group (incomplete file)")
            if len(h5["weights"]) == 0:
                raise CheckpointError(f"{path}: checkpoint holds no weights")
            weights = {name: h5["weights"][name][()] for name in h5["weights"]}
            opt = h5["optimizer"]
            buffers = {b: {name: opt[b][name][()] for name in opt[b]} for b in opt}
            optimizer = {"type": _str_attr(opt.attrs, "type"), "lr": float(opt.attrs["lr"]),
                         "steps": int(opt.attrs["steps"]),
                         "hyper": _attr_json(opt, "hyper", path, default={}),
                         "buffers": buffers}
            sched = h5["scheduler"].attrs
            scheduler = {"base_lr": float(sched["base_lr"]),
                         "milestones": [int(m) for m in np.atleast_1d(sched["milestones"])],
                         "gamma": float(sched["gamma"]), "epoch": int(sched["epoch"])}
            return Checkpoint(
                epoch=int(h5.attrs["epoch"]), weights=weights, optimizer=optimizer,
                scheduler=scheduler, config=_attr_json(h5, "config", path),
                rng=_attr_json(h5, "rng", path), history=_attr_json(h5, "history", path, default=[]),
                extra=_attr_json(h5, "extra", path, default={}), format_version=version,
                minisnn_version=str(_str_attr(h5.attrs, "minisnn_version") or ""), path=str(path))
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint, the file is truncated or corrupt "
                              f"({type(exc).__name__}: {exc})") from exc


def peek_epoch(path):
    """The completed-epoch counter of a checkpoint, or None when it cannot be read (for polling)."""
    try:
        return load(path).epoch
    except CheckpointError:
        return None


__all__ = ["FORMAT", "FORMAT_VERSION", "Checkpoint", "CheckpointError", "save", "load", "peek_epoch"]
