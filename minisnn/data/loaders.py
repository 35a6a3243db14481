"""``load(name, split, root)``: a dataset split as host arrays."""
from __future__ import annotations

from .registry import DATASETS, canonical_name, check_split
from .downloads import ensure_available
from .storage import check_identity


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
    if info.layout.identified:
        for path in info.layout.paths(folder, split):
            check_identity(name, path)
    data, labels = info.layout.read(folder, split, info.num_classes)
    info.check_samples(data, folder, split)
    return data, labels
