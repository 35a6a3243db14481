"""What each dataset is, where its files live on disk, and where they come from.

Addresses and checksums
-----------------------
* MNIST: the md5 of each ``.gz`` is the published one; the sha256 of the DEcompressed
  content was computed here from byte-exact copies of the published files. Mirrors are tried
  before yann.lecun.com, which often answers 403 or times out.
* Fashion-MNIST: published ``.gz`` md5s; decompressed sha256 computed here. Debian's
  ``dataset-fashion-mnist`` recompresses the ``.gz`` files (their md5 differs, content is
  identical), so a file passes verification when EITHER the ``.gz`` md5 OR the decompressed
  sha256 matches.
* CIFAR-10 and SVHN: the md5s published by their authors.
* N-MNIST: md5s of ``Train.zip``/``Test.zip`` as used, identically, by several independent
  public loaders (tonic, SpikingJelly and others); addresses are the Mendeley Data record
  468j46mzdv and Garrick Orchard's Dropbox share. Neither the addresses nor the checksums
  could be checked against the live files from this machine (no internet); no figshare
  address could be confirmed, so none is listed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset (``input_shape`` is (C, H, W) of one sample)."""

    name: str
    input_shape: tuple
    num_classes: int
    train_count: int
    test_count: int
    extra_count: int = 0
    classes: tuple = ()
    kind: str = "image"  # "image" (uint8 N,C,H,W) or "events" (N-MNIST recordings)
    splits: tuple = ("train", "test")
    title: str = ""  # the name people write, e.g. "Fashion-MNIST"


_DIGITS = tuple(str(i) for i in range(10))

DATASETS = {
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10, 60000, 10000, classes=_DIGITS,
                         title="MNIST"),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", (1, 28, 28), 10, 60000, 10000, title="Fashion-MNIST",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot")),
    "cifar10": DatasetInfo(
        "cifar10", (3, 32, 32), 10, 50000, 10000, title="CIFAR-10",
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")),
    "svhn": DatasetInfo("svhn", (3, 32, 32), 10, 73257, 26032, extra_count=531131,
                        classes=_DIGITS, splits=("train", "test", "extra"), title="SVHN"),
    "nmnist": DatasetInfo("nmnist", (2, 34, 34), 10, 60000, 10000, classes=_DIGITS,
                          kind="events", title="N-MNIST"),
}

_ALIASES = {
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "cifar10": "cifar10", "cifar-10": "cifar10", "cifar_10": "cifar10",
    "svhn": "svhn",
    "nmnist": "nmnist", "n-mnist": "nmnist", "n_mnist": "nmnist",
}

# Folder names under a data root that may hold a dataset (first is the canonical one);
# "MNIST/raw", "FashionMNIST/raw" and "cifar-10-batches-py" are torchvision's layout.
FOLDER_NAMES = {
    "mnist": ("mnist", "MNIST/raw", "MNIST", "raw"),
    "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST",
                      "fashion", "raw"),
    "cifar10": ("cifar10", "cifar-10", "CIFAR10"),
    "svhn": ("svhn", "SVHN"),
    "nmnist": ("nmnist", "n-mnist", "N-MNIST", "NMNIST"),
}

# Known system-wide locations, consulted when the default root lacks the dataset.
SYSTEM_LOCATIONS = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


def canonical_name(name: str) -> str:
    from .errors import DatasetError

    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return _ALIASES[key]


def check_split(name: str, split: str) -> str:
    from .errors import DatasetError

    split = str(split).lower()
    if split not in DATASETS[name].splits:
        raise DatasetError(f"dataset {name!r} has no split {split!r}; "
                           f"choose one of {', '.join(DATASETS[name].splits)}")
    return split


def _checkout_root():
    """The source checkout minisnn is imported from (an editable install), or None when
    minisnn is installed as a package (then the package's parent is site-packages)."""
    top = Path(__file__).resolve().parents[2]
    if (top / "setup.cfg").is_file() and "site-packages" not in top.parts:
        return top
    return None


def default_data_root() -> Path:
    """Where datasets live when no folder is given (one subfolder per dataset).

    The rule, the same for the command line, the library and the tutorials:

    1. a folder given explicitly (``root=`` in Python, ``--data-dir`` on the command line);
    2. else ``$MINISNN_DATA``;
    3. else :func:`builtin_data_root`.

    This function gives steps 2-3.
    """
    env = os.environ.get("MINISNN_DATA")
    return Path(env).expanduser() if env else builtin_data_root()


