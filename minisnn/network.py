"""The network container: the forward through the layers over T steps, the backward in reverse.

Execution shape (design.md): layer at a time over a chunk of time steps. Each convolution or
fc layer applies its weights to all ``T_chunk * B`` inputs of the chunk in a few large matrix
products, then the neuron recursion runs over the chunk. The states carried between chunks are
per-neuron, so memory is set by the chunk length, not by T.

On the CPU the batch is also split across threads (``workers``): each thread runs every layer
on its slice of the samples with single-threaded BLAS. NumPy releases the GIL inside its
loops, so the element-wise neuron updates, which NumPy runs on one core, use every core too.
"""
from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .backend import Backend, blas_threads, cpu_count
from .encoding import PoissonEncoder
from .layers import LIF, Layer, Output, SpikingAvgPool, _Neurons


class Network:
    """A feed-forward stack of layers ending in an :class:`~minisnn.layers.Output` layer.

    ``input_shape`` is ``(C, H, W)`` (or ``(features,)``) as the data has it; inside, feature
    maps are channels-last. ``init_gain`` is k of the initialisation N(0, sqrt(k / fan_in)).
    """

    def __init__(self, layers, input_shape, backend: Backend | None = None, encoder=None,
                 time_chunk: int = 10, init_gain: float = 2.0, seed: int = 0, name: str = "network",
                 workers: int | None = None):
        if not layers or not isinstance(layers[-1], Output):
            raise ValueError("a Network must end with an Output layer")
        self.layers = list(layers)
        self.name = name
        self.input_shape = tuple(int(s) for s in input_shape)
        self.backend = backend or Backend("cpu")
        self.xp = self.backend.xp
        self.encoder = encoder or PoissonEncoder()
        self.time_chunk = time_chunk
        self.init_gain = init_gain
        self.workers = workers
        self._pool = None
        shape = self._internal_shape(self.input_shape)
        for layer in self.layers:
            shape = layer.build(self.backend, shape)
        self.num_classes = shape[0]
        self.init_parameters(seed)
        self.T = None

    @staticmethod
    def _internal_shape(shape):
        return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape

    def _to_internal(self, x):
        """(..., C, H, W) -> (..., H, W, C) contiguous; vectors pass through."""
        if len(self.input_shape) != 3:
            return x
        axes = tuple(range(x.ndim - 3)) + (x.ndim - 2, x.ndim - 1, x.ndim - 3)
        return self.xp.ascontiguousarray(x.transpose(axes))

    def _to_external(self, x):
        if len(self.input_shape) != 3:
            return x
        return x.transpose(0, 3, 1, 2)

    # -- parameters ------------------------------------------------------------------------
    def all_layers(self):
        """Every layer, residual blocks expanded, in forward order."""
        return [sub for layer in self.layers for sub in layer.sublayers()]

    def init_parameters(self, seed=0):
        rng = self.backend.rng(seed, "init")
        for layer in self.all_layers():
            layer.init_parameters(rng, self.init_gain)

    def parameters(self):
        """{"layer.weight": array}, in forward order; the arrays are the live weights."""
        return {f"{layer.name}.{key}": value for layer in self.all_layers() for key, value in layer.params.items()}

    def gradients(self):
        """{"layer.weight": dE/dW} of the last backward, same keys as :meth:`parameters`."""
        return {f"{layer.name}.{key}": value for layer in self.all_layers() for key, value in layer.grads.items()}

    def load_parameters(self, params):
        """Copy arrays (host or device) into the live weights, checking names and shapes."""
        own = self.parameters()
        if set(params) != set(own):
            raise ValueError(f"parameter names differ: missing {sorted(set(own) - set(params))}, "
                             f"unexpected {sorted(set(params) - set(own))}")
        for key, target in own.items():
            value = params[key]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{key}: shape {tuple(value.shape)} != {tuple(target.shape)}")
            host = value if isinstance(value, np.ndarray) else self.backend.to_host(value)
            target[...] = self.backend.to_device(host, dtype=target.dtype)

    def neuron_layers(self):
        return [layer for layer in self.all_layers() if isinstance(layer, _Neurons)]

    # -- forward ---------------------------------------------------------------------------
    def _check_input(self, x, frames):
        expected = (self.input_shape if not frames else ("T",) + self.input_shape)
        ndim = len(self.input_shape) + (2 if frames else 1)
        if x.ndim != ndim or tuple(x.shape[-len(self.input_shape):]) != self.input_shape:
            raise ValueError(f"{self.name}: input of shape {tuple(x.shape)} does not match "
                             f"(batch, {', '.join(map(str, self.input_shape))})"
                             + (" frames (T, batch, ...)" if frames else "")
                             + f"; the network was built for input_shape={expected}")
        if x.dtype != self.backend.dtype:
            raise TypeError(f"{self.name}: input dtype {x.dtype} != the backend's {np.dtype(self.backend.dtype)}; "
                            "cast it with x.astype(...) or build the backend with that dtype")

    def forward(self, x, T=None, train=False, rng_key=(0,), linear=False):
        """Run the network over T steps and return the output U^L(T) / T (eq 3.5), (B, classes).

        ``x`` is a batch of images (B, *input_shape), rate-coded here by the encoder, or a spike
        train / event frames (T, B, *input_shape) (then T is its length). ``train`` keeps the
        statistics the backward needs and applies dropout. ``rng_key`` determines every random
        draw of the pass (encoding, dropout masks). ``linear`` runs the linearised network on
        the input counts ``x`` (B, *input_shape) with the gains set on the neuron layers.
        """
        frames = not linear and x.ndim == len(self.input_shape) + 2
        self._check_input(x, frames)
        if frames:
            T = x.shape[0] if T is None else T
            if T != x.shape[0]:
                raise ValueError(f"T={T} but the given spike train has {x.shape[0]} steps")
        elif T is None or T < 1:
            raise ValueError(f"T must be a positive number of time steps, got {T}")
        batch = x.shape[1] if frames else x.shape[0]
        for index, layer in enumerate(self.layers):
            layer.reset(batch, train, linear, rng=self.backend.rng(*rng_key, "dropout", index))
        self.T = T
        splits = self._batch_splits(batch, linear)
        with self._single_threaded_blas():
            if linear:
                self._wait(self._forward_chunk(self._to_internal(x)[None], splits))
            elif frames:
                for t0 in range(0, T, self.time_chunk):
                    self._wait(self._forward_chunk(self._to_internal(x[t0:t0 + self.time_chunk]), splits))
            else:
                rng = self.backend.rng(*rng_key, "encode")
                prepared = self.encoder.prepare(self.xp, self._to_internal(x))
                running = []
                for t0 in range(0, T, self.time_chunk):
                    # encode the next chunk while the workers still run the previous one
                    spikes = self.encoder.encode(self.xp, prepared, min(self.time_chunk, T - t0), rng)
                    self._wait(running)
                    running = self._forward_chunk(spikes, splits)
                self._wait(running)
            return self.layers[-1].output(T)

    def _worker_count(self):
        if self.backend.device != "cpu":
            return 1
        return self.workers or cpu_count()

    def _single_threaded_blas(self):
        """On the CPU, BLAS runs one thread per call, in forward and backward alike: the workers
        are the parallelism. (Letting OpenBLAS spawn threads of its own oversubscribes the cores,
        and its threads keep spinning after each call, stealing the cores from the workers.)"""
        return blas_threads(1) if self.backend.device == "cpu" else contextlib.nullcontext()

    def _batch_splits(self, batch, linear):
        """Row slices of the batch, one per CPU worker thread (one slice on the GPU)."""
        workers = 1 if linear else max(1, min(self._worker_count(), batch))
        bounds = [batch * i // workers for i in range(workers + 1)]
        return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def _forward_chunk(self, spikes, splits):
        """Run one chunk through every layer: inline, or one job per worker (returned to wait on)."""
        if len(splits) == 1:
            self._forward_rows(spikes, splits[0])
            return []
        if self._pool is None or self._pool._max_workers != len(splits):
            self._pool = ThreadPoolExecutor(len(splits), thread_name_prefix="minisnn")
        return [self._pool.submit(self._forward_rows, spikes[:, rows], rows) for rows in splits]

    @staticmethod
    def _wait(jobs):
        for job in jobs:
            job.result()

    def _forward_rows(self, spikes, rows):
        spikes = self.xp.ascontiguousarray(spikes)
        for layer in self.layers:
            spikes = layer.forward(spikes, rows)

    # -- backward --------------------------------------------------------------------------
    def backward(self, error):
        """Back-propagate dE/d output = e (eq 3.9) through every layer in reverse (eqs 3.23-3.25).

        Fills :meth:`gradients`; returns dE/d(input spike counts) in the input's layout.
        """
        if self.T is None:
            raise RuntimeError("backward() needs a forward(train=True) first")
        with self._single_threaded_blas():
            grad = self.layers[-1].backward(error, self.T)
            for layer in reversed(self.layers[:-1]):
                grad = layer.backward(grad)
        return self._to_external(grad)

    # -- monitoring ------------------------------------------------------------------------
    def spike_rates(self):
        """Mean spikes per neuron per time step of every spiking layer in the last forward."""
        return {layer.name: float(layer.spike_count.mean()) / self.T for layer in self.neuron_layers()}

    def summary(self):
        """A table of layers, per-sample output shapes (C, H, W) and parameter counts."""
        rows, total = [], 0
        for layer in self.all_layers():
            shape = layer.out_shape
            shown = (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape
            count = sum(math.prod(p.shape) for p in layer.params.values())
            total += count
            rows.append((layer.name, type(layer).__name__, "x".join(map(str, shown)), count))
        width = max(len(r[0]) for r in rows) + 2
        lines = [f"{self.name}: input {'x'.join(map(str, self.input_shape))}",
                 f"{'layer':<{width}}{'type':<16}{'output':<14}{'params':>10}"]
        lines += [f"{n:<{width}}{t:<16}{s:<14}{c:>10,}" for n, t, s, c in rows]
        lines.append(f"{'total':<{width}}{'':<30}{total:>10,}")
        return "\n".join(lines)

    def num_parameters(self):
        return sum(math.prod(p.shape) for p in self.parameters().values())


__all__ = ["Network", "Layer", "LIF", "SpikingAvgPool", "Output"]
