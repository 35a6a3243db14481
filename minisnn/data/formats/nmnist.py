"""N-MNIST recordings (40-bit events) and binning events into frames."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DatasetCorruptError, DatasetError
from .common import _REDOWNLOAD, _read_bytes


NMNIST_EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.int8),
                               ("t", np.int64)])
NMNIST_SIZE = 34
_OVERFLOW_Y = 240          # Orchard's reader: an event with y == 240 marks a timestamp overflow
_OVERFLOW_STEP = 1 << 13   # ... and adds 2**13 us to all later timestamps (as in his reader)


def parse_nmnist(data: bytes, path="<bytes>") -> np.ndarray:
    """Decode N-MNIST 40-bit big-endian events (see :func:`read_nmnist`)."""
    if not data:
        raise DatasetCorruptError(f"{path}: the file is empty; an N-MNIST recording holds events, {_REDOWNLOAD}")
    if len(data) % 5:
        raise DatasetCorruptError(
            f"{path}: length {len(data)} bytes is not a multiple of 5 (40-bit events); "
            f"the file is truncated or not an N-MNIST .bin, {_REDOWNLOAD}")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 5)
    x = raw[:, 0].astype(np.int16)
    y = raw[:, 1].astype(np.int16)
    b2 = raw[:, 2].astype(np.int64)
    p = (b2 >> 7).astype(np.int8)
    t = ((b2 & 0x7F) << 16) | (raw[:, 3].astype(np.int64) << 8) | raw[:, 4].astype(np.int64)
    overflow = y == _OVERFLOW_Y
    if overflow.any():
        t = t + _OVERFLOW_STEP * np.cumsum(overflow)
        keep = ~overflow
        x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    if t.size > 1 and (np.diff(t) < 0).any():
        i = int(np.argmax(np.diff(t) < 0)) + 1
        raise DatasetCorruptError(
            f"{path}: timestamps go backwards (event {i}: {int(t[i])} us after {int(t[i - 1])} "
            f"us); not an N-MNIST recording, or a corrupt one, {_REDOWNLOAD}")
    if x.size and (x.max() >= NMNIST_SIZE or y.max() >= NMNIST_SIZE):
        raise DatasetCorruptError(
            f"{path}: event coordinates out of range (x max {int(x.max())}, y max "
            f"{int(y.max())}; both must be < {NMNIST_SIZE}); not an N-MNIST recording?")
    if not x.size:
        raise DatasetCorruptError(f"{path}: the file holds no events (only timestamp-overflow markers), {_REDOWNLOAD}")
    ev = np.empty(x.size, dtype=NMNIST_EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = x, y, p, t
    return ev


def read_nmnist(path) -> np.ndarray:
    """Read one N-MNIST ``.bin`` recording.

    Each event is 5 bytes, big-endian: byte 0 = x, byte 1 = y, bit 7 of byte 2 = polarity,
    the remaining 23 bits (byte 2 low 7 bits, byte 3, byte 4) = timestamp in microseconds.
    Returns a structured array with fields ``x``, ``y`` (int16, < 34), ``p`` (int8, 0 = OFF,
    1 = ON) and ``t`` (int64 microseconds). Like the dataset author's reader, an event with
    y == 240 is a timestamp-overflow marker: it is dropped and adds 2**13 us to the timestamps
    of all later events (real N-MNIST recordings, ~0.3 s, contain none). Timestamps must not
    decrease (after that correction); an empty recording, and anything but a regular file, are
    refused.
    """
    return parse_nmnist(_read_bytes(path), path)


def events_to_frames(events, T: int, duration_us=None, height: int = NMNIST_SIZE,
                     width: int = NMNIST_SIZE) -> np.ndarray:
    """Bin events into ``T`` frames of event counts: float32 array (T, 2, height, width).

    Channel 0 counts OFF events (p = 0), channel 1 ON events (p = 1). Time is split into T
    equal bins over [0, duration_us); ``duration_us`` defaults to the recording's length
    (last timestamp + 1), and events at or after ``duration_us`` are dropped.
    """
    T = int(T)
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    frames = np.zeros((T, 2, height, width), dtype=np.float32)
    if len(events) == 0:
        return frames
    x = np.asarray(events["x"], dtype=np.int64)
    y = np.asarray(events["y"], dtype=np.int64)
    p = np.asarray(events["p"], dtype=np.int64)
    t = np.asarray(events["t"], dtype=np.int64)
    if x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height:
        raise DatasetError(f"events lie outside the {height}x{width} sensor")
    if p.min() < 0 or p.max() > 1:
        raise DatasetError("event polarities must be 0 or 1")
    if duration_us is None:
        duration = int(t.max()) + 1
    else:
        duration = int(duration_us)
        if duration <= 0:
            raise ValueError(f"duration_us must be > 0, got {duration_us}")
    keep = (t >= 0) & (t < duration)
    if not keep.all():
        x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    b = (t * T) // duration
    flat = ((b * 2 + p) * height + y) * width + x
    counts = np.bincount(flat, minlength=T * 2 * height * width)
    frames[...] = counts.reshape(T, 2, height, width)
    return frames


def nmnist_batch(recordings, T: int, duration_us=None, binary: bool = False,
                 height: int = NMNIST_SIZE, width: int = NMNIST_SIZE,
                 dtype=np.float32) -> np.ndarray:
    """Stack recordings into a (N, T, 2, height, width) batch of frames.

    ``binary=True`` clips counts to {0, 1} (spike / no spike per pixel and bin).
    """
    out = np.empty((len(recordings), int(T), 2, height, width), dtype=dtype)
    for i, ev in enumerate(recordings):
        fr = events_to_frames(ev, T, duration_us, height, width)
        out[i] = np.minimum(fr, 1.0) if binary else fr
    return out


class EventFrames:
    """Picklable transform for :class:`BatchIterator`: list of recordings -> frame batch
    (N, T, 2, height, width) of a ``sensor`` of (height, width) pixels (N-MNIST's 34 x 34)."""

    def __init__(self, T: int, duration_us=None, binary: bool = True, sensor=(NMNIST_SIZE, NMNIST_SIZE)):
        self.T, self.duration_us, self.binary = int(T), duration_us, bool(binary)
        self.sensor = tuple(int(s) for s in sensor)

    def __call__(self, recordings):
        return nmnist_batch(recordings, self.T, self.duration_us, self.binary, *self.sensor)

    def __repr__(self):
        return (f"EventFrames(T={self.T}, duration_us={self.duration_us}, "
                f"binary={self.binary}, sensor={self.sensor})")


def list_nmnist(split_dir):
    """Sorted (path, label) pairs of ``<split_dir>/<digit>/*.bin``; none is an error."""
    split_dir = Path(split_dir)
    out = []
    for d in range(10):
        sub = split_dir / str(d)
        if not sub.is_dir():
            continue
        for name in sorted(os.listdir(sub)):
            if name.endswith(".bin"):
                out.append((sub / name, d))
    if not out:
        raise DatasetCorruptError(f"{split_dir}: no recordings (<digit>/*.bin) in it (an empty "
                                  "split); delete the folder and unpack or download it again")
    return out
