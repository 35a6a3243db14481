"""Readers of the standard distribution formats, one module per format family:
:mod:`.idx` (MNIST, Fashion-MNIST), :mod:`.cifar` (CIFAR-10 pickles), :mod:`.svhn` (SVHN .mat),
:mod:`.nmnist` (N-MNIST events, frames), on :mod:`.common` (safe reading, gzip).

Each reader validates what it reads and raises :class:`~minisnn.data.errors.DatasetError`
(naming the file and the problem) on anything unexpected; no zlib/pickle/scipy/numpy
exception escapes bare.
"""
from .cifar import (CIFAR_MAX_BYTES, RestrictedUnpickler, parse_cifar_batch, read_cifar_batch, read_cifar_meta,
                    safe_unpickle)
from .common import IDX_MAX_BYTES, _read_bytes, decompress_if_gzip
from .idx import (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, parse_idx, read_idx, read_idx_images, read_idx_labels,
                  read_idx_pair)
from .nmnist import (NMNIST_EVENT_DTYPE, NMNIST_SIZE, EventFrames, events_to_frames, list_nmnist, nmnist_batch,
                     parse_nmnist, read_nmnist)
from .svhn import read_svhn_mat

__all__ = ["CIFAR_MAX_BYTES", "EventFrames", "IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "IDX_MAX_BYTES",
           "NMNIST_EVENT_DTYPE", "NMNIST_SIZE", "RestrictedUnpickler", "decompress_if_gzip", "events_to_frames",
           "list_nmnist", "nmnist_batch", "parse_cifar_batch", "parse_idx", "parse_nmnist", "read_cifar_batch",
           "read_cifar_meta", "read_idx", "read_idx_images", "read_idx_labels", "read_idx_pair", "read_nmnist",
           "read_svhn_mat", "safe_unpickle"]
