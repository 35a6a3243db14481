"""IDX files (MNIST, Fashion-MNIST): gzipped or plain, unsigned bytes."""
from __future__ import annotations

import struct

import numpy as np

from ..errors import DatasetCorruptError
from .common import _REDOWNLOAD, IDX_MAX_BYTES, _read_bytes, decompress_if_gzip

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


def parse_idx(data: bytes, path="<bytes>", expect_magic: int | None = None) -> np.ndarray:
    """Parse decompressed IDX content of unsigned bytes (type code 0x08) into an array."""
    if len(data) < 4:
        raise DatasetCorruptError(f"{path}: too short for an IDX header ({len(data)} bytes); "
                                  f"{_REDOWNLOAD}")
    (magic,) = struct.unpack(">I", data[:4])
    if expect_magic is not None and magic != expect_magic:
        raise DatasetCorruptError(
            f"{path}: wrong IDX magic number 0x{magic:08x}, expected 0x{expect_magic:08x} "
            f"(is this the right file, or a corrupt/HTML download? {_REDOWNLOAD})")
    if magic >> 16 != 0 or (magic >> 8) & 0xFF != 0x08:
        raise DatasetCorruptError(f"{path}: IDX magic 0x{magic:08x} is not unsigned-byte data")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetCorruptError(f"{path}: truncated IDX header (ndim={ndim}); {_REDOWNLOAD}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = 1
    for d in dims:
        expected *= d
    if len(data) - header != expected:
        raise DatasetCorruptError(
            f"{path}: IDX payload is {len(data) - header} bytes but the header's dims {dims} "
            f"need {expected}; the file is truncated or corrupt, {_REDOWNLOAD}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path, expect_magic: int | None = None, max_bytes: int = IDX_MAX_BYTES) -> np.ndarray:
    """Read an IDX file (gzipped or plain) of unsigned bytes. Returns a writable array.

    Files (or decompressed contents) larger than ``max_bytes`` are refused; the default is
    the size of the largest MNIST / Fashion-MNIST file."""
    data = decompress_if_gzip(_read_bytes(path, max_bytes), path, max_bytes)
    return parse_idx(data, path, expect_magic).copy()


def read_idx_images(path) -> np.ndarray:
    arr = read_idx(path, IDX_IMAGES_MAGIC)
    if arr.ndim != 3:
        raise DatasetCorruptError(f"{path}: IDX images must have 3 dims, got {arr.shape}")
    return arr


def read_idx_labels(path, num_classes: int = 10) -> np.ndarray:
    arr = read_idx(path, IDX_LABELS_MAGIC)
    if arr.size and int(arr.max()) >= num_classes:
        raise DatasetCorruptError(
            f"{path}: label {int(arr.max())} out of range 0..{num_classes - 1}; {_REDOWNLOAD}")
    return arr.astype(np.int64)


def read_idx_pair(images_path, labels_path, num_classes: int = 10):
    """Images (N, 1, H, W) uint8 and labels (N,) int64 of one IDX split."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path, num_classes)
    if images.shape[0] == 0:
        raise DatasetCorruptError(f"{images_path}: holds no images (an empty split); "
                                  f"{_REDOWNLOAD}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetCorruptError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels; one of them is from another split or truncated")
    return images[:, None, :, :], labels
