"""What each dataset is, where its files live on disk, and where they come from.

One :class:`DatasetInfo` per dataset in :data:`DATASETS` (shape, classes, folder names,
label histograms, the ``layout`` that finds and reads its files, how its samples enter a
network, its preset) and its distribution files in :data:`REMOTE`. Adding a dataset means
these two entries - :func:`register` adds them from user code - and a :class:`~.layouts.Layout`
subclass if its file format is new; nothing else branches on the dataset's name or kind.

Addresses and checksums
-----------------------
* MNIST: the md5 of each ``.gz`` is the published one; the sha256 of the DEcompressed
  content was computed from byte-exact copies of the published files. Mirrors are tried
  before yann.lecun.com, which often answers 403 or times out.
* Fashion-MNIST: published ``.gz`` md5s; decompressed sha256 computed the same way. Debian's
  ``dataset-fashion-mnist`` recompresses the ``.gz`` files (their md5 differs, content is
  identical), so a file passes verification when EITHER the ``.gz`` md5 OR the decompressed
  sha256 matches.
* CIFAR-10 and SVHN: the md5s published by their authors.
* N-MNIST: md5s of ``Train.zip``/``Test.zip`` as used, identically, by several independent
  public loaders (tonic, SpikingJelly and others); addresses are the Mendeley Data record
  468j46mzdv and Garrick Orchard's Dropbox share. Neither the addresses nor the checksums
  have been checked against the live files; no figshare address could be confirmed, so
  none is listed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DatasetCorruptError, DatasetError
from .formats import EventFrames
from .layouts import CifarBatches, Idx, Layout, NmnistFolders, SvhnMat
from .preprocess import Standardize


def static_preset(timesteps=50, augment="none"):
    """The thesis' protocol for a static image set: SGD for 150 epochs, lr x0.2 at epochs 70, 100
    and 125, weight decay 5e-4, no momentum, the loss summed over the batch; Poisson encoding
    scale 1 (the thesis' reading: raw intensity against a uniform draw)."""
    return dict(timesteps=timesteps, encoding_scale=1.0, optimizer="sgd", epochs=150,
                milestones=[70, 100, 125], gamma=0.2, weight_decay=5e-4, momentum=0.0,
                augment=augment, loss_reduction="sum")


#: The keys every dataset's ``preset`` gives (the model's preset gives batch_size and lr).
PRESET_KEYS = tuple(static_preset())
KINDS = ("image", "events")


@dataclass(frozen=True)
class DatasetInfo:
    """Everything minisnn knows about one dataset, in one place: its shape and classes
    (``input_shape`` is (C, H, W) of one sample; for event data (2, H, W): the two polarities
    of an H x W sensor), the folder names it may sit in under a data root, its homepage, the
    exact label histogram of each full split (checked by ``verify``), and its ``layout`` - how
    its files lie in a folder and how a split is read (:class:`~.layouts.Layout`).

    How its samples enter a network: ``kind`` "image" (uint8 N,C,H,W, rate-coded or fed
    directly) or "events" (recordings binned into T frames); ``standardize``: images are
    standardised per channel with the training set's statistics (the colour sets, thesis
    4.1.3); ``preset``: the thesis preset's values for it (:func:`static_preset`, plus ``lr``
    where the dataset fixes it); ``fast_preset``: ``--preset fast`` was tuned on it.
    ``aliases``: other spellings of ``name``. Its distribution files are ``REMOTE[name]``.
    :func:`register` adds one (from user code too)."""

    name: str
    title: str            # the name people write, e.g. "Fashion-MNIST"
    input_shape: tuple
    num_classes: int
    train_count: int
    test_count: int
    layout: Layout
    folders: tuple        # subfolders of a data root that may hold it (first: where downloads go)
    homepage: str
    classes: tuple = ()
    kind: str = "image"
    splits: tuple = ("train", "test")
    extra_count: int = 0
    label_histograms: dict = field(default_factory=dict)
    aliases: tuple = ()
    standardize: bool = False
    preset: dict = field(default_factory=static_preset)
    fast_preset: bool = False

    @property
    def frames(self) -> bool:
        """True when a sample is a recording binned into T frames: batches are (B, T, C, H, W)."""
        return self.kind == "events"

    def encoder(self, input="poisson", encoding_scale=1.0):
        """The network's input stage for this data: event frames enter as they are; images as
        Poisson spikes of rate ``encoding_scale`` x |pixel| (thesis 4.1.3) or, with
        ``input="direct"``, as the input current itself at every step."""
        from ..encoding import DirectInput, FrameInput, PoissonEncoder   # minisnn.encoding imports minisnn.data

        if self.frames:
            return FrameInput()
        return DirectInput() if input == "direct" else PoissonEncoder(encoding_scale)

    def transform(self, timesteps, standardize=None):
        """The host transform of a batch after uint8 -> [0, 1] scaling (``BatchIterator``'s
        ``transform``): recordings binned into ``timesteps`` frames of the sensor; images
        standardised with the training statistics ``standardize`` ({"mean", "std"}) when given;
        else None."""
        if self.frames:
            return EventFrames(timesteps, sensor=self.input_shape[1:])
        return None if standardize is None else Standardize(standardize["mean"], standardize["std"])

    def check_samples(self, samples, folder, split):
        """Refuse images whose shape is not ``input_shape`` (recordings pass)."""
        if not self.frames and samples.shape[1:] != self.input_shape:
            raise DatasetCorruptError(f"{folder}: {split} images are {samples.shape[1:]}, expected "
                                      f"{self.input_shape} for {self.title}")


_DIGITS = tuple(str(i) for i in range(10))

# torchvision's layout ("MNIST/raw", "FashionMNIST/raw", "cifar-10-batches-py") is recognised.
DATASETS = {
    # T = 50 for MNIST (thesis 4.1.5; the authors' code uses 100). Encoding scale 1.0 is the
    # thesis' reading (raw intensity vs u); the authors' MNIST code uses 0.5.
    "mnist": DatasetInfo(
        "mnist", "MNIST", (1, 28, 28), 10, 60000, 10000, Idx(),
        ("mnist", "MNIST/raw", "MNIST", "raw"), "http://yann.lecun.com/exdb/mnist/",
        classes=_DIGITS, label_histograms={
            "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
            "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)},
        preset=static_preset(50, "none"), fast_preset=True),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", "Fashion-MNIST", (1, 28, 28), 10, 60000, 10000, Idx(),
        ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST", "fashion", "raw"),
        "https://github.com/zalandoresearch/fashion-mnist",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
        label_histograms={"train": (6000,) * 10, "test": (1000,) * 10},
        aliases=("fashion_mnist", "fashionmnist", "fmnist"), preset=static_preset(50, "none"), fast_preset=True),
    # Colour sets: T = 100, standardised inputs fed directly (scale 1), crop + flip (thesis 4.1.3).
    "cifar10": DatasetInfo(
        "cifar10", "CIFAR-10", (3, 32, 32), 10, 50000, 10000, CifarBatches(),
        ("cifar10", "cifar-10", "CIFAR10"), "https://www.cs.toronto.edu/~kriz/cifar.html",
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"),
        label_histograms={"train": (5000,) * 10, "test": (1000,) * 10},
        aliases=("cifar-10", "cifar_10"), standardize=True, preset=static_preset(100, "crop-flip")),
    "svhn": DatasetInfo(
        "svhn", "SVHN", (3, 32, 32), 10, 73257, 26032, SvhnMat(), ("svhn", "SVHN"),
        "http://ufldl.stanford.edu/housenumbers/", classes=_DIGITS,
        splits=("train", "test", "extra"), extra_count=531131,
        standardize=True, preset=static_preset(100, "crop-flip")),
    # N-MNIST: events binned into T frames (10 ms bins of the ~300 ms recordings), Adam with
    # milestones 40/80/120 (thesis); lr 1e-3 and no weight decay are our choices.
    "nmnist": DatasetInfo(
        "nmnist", "N-MNIST", (2, 34, 34), 10, 60000, 10000, NmnistFolders(),
        ("nmnist", "n-mnist", "N-MNIST", "NMNIST"), "https://www.garrickorchard.com/datasets/n-mnist",
        classes=_DIGITS, kind="events", aliases=("n-mnist", "n_mnist"),
        preset=dict(timesteps=30, encoding_scale=1.0, optimizer="adam", epochs=150,
                    milestones=[40, 80, 120], gamma=0.2, weight_decay=0.0, momentum=0.0,
                    augment="none", loss_reduction="sum", lr=1e-3)),
}

# Known system-wide locations, consulted when the default root lacks the dataset.
SYSTEM_LOCATIONS = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


class _Names:
    """The registered datasets' names, live: ``--dataset``'s choices include one registered
    after import."""

    def __iter__(self):
        return iter(DATASETS)

    def __contains__(self, name):
        return name in DATASETS

    def __len__(self):
        return len(DATASETS)

    def __repr__(self):
        return repr(tuple(DATASETS))


NAMES = _Names()


def canonical_name(name: str) -> str:
    """The registered name of dataset ``name``, given in any case or as one of its aliases."""
    key = str(name).strip().lower()
    for info in DATASETS.values():
        if key == info.name or key in info.aliases:
            return info.name
    raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))} (register others "
                       "with minisnn.data.register)")


