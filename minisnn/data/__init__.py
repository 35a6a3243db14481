"""Datasets: readers of the standard distribution files, download, preprocessing, batches.

Public entry points::

    load(name, split, root=None)            -> (images uint8 (N,C,H,W), labels int64)
                                               (event data: (list of event arrays, labels))
    download(name, root=None, progress=True) / ensure_available(name, root, download)
    verify(name, root=None)
    register(DatasetInfo(...), remote=())   a new dataset (a Layout subclass reads its files)
    read_nmnist(path), events_to_frames(events, T, duration_us=None), nmnist_batch(...)
    to_float, check_pixel_scale, channel_stats, standardize, Standardize, random_crop_flip
    BatchIterator, subset, train_val_split
    DATASETS, default_data_root(), builtin_data_root(), DatasetError

Where data lives when no folder is given: ``$MINISNN_DATA``, else the source checkout's
``datasets/`` folder (editable install), else ``~/.cache/minisnn`` (see
:func:`default_data_root`).
"""
from .errors import DatasetCorruptError, DatasetError, DatasetNotFoundError, DownloadError
from .formats import (EventFrames, events_to_frames, nmnist_batch, read_cifar_batch,
                      read_cifar_meta, read_idx, read_idx_images, read_idx_labels,
                      read_nmnist, read_svhn_mat, NMNIST_EVENT_DTYPE)
from .iterator import BatchIterator, subset, train_val_split
from .layouts import Layout
from .loaders import load
from .preprocess import (Standardize, channel_stats, check_pixel_scale, random_crop_flip, standardize,
                         to_float)
from .registry import (DATASETS, DatasetInfo, RemoteFile, builtin_data_root, canonical_name, default_data_root,
                       register, static_preset)
from .downloads import download, ensure_available, safe_extract
from .storage import check_identity, locate, verify

__all__ = [
    "BatchIterator", "builtin_data_root", "DATASETS", "DatasetCorruptError", "DatasetError",
    "DatasetInfo", "DatasetNotFoundError", "check_identity", "DownloadError", "EventFrames", "Layout",
    "NMNIST_EVENT_DTYPE", "RemoteFile", "Standardize", "canonical_name", "channel_stats", "check_pixel_scale",
    "default_data_root", "download", "ensure_available", "events_to_frames", "load",
    "locate", "nmnist_batch", "random_crop_flip", "read_cifar_batch", "read_cifar_meta",
    "read_idx", "read_idx_images", "read_idx_labels", "read_nmnist", "read_svhn_mat", "register",
    "safe_extract", "standardize", "static_preset", "subset", "to_float", "train_val_split", "verify",
]
