"""``minisnn.load(path)``: a trained network from a checkpoint, with its preprocessing, ready to use.

    import minisnn

    model = minisnn.load("runs/lenet5_mnist/checkpoint.h5")     # or best.h5
    images, labels = model.load_data("test")                    # uint8 (N, C, H, W), from the run's data folder
    print(model.accuracy(images, labels))
    print(model.predict(images[:8]))                            # class indices

The checkpoint's configuration names the model, its dataset (input shape, classes), width,
time steps and encoding scale; a run on a standardised dataset (the colour sets) also stores
the training set's per-channel statistics, so inputs are standardised exactly as in training.

:func:`from_checkpoint` is the one way from a checkpoint to a network and its inputs:
``minisnn.load``, ``python -m minisnn.train --eval-only`` / ``--resume`` and
``python -m minisnn.analyze`` all take it. The network comes from the config
(:func:`minisnn.models.from_config`), the preprocessing from the dataset's registry entry
(:meth:`~minisnn.data.DatasetInfo.transform`) and the checkpoint's statistics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import checkpoint
from .backend import Backend
from .data import DATASETS
from .data import load as load_dataset
from .data.iterator import host_inputs
from .models import from_config, run_options


class Pretrained:
    """A trained :class:`~minisnn.network.Network` (``net``) with the preprocessing its
    training used (:meth:`preprocess`: host samples -> the floats ``net.forward`` takes):
    ``config`` is the run's, ``standardize`` the training statistics it stored (or None)."""

    def __init__(self, net, config, epoch=None, path=None, standardize=None):
        self.net, self.config = net, dict(config)
        self.T = int(config["timesteps"])
        self.dataset = config["dataset"]
        self.info = DATASETS[self.dataset]
        self.classes = self.info.classes
        self.epoch, self.path, self.standardize = epoch, path, standardize

    def __repr__(self):
        return (f"Pretrained({self.config['model']} on {self.dataset}, T={self.T}, "
                f"epoch={self.epoch}, {self.net.backend})")

    def transform(self, T=None):
        """The host transform training applied after the [0, 1] scaling, at ``T`` steps (default:
        the run's): the :class:`~minisnn.data.BatchIterator` ``transform`` of this network."""
        return self.info.transform(T or self.T, self.standardize)

    def preprocess(self, samples, T=None):
        """Host samples -> the floats ``net.forward`` takes, as in training: uint8 images (or
        floats in [0, 1]) scaled and standardised where the run was; event recordings binned into
        ``T`` frames, (N, T, C, H, W)."""
        return host_inputs(samples, self.transform(T))

    def scores(self, images, batch_size=256, seed=0):
        """Network outputs U^L(T)/T (eq 3.5), a host array (N, classes). ``images``: uint8
        (N, C, H, W), floats in [0, 1], or event recordings. ``seed`` fixes the Poisson
        draws (each batch gets its own key, so no two batches share the same noise)."""
        backend, out = self.net.backend, []
        for b, start in enumerate(range(0, len(images), batch_size)):
            x = backend.to_device(self.preprocess(images[start:start + batch_size]), backend.dtype)
            if self.info.frames:                              # event frames: (T, B, C, H, W)
                x = backend.xp.ascontiguousarray(x.transpose(1, 0, 2, 3, 4))
            out.append(backend.to_host(self.net.forward(x, self.T, rng_key=(seed, "predict", b))))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)))

    def predict(self, images, batch_size=256, seed=0):
        """Class indices (N,) int64."""
        return self.scores(images, batch_size, seed).argmax(axis=1)

    def load_data(self, split="test", data_dir=None):
        """``(images, labels)`` of ``split`` of the network's dataset (:func:`minisnn.data.load`),
        from ``data_dir``, else the folder its training run read (``--data-dir``) while it still
        exists, else the data root."""
        stored = self.config.get("data_dir")
        if data_dir is None and stored and Path(stored).exists():
            data_dir = stored
        return load_dataset(self.dataset, split, data_dir)

    def accuracy(self, images, labels, batch_size=256, seed=0):
        """Fraction of ``images`` classified as ``labels``."""
        return float(np.mean(self.predict(images, batch_size, seed) == np.asarray(labels)))


def from_checkpoint(source, backend=None, config=None, options=None, **overrides) -> Pretrained:
    """The network of a checkpoint with its weights, and the preprocessing of its inputs.

    ``source``: a checkpoint path or a loaded :class:`~minisnn.checkpoint.Checkpoint`;
    ``config``: the (resolved) config the network is built from, by default the checkpoint's;
    ``overrides``: knobs replaced for building only (analyze takes ``dropout=0.0``, its
    ``seed`` and ``time_chunk``); ``options``: how it runs (:func:`minisnn.models.from_config`).
    Raises :class:`~minisnn.checkpoint.CheckpointError` for a checkpoint that does not describe a
    usable network or whose weights do not fit it."""
    ckpt = source if isinstance(source, checkpoint.Checkpoint) else checkpoint.load(source)
    config = ckpt.config if config is None else config
    try:
        net = from_config({**config, **overrides}, backend, options)
    except (KeyError, ValueError) as exc:
        raise checkpoint.CheckpointError(f"{ckpt.path}: the checkpoint does not describe a usable network "
                                         f"({type(exc).__name__}: {exc})") from exc
    checkpoint.restore(ckpt, net)
    return Pretrained(net, config, ckpt.epoch, str(ckpt.path), checkpoint.run_state(ckpt)[1])


def load(path, device="cpu", dtype=None, threads=None) -> Pretrained:
    """Read a checkpoint (``checkpoint.h5`` or ``best.h5`` of a training run) and return a
    :class:`Pretrained`: the network with the checkpoint's weights on ``device`` (``"cpu"``,
    ``"gpu"``, ``"cuda:1"`` ...), in ``dtype`` (default: the run's), plus its preprocessing.
    ``threads``: CPU worker threads (default: all cores). Raises
    :class:`~minisnn.checkpoint.CheckpointError` for a file that is not a usable checkpoint."""
    ckpt = checkpoint.load(path)
    try:
        backend = Backend(device, dtype or ckpt.config.get("dtype", "float32"))
        options = run_options(ckpt.config, workers=threads)
    except ValueError as exc:
        raise checkpoint.CheckpointError(f"{path}: the checkpoint does not describe a usable network "
                                         f"({type(exc).__name__}: {exc})") from exc
    model = from_checkpoint(ckpt, backend, options=options)
    model.path = str(path)
    return model


__all__ = ["Pretrained", "from_checkpoint", "load"]
