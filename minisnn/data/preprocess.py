"""Preprocessing (paper section 4.1.3): scaling, per-channel standardisation, augmentation.

Order used by :class:`~minisnn.data.iterator.BatchIterator`:
uint8 -> float32 in [0, 1] -> (colour sets) standardise with the TRAINING set's statistics
-> (training only) random crop with zero padding + random horizontal flip.
Because augmentation runs after standardisation, the padding value 0 is the channel mean.
"""
from __future__ import annotations

import numpy as np


def check_pixel_scale(images):
    """Refuse float images on the 0-255 scale (no negative value, some above 1): the Poisson
    encoder would make every such pixel fire at every step. Signed (standardised) images and
    images in [0, 1] pass; returns ``images``. NumPy or CuPy arrays; costs one reduction (two
    when some value is above 1)."""
    if images.size and np.issubdtype(images.dtype, np.floating):
        high = float(images.max())
        if high > 1.001 and float(images.min()) >= 0:
            raise ValueError(f"float images must be in [0, 1] (or standardised), got values up to "
                             f"{high:g}: pass uint8 images, or divide these by 255")
    return images


def to_float(images, dtype=np.float32) -> np.ndarray:
    """uint8 images -> floats in [0, 1]; float input is only cast (and refused on the 0-255
    scale, see :func:`check_pixel_scale`)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(dtype) * dtype(1.0 / 255.0)
    return check_pixel_scale(images).astype(dtype, copy=False)


def channel_stats(train_images):
    """Per-channel mean and std (float64, shape (C,)) of uint8 (N, C, H, W) training images,
    on the [0, 1] scale. Exact, computed from per-channel histograms (no float copy)."""
    x = np.asarray(train_images)
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {x.shape}")
    if x.dtype != np.uint8:
        xf = x.astype(np.float64)
        return xf.mean(axis=(0, 2, 3)), xf.std(axis=(0, 2, 3))
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = np.bincount(x[:, c].reshape(-1), minlength=256).astype(np.float64)
        n = counts.sum()
        m = (counts * values).sum() / n
        var = (counts * (values - m) ** 2).sum() / n
        means.append(m)
        stds.append(np.sqrt(var))
    return np.array(means), np.array(stds)


def standardize(x, mean, std) -> np.ndarray:
    """(x - mean) / std per channel of float (N, C, H, W) ``x`` (dtype kept)."""
    x = np.asarray(x)
    mean = np.asarray(mean, dtype=x.dtype).reshape(1, -1, 1, 1)
    std = np.asarray(std, dtype=x.dtype).reshape(1, -1, 1, 1)
    return (x - mean) / std


class Standardize:
    """Picklable transform: per-channel standardisation with fixed (training) stats."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if np.any(self.std <= 0):
            raise ValueError("std must be positive")

    @classmethod
    def from_train(cls, train_images):
        return cls(*channel_stats(train_images))

    def __call__(self, x):
        return standardize(x, self.mean, self.std)

    def __repr__(self):
        return f"Standardize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def random_crop_flip(x, rng, padding: int = 4, flip: bool = True) -> np.ndarray:
    """Random crop of the original size from the zero-padded images, and a random horizontal
    flip with probability 1/2, independently per sample; one vectorised gather per batch.

    ``x``: (N, C, H, W) host array; ``rng``: numpy Generator (use
    ``Backend.host_rng(seed, "augment", epoch, batch_index)`` for exact resumption).
    """
    x = np.asarray(x)
    n, c, h, w = x.shape
    if n == 0:
        return x.copy()
    pad = int(padding)
    ox = rng.integers(0, 2 * pad + 1, size=n)
    oy = rng.integers(0, 2 * pad + 1, size=n)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, dtype=bool)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    rows = oy[:, None] + np.arange(h)[None, :]                         # (N, H)
    cols_fwd = ox[:, None] + np.arange(w)[None, :]                     # (N, W)
    cols = np.where(flips[:, None], cols_fwd[:, ::-1], cols_fwd)
    ni = np.arange(n)[:, None, None, None]
    ci = np.arange(c)[None, :, None, None]
    return xp[ni, ci, rows[:, None, :, None], cols[:, None, None, :]]
