"""How each dataset's files lie in a folder and how a split is read: one small class per
distribution format, all subclasses of :class:`Layout`, so the code that finds, downloads,
verifies and loads data has no per-dataset branches (see ``DatasetInfo.layout`` in
:mod:`.registry`).

A layout answers, about a ``split``:

* ``files(split)``: the file names to show a user who lacks them;
* ``find(folder, split)``: the folder holding the split under ``folder``, or None;
* ``read(folder, split, num_classes)``: the split as host arrays (from the found folder);
* ``labels(folder, split, num_classes)``: its labels only, for verification (None: not checked);
* ``check_content(info, folder, split)``: any further check of the content by ``verify``;

and, for downloads, ``local_file``, ``archive_dir`` (the folder inside an archive that holds
the split) and ``download_folder``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DatasetCorruptError
from .formats import (list_nmnist, read_cifar_batch, read_idx_labels, read_idx_pair, read_nmnist,
                      read_svhn_mat)


class Layout:
    """How one distribution format's files lie in a folder and how a split is read; subclass it
    for a new format. ``files``, ``find`` and ``read`` are required; the rest have defaults
    (a method a subclass must provide for its use raises NotImplementedError naming itself).

    ``identified``: True when the files are checked against the published files of every
    identified dataset when read (:func:`~minisnn.data.storage.check_identity`; needs
    :meth:`paths`)."""

    identified = False

    def _missing(self, method):
        return NotImplementedError(f"{type(self).__name__}.{method} is not implemented: a layout must define "
                                   f"{method} for this use (see minisnn.data.layouts.Layout)")

    def files(self, split):
        """The file names of ``split`` to show a user who lacks them (a list of str)."""
        raise self._missing("files")

    def find(self, folder, split):
        """The folder holding ``split`` under ``folder`` (it may be ``folder`` itself), or None."""
        raise self._missing("find")

    def read(self, folder, split, num_classes):
        """``(samples, labels)`` of ``split`` from the folder :meth:`find` gave: uint8 images
        (N, C, H, W) or a list of event recordings, and int64 labels (N,)."""
        raise self._missing("read")

    def labels(self, folder, split, num_classes):
        """The labels of ``split`` alone, for ``verify``'s label histogram; None: not checked."""
        return None

    def check_content(self, info, folder, split):
        """``verify``'s check of a split's content beyond the label histogram: how it was
        checked (a str), or None when there is nothing more to check; DatasetError if bad."""
        return None

    def paths(self, folder, split):
        """The files of ``split`` an identified layout checks against the published ones."""
        raise self._missing("paths")

    def local_file(self, folder, filename):
        """The distribution file ``filename`` in ``folder`` (to checksum it), or None."""
        path = Path(folder) / filename
        return path if path.is_file() else None

    def archive_dir(self, split):
        """The folder inside a downloaded archive that holds ``split`` (archives only)."""
        raise self._missing("archive_dir")

    def download_folder(self, root):
        """Where downloads go when ``root`` holds none of the dataset's folder names: ``root``."""
        return Path(root)


def idx_path(folder, filename):
    """``folder/filename`` (the .gz), or the decompressed file without ``.gz``; else None."""
    folder = Path(folder)
    for cand in (folder / filename, folder / filename[:-3]):
        if cand.is_file():
            return cand
    return None


class Idx(Layout):
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


class CifarBatches(Layout):
    """CIFAR-10's python version: ``cifar-10-batches-py/data_batch_1..5``, ``test_batch``."""

    DIR = "cifar-10-batches-py"
    BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}

    def files(self, split):
        return [f"{self.DIR}/data_batch_1-5" if split == "train" else f"{self.DIR}/test_batch"]

    def find(self, folder, split):
        for d in (Path(folder) / self.DIR, Path(folder)):
            if all((d / f).is_file() for f in self.BATCHES[split]):
                return d
        return None

    def archive_dir(self, split):
        return self.DIR

    def download_folder(self, root):
        root = Path(root)
        return root.parent if root.name == self.DIR else root      # given cifar-10-batches-py/ itself

    def read(self, folder, split, num_classes):
        parts = [read_cifar_batch(folder / f, num_classes) for f in self.BATCHES[split]]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def labels(self, folder, split, num_classes):
        return self.read(folder, split, num_classes)[1]


class SvhnMat(Layout):
    """SVHN's cropped digits: ``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``
    (the .mat files' md5 is their check: no label histogram)."""

    def files(self, split):
        return [f"{split}_32x32.mat"]

    def find(self, folder, split):
        return Path(folder) if (Path(folder) / f"{split}_32x32.mat").is_file() else None

    def read(self, folder, split, num_classes):
        return read_svhn_mat(folder / f"{split}_32x32.mat")


class NmnistFolders(Layout):
    """N-MNIST: ``Train/<digit>/NNNNN.bin`` and ``Test/...``, unpacked from ``Train.zip``,
    ``Test.zip`` (40-bit events)."""

    DIRS = {"train": "Train", "test": "Test"}

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

    def check_content(self, info, folder, split):
        """The recording count of the full split and every file's size (5-byte events)."""
        files = list_nmnist(folder)
        expected = info.train_count if split == "train" else info.test_count
        if len(files) != expected:
            raise DatasetCorruptError(f"{folder}: {len(files)} recordings, expected {expected}; "
                                      f"unpack {folder.name}.zip again")
        bad = [p for p, _ in files if p.stat().st_size % 5]
        if bad:
            raise DatasetCorruptError(f"{bad[0]}: size not a multiple of 5 bytes "
                                      f"({len(bad)} such files); unpack again")
        return "file count and sizes"


__all__ = ["CifarBatches", "Idx", "Layout", "NmnistFolders", "SvhnMat", "idx_path"]
