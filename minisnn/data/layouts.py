"""How each dataset's files lie in a folder and how a split is read: one small class per
distribution format, so the code that finds, downloads, verifies and loads data has no
per-dataset branches (see ``DatasetInfo.layout`` in :mod:`.registry`).

A layout answers four questions about a ``split``:

* ``files(split)``: the file names to show a user who lacks them;
* ``find(folder, split)``: the folder holding the split under ``folder``, or None;
* ``read(folder, split, num_classes)``: the split as host arrays (from the found folder);
* ``labels(folder, split, num_classes)``: its labels only, for verification (None: not checked);

and, for archives, ``archive_dir(split)``: the folder inside the archive that holds the split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .formats import (list_nmnist, read_cifar_batch, read_idx_labels, read_idx_pair, read_nmnist,
                      read_svhn_mat)


def idx_path(folder, filename):
    """``folder/filename`` (the .gz), or the decompressed file without ``.gz``; else None."""
    folder = Path(folder)
    for cand in (folder / filename, folder / filename[:-3]):
        if cand.is_file():
            return cand
    return None


class Idx:
    """MNIST-style IDX pairs, gzipped or not: ``train-images-idx3-ubyte.gz`` ..."""

    FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    identified = True           # files checked against the published checksums when read

    def files(self, split):
        return list(self.FILES[split])

    def paths(self, folder, split):
        return [idx_path(folder, f) for f in self.FILES[split]]

    def find(self, folder, split):
        return Path(folder) if all(p is not None for p in self.paths(folder, split)) else None

    def local_file(self, folder, filename):
        return idx_path(folder, filename)

    def read(self, folder, split, num_classes):
        return read_idx_pair(*self.paths(folder, split), num_classes)

    def labels(self, folder, split, num_classes):
        return read_idx_labels(self.paths(folder, split)[1], num_classes)


class CifarBatches:
    """CIFAR-10's python version: ``cifar-10-batches-py/data_batch_1..5``, ``test_batch``."""

    DIR = "cifar-10-batches-py"
    BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
    identified = False

    def files(self, split):
        return [f"{self.DIR}/data_batch_1-5" if split == "train" else f"{self.DIR}/test_batch"]

    def find(self, folder, split):
        for d in (Path(folder) / self.DIR, Path(folder)):
            if all((d / f).is_file() for f in self.BATCHES[split]):
                return d
        return None

    def archive_dir(self, split):
        return self.DIR

    def read(self, folder, split, num_classes):
        parts = [read_cifar_batch(folder / f, num_classes) for f in self.BATCHES[split]]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def labels(self, folder, split, num_classes):
        return self.read(folder, split, num_classes)[1]


class SvhnMat:
    """SVHN's cropped digits: ``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``."""

    identified = False

    def files(self, split):
        return [f"{split}_32x32.mat"]

    def find(self, folder, split):
        return Path(folder) if (Path(folder) / f"{split}_32x32.mat").is_file() else None

    def local_file(self, folder, filename):
        path = Path(folder) / filename
        return path if path.is_file() else None

    def read(self, folder, split, num_classes):
        return read_svhn_mat(folder / f"{split}_32x32.mat")

    def labels(self, folder, split, num_classes):
        return None             # the .mat files' md5 is their check


class NmnistFolders:
    """N-MNIST: ``Train/<digit>/NNNNN.bin`` and ``Test/...``, unpacked from ``Train.zip``,
    ``Test.zip`` (40-bit events)."""

    DIRS = {"train": "Train", "test": "Test"}
    identified = False

    def files(self, split):
        d = self.DIRS[split]
        return [f"{d}/<digit>/*.bin (unpacked from {d}.zip)"]

    def find(self, folder, split):
        for sub in (self.DIRS[split], self.DIRS[split].lower()):
            if (Path(folder) / sub).is_dir():
                return Path(folder) / sub
        return None

    def archive_dir(self, split):
        return self.DIRS[split]

    def read(self, folder, split, num_classes):
        files = list_nmnist(folder)
        return [read_nmnist(p) for p, _ in files], np.array([lab for _, lab in files], dtype=np.int64)

    def labels(self, folder, split, num_classes):
        return None             # counted and size-checked by verify()


__all__ = ["CifarBatches", "Idx", "NmnistFolders", "SvhnMat", "idx_path"]
