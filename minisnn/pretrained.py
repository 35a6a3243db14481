"""``minisnn.load(path)``: a trained network from a checkpoint, with its preprocessing, ready to use.

    import minisnn

    model = minisnn.load("runs/lenet5_mnist/checkpoint.h5")     # or best.h5
    images, labels = model.load_data("test")                    # uint8 (N, C, H, W), from the run's data folder
    print(model.accuracy(images, labels))
    print(model.predict(images[:8]))                            # class indices

The checkpoint's configuration names the model, its dataset (input shape, classes), width,
time steps and encoding scale; a colour run also stores the training set's per-channel
statistics, so inputs are standardised exactly as in training.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .backend import Backend
from .checkpoint import load as load_checkpoint
from .data import DATASETS, EventFrames, Standardize, to_float
from .models import from_config


class Pretrained:
    """A trained :class:`~minisnn.network.Network` (``net``) with the preprocessing its
    training used (``preprocess``: host images -> the floats ``net.forward`` takes)."""

    def __init__(self, net, preprocess, config, epoch=None, path=None):
        self.net, self.preprocess, self.config = net, preprocess, dict(config)
        self.T = int(config["timesteps"])
        self.dataset = config["dataset"]
        self.classes = DATASETS[self.dataset].classes
        self.epoch, self.path = epoch, path

    def __repr__(self):
        return (f"Pretrained({self.config['model']} on {self.dataset}, T={self.T}, "
                f"epoch={self.epoch}, {self.net.backend})")

    def scores(self, images, batch_size=256, seed=0):
        """Network outputs U^L(T)/T (eq 3.5), a host array (N, classes). ``images``: uint8
        (N, C, H, W), floats in [0, 1], or N-MNIST recordings. ``seed`` fixes the Poisson
        draws (each batch gets its own key, so no two batches share the same noise)."""
        backend, out = self.net.backend, []
        for b, start in enumerate(range(0, len(images), batch_size)):
            x = backend.to_device(self.preprocess(images[start:start + batch_size]), backend.dtype)
            if x.ndim == 5:                                   # event frames: (T, B, C, H, W)
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
        from .data import load as load_data

        stored = self.config.get("data_dir")
        if data_dir is None and stored and Path(stored).exists():
            data_dir = stored
        return load_data(self.dataset, split, data_dir)

    def accuracy(self, images, labels, batch_size=256, seed=0):
        """Fraction of ``images`` classified as ``labels``."""
        return float(np.mean(self.predict(images, batch_size, seed) == np.asarray(labels)))


def load(path, device="cpu", dtype=None, threads=None) -> Pretrained:
    """Read a checkpoint (``checkpoint.h5`` or ``best.h5`` of a training run) and return a
    :class:`Pretrained`: the network with the checkpoint's weights on ``device`` (``"cpu"``,
    ``"gpu"``, ``"cuda:1"`` ...), in ``dtype`` (default: the run's), plus its preprocessing.
    ``threads``: CPU worker threads (default: all cores). Raises
    :class:`~minisnn.checkpoint.CheckpointError` for a file that is not a usable checkpoint."""
    from .checkpoint import CheckpointError

    ckpt = load_checkpoint(path)
    config = ckpt.config
    try:
        info = DATASETS[config["dataset"]]
        backend = Backend(device, dtype or config.get("dtype", "float32"))
        net = from_config(config, backend)
        net.load_parameters(ckpt.weights)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: the checkpoint does not describe a usable network "
                              f"({type(exc).__name__}: {exc})") from exc
    net.workers = threads
    stats = ckpt.extra.get("standardize")
    if info.kind == "events":
        preprocess = EventFrames(int(config["timesteps"]))
    elif stats is not None:
        standardize = Standardize(stats["mean"], stats["std"])

        def preprocess(images):
            return standardize(to_float(images))
    else:
        preprocess = to_float
    return Pretrained(net, preprocess, config, ckpt.epoch, str(path))


__all__ = ["Pretrained", "load"]
