"""Reading a checkpoint, nothing trusted (:func:`load`): the header's sha256 is checked before
HDF5 parses a version-2 file, a version-1 file is parsed first in a time-limited child process
(damaged HDF5 metadata can hang or crash the HDF5 library), then every attribute and array is
validated (layout in :mod:`minisnn.checkpoint`).
"""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .checkpoint_format import (FORMAT, FORMAT_VERSION, _BUFFERS, _HDF5_SIGNATURE, _HEADER_MAGIC, _HEADER_SIZE,
                                Checkpoint, CheckpointError, NonFiniteError, _digest, _header, check_finite)

_LEGACY_SECONDS = 30.0                   # time limit of the child parsing a version-1 file, plus 1 s per 20 MB


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
        child = subprocess.run([sys.executable, "-c", "import minisnn.checkpoint_read as c; c._child_main()", str(path)],
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


__all__ = ["load"]
