"""``load(name, split, root)``: a dataset split as host arrays."""
from __future__ import annotations

import numpy as np

from .errors import DatasetCorruptError
from .formats import (list_nmnist, read_cifar_batch, read_idx_pair, read_nmnist,
                      read_svhn_mat)
from .registry import (CIFAR_TEST, CIFAR_TRAIN, DATASETS, IDX_FILES, SVHN_FILES,
                       canonical_name, check_split)
from .storage import check_identity, ensure_available, idx_path


def load(name, split, root=None, download: bool = False, progress: bool = True):
    """Load ``split`` of dataset ``name``.

    Image datasets (``mnist``, ``fashion-mnist``, ``cifar10``, ``svhn``) return
    ``(images, labels)``: uint8 (N, C, H, W) and int64 (N,) host arrays. ``nmnist`` returns
    ``(recordings, labels)``: a list of structured event arrays (see :func:`read_nmnist`) in
    sorted file order, and int64 labels.

    ``root`` is the folder holding the distribution's files, or a data root with a subfolder
    named after the dataset (torchvision's ``MNIST/raw``, ``FashionMNIST/raw`` and
    ``cifar-10-batches-py`` layouts included); None means :func:`default_data_root` (and, for
    Fashion-MNIST, Debian's /usr/share/datasets/fashion-mnist as a fallback). With
    ``download=True`` missing files are fetched first. MNIST and Fashion-MNIST files are
    identified by checksum: one dataset's files given as the other's are refused.
    """
    name = canonical_name(name)
    split = check_split(name, split)
    folder = ensure_available(name, root, download=download, split=split, progress=progress)
    info = DATASETS[name]
    if name in ("mnist", "fashion-mnist"):
        paths = [idx_path(folder, f) for f in IDX_FILES[split]]
        for path in paths:
            check_identity(name, path)
        images, labels = read_idx_pair(*paths, info.num_classes)
        if images.shape[1:] != info.input_shape:
            raise DatasetCorruptError(
                f"{paths[0]}: images are {images.shape[2:]}, expected "
                f"{info.input_shape[1:]} for {name}")
        return images, labels
    if name == "cifar10":
        parts = [read_cifar_batch(folder / f, info.num_classes)
                 for f in (CIFAR_TRAIN if split == "train" else CIFAR_TEST)]
        if len(parts) == 1:
            return parts[0]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    if name == "svhn":
        return read_svhn_mat(folder / SVHN_FILES[split])
    # nmnist
    files = list_nmnist(folder)
    recordings = [read_nmnist(p) for p, _ in files]
    labels = np.array([lab for _, lab in files], dtype=np.int64)
    return recordings, labels
