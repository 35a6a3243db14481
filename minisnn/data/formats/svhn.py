"""SVHN's cropped digits, MATLAB ``*_32x32.mat`` files."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DatasetCorruptError, DatasetError, DatasetNotFoundError
from .common import _REDOWNLOAD, _check_regular


def read_svhn_mat(path):
    """Read an SVHN ``*_32x32.mat``: images (N,3,32,32) uint8, labels int64 (10 -> 0)."""
    path = Path(path)
    try:
        _check_regular(path, os.stat(path))
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except MemoryError as exc:
        raise DatasetCorruptError(f"{path}: corrupt .mat file (asks for too much memory); "
                                  f"{_REDOWNLOAD}") from exc
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, OSError ...
        raise DatasetCorruptError(
            f"{path}: cannot read as a MATLAB file ({type(exc).__name__}: {exc}); "
            f"{_REDOWNLOAD}") from exc
    X, y = mat.get("X"), mat.get("y")
    if not isinstance(X, np.ndarray) or not isinstance(y, np.ndarray):
        raise DatasetCorruptError(f"{path}: .mat file lacks the variables X and y; {_REDOWNLOAD}")
    if X.dtype != np.uint8 or X.ndim != 4 or X.shape[:3] != (32, 32, 3):
        raise DatasetCorruptError(
            f"{path}: X must be uint8 of shape (32, 32, 3, N), got {X.dtype} {X.shape}")
    n = X.shape[3]
    if n == 0:
        raise DatasetCorruptError(f"{path}: holds no images (an empty split); {_REDOWNLOAD}")
    if y.dtype.kind not in "iuf" or y.size != n or (y.ndim == 2 and y.shape[1] != 1) \
            or y.ndim > 2:
        raise DatasetCorruptError(
            f"{path}: y must be numeric of shape ({n}, 1), got {y.dtype} {y.shape}")
    y = y.reshape(-1)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise DatasetCorruptError(f"{path}: y holds non-integer labels")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 10):
        raise DatasetCorruptError(f"{path}: labels must be in 1..10 (10 = digit 0), got "
                                  f"{labels.min()}..{labels.max()}")
    labels[labels == 10] = 0
    images = np.ascontiguousarray(X.transpose(3, 2, 0, 1))
    return images, labels

