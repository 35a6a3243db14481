"""Deterministic mini-batches on the device, subsets and validation splits.

All randomness comes from ``Backend.host_rng`` keyed by the seed and the epoch (and batch
index), so epoch ``e`` of a run is identical whether or not the run was interrupted and
resumed: nothing but ``(seed, epoch)`` has to be saved.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import Backend
from .preprocess import random_crop_flip, to_float


def _take(images, idx):
    if isinstance(images, np.ndarray):
        return images[idx]
    return [images[int(i)] for i in idx]


def host_inputs(samples, transform=None):
    """Host samples -> the floats a network takes: uint8 images scaled to [0, 1] (float images
    only cast), then ``transform``; a list of recordings goes to ``transform`` (e.g.
    :class:`EventFrames`) as it is."""
    if isinstance(samples, np.ndarray):
        x = to_float(samples)
        return x if transform is None else transform(x)
    return transform(samples)


def subset(images, labels, limit, seed=0):
    """At most ``limit`` (>= 1) samples, chosen by a seeded permutation and kept in original
    order. ``limit`` None (or >= N) returns the inputs unchanged. Works for arrays and lists."""
    n = len(labels)
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be >= 1 (or None for all samples), got {limit}")
    if limit is None or int(limit) >= n:
        return images, labels
    idx = np.sort(Backend.host_rng(seed, "subset").permutation(n)[: int(limit)])
    return _take(images, idx), np.asarray(labels)[idx]


def train_val_split(images, labels, val_fraction, seed=0):
    """Carve a validation split off a training set deterministically.

    Returns ``(train_images, train_labels, val_images, val_labels)``; both parts keep the
    original order. ``round(N * val_fraction)`` samples go to validation.
    """
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(labels)
    n_val = int(round(n * float(val_fraction)))
    perm = Backend.host_rng(seed, "val_split").permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    labels = np.asarray(labels)
    return (_take(images, train_idx), labels[train_idx], _take(images, val_idx),
            labels[val_idx])


class BatchIterator:
    """Mini-batches ``(x, y)`` on ``backend``'s device, one host->device copy per array.

    Host pipeline per batch: select samples -> uint8 to float32 [0, 1] (arrays only) ->
    ``transform`` (e.g. :class:`Standardize`; required for lists of N-MNIST recordings, e.g.
    :class:`EventFrames`) -> augmentation when ``augment`` is True (random crop with padding
    4 + horizontal flip, keyed by ``(seed, "augment", epoch, batch_index)``) or a callable
    ``augment(x, rng)``. ``x`` arrives in ``backend.dtype``, ``y`` as int64.
    """

    def __init__(self, images, labels, batch_size, backend, shuffle=True, seed=0,
                 drop_last=False, transform=None, augment=False):
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} samples but {len(self.labels)} labels")
        if len(self.labels) == 0:
            raise ValueError("no samples to iterate over (an empty split or subset)")
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backend = backend
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.augment = augment
        if not isinstance(images, np.ndarray) and transform is None:
            raise ValueError("a list of recordings needs a transform (e.g. EventFrames(T))")

    def __len__(self):
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def num_samples(self):
        return len(self.labels)

    def order(self, epoch_index):
        """Sample order of an epoch (a permutation seeded by ``(seed, "shuffle", epoch)``)."""
        n = len(self.labels)
        if not self.shuffle:
            return np.arange(n)
        return Backend.host_rng(self.seed, "shuffle", int(epoch_index)).permutation(n)

    def host_batch(self, idx, epoch_index, batch_index):
        """The preprocessed host arrays of the samples ``idx`` (before the device copy)."""
        x = host_inputs(_take(self.images, idx), self.transform)
        if self.augment:
            rng = Backend.host_rng(self.seed, "augment", int(epoch_index), int(batch_index))
            x = self.augment(x, rng) if callable(self.augment) else random_crop_flip(x, rng)
        return np.ascontiguousarray(x, dtype=self.backend.dtype), self.labels[idx]

    def epoch(self, epoch_index):
        """Yield the batches of epoch ``epoch_index`` as device arrays ``(x, y)``."""
        order = self.order(epoch_index)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x, y = self.host_batch(idx, epoch_index, b)
            yield self.backend.to_device(x), self.backend.to_device(y, dtype=np.int64)

    def __repr__(self):
        return (f"BatchIterator(n={len(self.labels)}, batch_size={self.batch_size}, "
                f"batches={len(self)}, shuffle={self.shuffle}, seed={self.seed}, "
                f"augment={bool(self.augment)})")