def builtin_data_root() -> Path:
    """The default when neither a folder nor ``$MINISNN_DATA`` is given: in a source checkout
    (``pip install -e .``) the checkout's ``datasets/`` folder, else ``$XDG_CACHE_HOME/minisnn``
    (by default ``~/.cache/minisnn``) - never a folder inside the installed package or its
    virtual environment."""
    checkout = _checkout_root()
    if checkout is not None:
        return checkout / "datasets"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "minisnn"


# ---------------------------------------------------------------------------------------
# Remote files
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    """One distribution file: its name on disk, addresses (tried in order), checksums.

    ``md5`` is the checksum of the file as distributed; ``content_sha256`` (gzip files only)
    is the sha256 of the decompressed content. ``extract`` marks archives to unpack.
    """

    filename: str
    urls: tuple
    md5: str | None = None
    content_sha256: str | None = None
    extract: bool = False
    splits: tuple = field(default=())


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

IDX_FILES = {
    # split -> (images file, labels file)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

_MNIST_SUMS = {
    "train-images-idx3-ubyte.gz": (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte.gz": (
        "d53e105ee54ea40749a09fcbcd1e9432",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte.gz": (
        "9fb629c4189551a2d022fa330f9573f3",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte.gz": (
        "ec29112dd5afa0611ce80d1b7f02629c",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
_FASHION_SUMS = {
    "train-images-idx3-ubyte.gz": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte.gz": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte.gz": (
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte.gz": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}


def _idx_remote(sums, mirrors):
    out = []
    for split, files in IDX_FILES.items():
        for f in files:
            md5, sha = sums[f]
            out.append(RemoteFile(f, tuple(m + f for m in mirrors), md5, sha,
                                  splits=(split,)))
    return tuple(out)


_SVHN_BASE = "http://ufldl.stanford.edu/housenumbers/"
_NMNIST_MENDELEY = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
_NMNIST_DROPBOX = "https://www.dropbox.com/sh/tg2ljlbmtzygrag/"

REMOTE = {
    "mnist": _idx_remote(_MNIST_SUMS, _MNIST_MIRRORS),
    "fashion-mnist": _idx_remote(_FASHION_SUMS, _FASHION_MIRRORS),
    "cifar10": (
        RemoteFile("cifar-10-python.tar.gz",
                   ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                   md5="c58f30108f718f92721af3b95e74349a", extract=True,
                   splits=("train", "test")),
    ),
    "svhn": (
        RemoteFile("train_32x32.mat", (_SVHN_BASE + "train_32x32.mat",),
                   md5="e26dedcc434d2e4c54c9b2d4a06d8373", splits=("train",)),
        RemoteFile("test_32x32.mat", (_SVHN_BASE + "test_32x32.mat",),
                   md5="eb5a983be6a315427106f1b164d9cef3", splits=("test",)),
        RemoteFile("extra_32x32.mat", (_SVHN_BASE + "extra_32x32.mat",),
                   md5="a93ce644f1a588dc4d68dda5feec44a7", splits=("extra",)),
    ),
    "nmnist": (
        RemoteFile("Train.zip",
                   (_NMNIST_MENDELEY + "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
                    _NMNIST_DROPBOX + "AABlMOuR15ugeOxMCX0Pvoxga/Train.zip?dl=1"),
                   md5="20959b8e626244a1b502305a9e6e2031", extract=True, splits=("train",)),
        RemoteFile("Test.zip",
                   (_NMNIST_MENDELEY + "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",
                    _NMNIST_DROPBOX + "AADSKgJ2CjaBWh75HnTNZyhca/Test.zip?dl=1"),
                   md5="69ca8762b2fe404d9b9bad1103e97832", extract=True, splits=("test",)),
    ),
}

HOMEPAGES = {
    "mnist": "http://yann.lecun.com/exdb/mnist/",
    "fashion-mnist": "https://github.com/zalandoresearch/fashion-mnist",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar.html",
    "svhn": "http://ufldl.stanford.edu/housenumbers/",
    "nmnist": "https://www.garrickorchard.com/datasets/n-mnist",
}

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
NMNIST_DIRS = {"train": "Train", "test": "Test"}

# Exact label histograms of the full splits, used by verify() for the extracted datasets.
LABEL_HISTOGRAMS = {
    ("mnist", "train"): (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    ("mnist", "test"): (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
    ("fashion-mnist", "train"): (6000,) * 10,
    ("fashion-mnist", "test"): (1000,) * 10,
    ("cifar10", "train"): (5000,) * 10,
    ("cifar10", "test"): (1000,) * 10,
}