def check_split(name: str, split: str) -> str:
    split = str(split).lower()
    if split not in DATASETS[name].splits:
        raise DatasetError(f"dataset {name!r} has no split {split!r}; "
                           f"choose one of {', '.join(DATASETS[name].splits)}")
    return split


def register(info: DatasetInfo, remote=(), replace=False) -> DatasetInfo:
    """Make the dataset ``info`` describes known to every part of minisnn (``minisnn.data.load``,
    the training command run in this process, e.g. ``minisnn.train.main([...])``, checkpoints,
    ``minisnn.load``, analyze). ``remote``: its distribution files (:class:`RemoteFile`; none:
    the files are put in place by hand). ``replace=True`` replaces a dataset of the same name.
    Returns ``info``; ValueError for a description that cannot work, naming the field."""
    def bad(what):
        return ValueError(f"dataset {info.name!r}: {what}")

    if not isinstance(info, DatasetInfo):
        raise TypeError(f"register takes a DatasetInfo, got {type(info).__name__}")
    if not info.name or info.name != info.name.strip().lower():
        raise bad("name must be non-empty, lower case, without surrounding spaces")
    if info.name in DATASETS and not replace:
        raise bad("is registered already; pass replace=True to replace it")
    if not isinstance(info.layout, Layout):
        raise bad(f"layout must be an instance of a minisnn.data.Layout subclass, got {type(info.layout).__name__}")
    if len(info.input_shape) != 3 or not all(isinstance(s, int) and s > 0 for s in info.input_shape):
        raise bad(f"input_shape must be (C, H, W) of positive ints, got {info.input_shape!r}")
    if info.kind not in KINDS or (info.kind == "events" and info.input_shape[0] != 2):
        raise bad(f"kind must be one of {', '.join(KINDS)} (events: input_shape (2, H, W)), got {info.kind!r}")
    if info.num_classes < 2 or (info.classes and len(info.classes) != info.num_classes):
        raise bad(f"needs num_classes >= 2 and one name per class, got {info.num_classes} and {len(info.classes)}")
    missing = [k for k in PRESET_KEYS if k not in info.preset]
    if missing:
        raise bad(f"preset lacks {', '.join(missing)} (start from minisnn.data.static_preset())")
    taken = [a for a in info.aliases for other in DATASETS.values()
             if other.name != info.name and (a == other.name or a in other.aliases)]
    if taken:
        raise bad(f"aliases {', '.join(taken)} name other datasets")
    DATASETS[info.name] = info
    REMOTE[info.name] = tuple(remote)
    return info


def _checkout_root():
    """The source checkout minisnn is imported from (an editable install), or None when
    minisnn is installed as a package (then the package's parent is site-packages)."""
    top = Path(__file__).resolve().parents[2]
    if (top / "setup.cfg").is_file() and "site-packages" not in top.parts:
        return top
    return None


#: :func:`default_data_root`'s rule in words, for --help.
DATA_ROOT_RULE = ("$MINISNN_DATA if set, else datasets/ in the source checkout of an editable install, "
                  "else $XDG_CACHE_HOME/minisnn, by default ~/.cache/minisnn")


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
    for split, files in Idx.FILES.items():
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
