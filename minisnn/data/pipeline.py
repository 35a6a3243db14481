"""The data of one training run: load, subset, split and batch a dataset as its config says.

Everything is seeded by ``config["seed"]``: the training subset by ``(seed, "subset")``, the
test subset by ``(seed + 1, "subset")``, the validation split by ``(seed, "val_split")``, the
order and augmentation of each epoch by the BatchIterator's keys.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from .iterator import BatchIterator, subset, train_val_split
from .loaders import load
from .preprocess import Standardize, random_crop_flip
from .registry import DATASETS


@dataclass
class RunData:
    """The iterators of one run: train (None in eval-only), val (or None), test; ``frames`` is
    True for event data (batches are (B, T, C, H, W) frames); ``standardize`` the training
    statistics ({"mean", "std"}) of a dataset standardised per channel (the colour sets), kept
    in checkpoints."""

    train: BatchIterator | None
    val: BatchIterator | None
    test: BatchIterator
    frames: bool
    standardize: dict | None


def _crop_only(x, rng):
    return random_crop_flip(x, rng, flip=False)


_AUGMENT = {"none": False, "crop-flip": True, "crop": _crop_only}


def split_subset(images, labels, split, limit, seed):
    """The seeded subset of at most ``limit`` samples of ``split`` that ``--limit-train`` /
    ``--limit-test`` take, and ``python -m minisnn.analyze --limit`` too: one rule for both."""
    return subset(images, labels, limit, seed + (split == "test"))


def load_run_data(config, backend, *, download=True, need_train=True, standardize=None, progress=True):
    """Load the datasets of ``config`` into BatchIterators on ``backend``. ``standardize``: the
    statistics a checkpoint stored (else computed from the training subset). ValueError when
    the validation split leaves either part empty."""
    name, seed, root = config["dataset"], int(config["seed"]), config.get("data_dir")
    info = DATASETS[name]
    stats = standardize
    train = val = None
    if need_train:
        x_train, y_train = load(name, "train", root, download=download, progress=progress)
        x_train, y_train = split_subset(x_train, y_train, "train", config.get("limit_train"), seed)
        if info.standardize and stats is None:
            s = Standardize.from_train(x_train)
            stats = {"mean": s.mean.tolist(), "std": s.std.tolist()}
        if config["val_split"] > 0:
            n = len(y_train)
            x_train, y_train, x_val, y_val = train_val_split(x_train, y_train, config["val_split"], seed)
            if len(y_train) == 0 or len(y_val) == 0:
                raise ValueError(f"--val-split {config['val_split']} of {n} training samples leaves "
                                 f"{len(y_train)} for training and {len(y_val)} for validation; "
                                 "both need at least one")
    transform = info.transform(config["timesteps"], stats)
    x_test, y_test = load(name, "test", root, download=download, progress=progress)
    x_test, y_test = split_subset(x_test, y_test, "test", config.get("limit_test"), seed)
    if need_train:
        train = BatchIterator(x_train, y_train, config["batch_size"], backend, shuffle=True, seed=seed,
                              transform=transform, augment=_AUGMENT[config["augment"]])
        if config["val_split"] > 0:
            val = BatchIterator(x_val, y_val, config["eval_batch_size"], backend, shuffle=False, transform=transform)
    test = BatchIterator(x_test, y_test, config["eval_batch_size"], backend, shuffle=False, transform=transform)
    return RunData(train, val, test, info.frames, stats)


def batches(iterator, epoch, frames, start=0):
    """(index, x, y) of the epoch's batches from ``start``; event frames become (T, B, ...)."""
    for b, (x, y) in enumerate(itertools.islice(iterator.epoch(epoch), start, None), start):
        if frames:
            x = iterator.backend.xp.ascontiguousarray(x.transpose(1, 0, 2, 3, 4))
        yield b, x, y
