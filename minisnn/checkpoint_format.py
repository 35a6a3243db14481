"""The checkpoint file's format: its content as host objects (:class:`Checkpoint`), its errors,
and the two checksums that seal it - the sha256 header over the file's bytes and the ``digest``
attribute over its signed attributes (layout in :mod:`minisnn.checkpoint`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

FORMAT = "minisnn-checkpoint"
FORMAT_VERSION = 2
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HEADER_SIZE = 512                       # HDF5's smallest user block
_HEADER_MAGIC = b"minisnn-checkpoint sha256 "
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


def check_finite(ckpt: Checkpoint):
    """Raise NonFiniteError naming the first weight or buffer that holds NaN or infinity."""
    for name, value in ckpt.arrays():
        if not np.isfinite(value).all():
            raise NonFiniteError(f"{name} holds NaN or infinite values")



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


__all__ = ["FORMAT", "FORMAT_VERSION", "Checkpoint", "CheckpointError", "NonFiniteError", "check_finite"]
