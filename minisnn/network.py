"""The network container: the forward through the layers over T steps, the backward in reverse.

Execution shape (docs/design.md): layer at a time over a chunk of time steps. Each convolution or
fc layer applies its weights to all ``T_chunk * B`` inputs of the chunk in a few large matrix
products, then the neuron recursion runs over the chunk. The states carried between chunks are
per-neuron, so memory is set by the chunk length, not by T. On the CPU a
:class:`~minisnn.runner.Runner` runs each chunk on worker threads, one slice of the batch each.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import weakref

import numpy as np

from .backend import Backend, cpu_count
from .encoding import PoissonEncoder
from . import events, gradients
from .distributed import rows_of
from .ops import flush_subnormals
from .layers import ALL, LIF, Layer, Neurons, Output, SpikingAvgPool
from .runner import Runner


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a network runs, not what it computes: ``execution`` ("auto", "dense" or "event"
    products), ``gradient`` ("aggregated" or "through-time" backward), ``workers`` (CPU threads;
    None: one per core) and ``time_chunk`` (time steps simulated per block), as :class:`Network`
    describes them. :func:`minisnn.models.build`, :func:`minisnn.ann.build` and
    :func:`minisnn.models.from_config` take one as ``options``."""

    execution: str = "auto"
    gradient: str = "aggregated"
    workers: int | None = None
    time_chunk: int = 10

    def __post_init__(self):
        events.check_execution(self.execution)
        gradients.strategy(self.gradient)
        if self.workers is not None and not _positive_int(self.workers):
            raise ValueError(f"workers must be a positive integer or None (one per core), got {self.workers!r}")
        if not _positive_int(self.time_chunk):
            raise ValueError(f"time_chunk must be a positive integer, got {self.time_chunk!r}")

    def replace(self, **changes):
        """A copy with the options given (not None) changed."""
        return dataclasses.replace(self, **{key: value for key, value in changes.items() if value is not None})


def _positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


class Network:
    """A feed-forward stack of layers ending in an :class:`~minisnn.layers.Output` layer.

    ``input_shape`` is ``(C, H, W)`` (or ``(features,)``) as the data has it; inside, feature
    maps are channels-last. ``encoder`` turns the input into spikes: a
    :class:`~minisnn.encoding.PoissonEncoder` for images (the default) or a
    :class:`~minisnn.encoding.FrameInput` for event frames (T, B, ...). ``init_gain`` is k of the
    initialisation N(0, sqrt(k / fan_in)); by default 1 for networks with residual blocks and 2
    otherwise (section 4.1.1). ``workers``: CPU threads (default: one per core). ``execution``:
    how convolutions and fc layers compute W s_t - ``"dense"`` matrix products, ``"event"``-driven
    sparse products (cost in proportion to the spikes, :mod:`minisnn.events`) or ``"auto"``
    (per layer and chunk, by the measured input density); the results agree up to float rounding.
    ``gradient``: what :meth:`backward` computes - ``"aggregated"``, the one pass on the
    statistics over T (eqs 3.23-3.25, the default), or ``"through-time"``, the authors' per-step
    gradient through the hard reset (docs/algorithm.md); the latter makes a training forward keep
    every step's spikes of every layer, so its memory grows with T (:mod:`minisnn.gradients`; a
    gradient the layers cannot run is refused with :class:`~minisnn.gradients.UnsupportedGradient`).
    ``options``: these run options and ``time_chunk`` as one :class:`RunOptions`; the keywords
    given (not None) override it. :attr:`options` reads the current ones back.
    """

    #: The backward passes :attr:`gradient` can select.
    GRADIENTS = tuple(gradients.GRADIENTS)

    def __init__(self, layers, input_shape, backend: Backend | None = None, encoder=None,
                 time_chunk: int | None = None, init_gain: float | None = None, seed: int = 0,
                 name: str = "network", workers: int | None = None, execution: str | None = None,
                 gradient: str | None = None, options: RunOptions | None = None):
        if not layers or not isinstance(layers[-1], Output):
            raise ValueError("a Network must end with an Output layer")
        self.layers = list(layers)
        self.name = name
        self.input_shape = tuple(int(s) for s in input_shape)
        self.backend = backend or Backend("cpu")
        self.xp = self.backend.xp
        self.encoder = encoder or PoissonEncoder()
        options = (options or RunOptions()).replace(time_chunk=time_chunk, workers=workers,
                                                    execution=execution, gradient=gradient)
        self.time_chunk = options.time_chunk
        if init_gain is None:
            init_gain = 1.0 if any(layer.residual for layer in self.layers) else 2.0
        self.init_gain = init_gain
        self.runner = None
        self.workers = options.workers
        self._observers = []
        self._observer_lock = threading.Lock()
        shape = self._internal_shape(self.input_shape)
        for layer in self.layers:
            shape = layer.build(self.backend, shape)
        self.num_classes = shape[0]
        self.execution = options.execution
        self.gradient = options.gradient
        events.compiled_kernels(self.xp)       # numba kernels compiled (or loaded) now, not in a step
        self.init_parameters(seed)
        self.T = None

    @property
    def options(self):
        """The current :class:`RunOptions` (the setters below change them one at a time)."""
        return RunOptions(self.execution, self.gradient, self.workers, self.time_chunk)

    @property
    def workers(self):
        """CPU worker threads of the forward pass (None: one per core)."""
        return self._workers

    @workers.setter
    def workers(self, count):
        self._workers = count
        if self.runner is not None:
            self.close()
        self.runner = Runner(count or cpu_count(), self.backend.device)
        self._close_runner = weakref.finalize(self, self.runner.close)
        for layer in self.all_layers():
            if layer.event_products:
                layer.batch_sum = self.runner.batch_sum      # auto: one path per chunk for the whole batch

    @property
    def execution(self):
        """"auto", "dense" or "event": the path of every convolution and fc layer."""
        return self._execution

    @execution.setter
    def execution(self, mode):
        self._execution = events.check_execution(mode)
        for layer in self.all_layers():
            if layer.event_products:
                layer.execution = mode

    @property
    def gradient(self):
        """"aggregated" or "through-time": the backward pass (see the class docstring)."""
        return self._gradient.name

    @gradient.setter
    def gradient(self, mode):
        strategy = gradients.strategy(mode)
        strategy.check(self.all_layers())
        self._gradient = strategy

    def close(self):
        """Stop the CPU worker threads (done at exit anyway; a later forward starts them again)."""
        self._close_runner()

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
        """(..., H, W, C) -> (..., C, H, W); vectors pass through."""
        if len(self.input_shape) != 3:
            return x
        return x.transpose(tuple(range(x.ndim - 3)) + (x.ndim - 1, x.ndim - 3, x.ndim - 2))

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
        """Copy arrays (host or device) into the live weights, checking names and shapes; subnormal
        weights (from a run without flushing) load as zero, as the optimisers keep them."""
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
            flush_subnormals(target)

    def neuron_layers(self):
        return [layer for layer in self.all_layers() if isinstance(layer, Neurons)]

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x, T=None, train=False, rng_key=(0,), part=None):
        """Run the network over T steps and return the output U^L(T) / T (eq 3.5), (B, classes).

        ``x`` is what the encoder takes: a batch of images (B, *input_shape), rate-coded over T
        steps, or with a :class:`~minisnn.encoding.FrameInput` a spike train (T, B, *input_shape),
        whose length is T. ``train`` keeps the statistics the backward needs and applies dropout;
        with ``gradient="through-time"`` it also keeps every step's spikes (memory grows with T).
        ``rng_key`` determines every random draw of the pass (encoding, dropout masks).
        ``part = (start, total)``: ``x`` holds the samples ``start..`` of a batch of ``total``
        (one process's share in data-parallel training, :mod:`minisnn.distributed`); they draw
        the numbers they would draw in the whole batch.
        """
        self._check_input(x)
        T = self.encoder.steps(x, T)
        self.reset(x.shape[len(self.encoder.leading_axes) - 1], T, train, rng_key, part)
        chunks = self.encoder.chunks(self.xp, self._to_internal(x), T, self.time_chunk,
                                     rows_of(self.backend.rng(*rng_key, "encode"), part, axis=1))
        with self.runner.compute():
            for spikes in chunks:
                self.runner.submit(self.forward_chunk, spikes)   # on the CPU: one slice of the batch per worker
            self.runner.wait()
        return self.layers[-1].output()

    def reset(self, batch, T, train=False, rng_key=(0,), part=None):
        """Start a pass of T steps over ``batch`` samples: fresh states, new dropout masks
        (``part``: as in :meth:`forward`)."""
        for index, layer in enumerate(self.layers):
            layer.reset(batch, train, rng=rows_of(self.backend.rng(*rng_key, "dropout", index), part, axis=0), T=T)
        if train:
            self._gradient.prepare(self.all_layers(), T)
        self.T = T

    def forward_chunk(self, spikes, rows=ALL):
        """One chunk of the spike train, (T_chunk, samples ``rows`` of the batch, ...), through
        every layer."""
        spikes = self.xp.ascontiguousarray(spikes)
        for layer in self.layers:
            spikes = layer(spikes, rows)
        return spikes

    def _check_input(self, x):
        leading = self.encoder.leading_axes
        if x.ndim != len(leading) + len(self.input_shape) or tuple(x.shape[len(leading):]) != self.input_shape:
            raise ValueError(f"{self.name}: input of shape {tuple(x.shape)} does not match "
                             f"({', '.join(leading + tuple(map(str, self.input_shape)))}) for {self.encoder!r}; "
                             f"the network was built for input_shape={self.input_shape}"
                             + ("; for event frames (T, batch, ...) build it with encoder=FrameInput()"
                                if x.ndim == len(leading) + len(self.input_shape) + 1 else ""))
        if x.dtype != self.backend.dtype:
            raise TypeError(f"{self.name}: input dtype {x.dtype} != the backend's {np.dtype(self.backend.dtype)}; "
                            "cast it with x.astype(...) or build the backend with that dtype")

    @contextlib.contextmanager
    def observe(self, callback):
        """Within the ``with`` block, call ``callback(layer, x)`` with each layer's input chunk
        ``x`` just before the layer's forward, for every layer (residual blocks and their
        sublayers too). With CPU workers a chunk holds one slice of the batch, and the calls
        come one at a time. ``x`` is only lent: neuron layers overwrite it with their spikes."""
        self._observers.append(callback)
        layers = self.layers + self.all_layers()
        for layer in layers:
            layer.observer = self._notify
        try:
            yield self
        finally:
            self._observers.remove(callback)
            if not self._observers:
                for layer in layers:
                    layer.observer = None

    def _notify(self, layer, x):
        with self._observer_lock:
            for callback in self._observers:
                callback(layer, x)

    # -- backward --------------------------------------------------------------------------
    def backward(self, error):
        """Back-propagate dE/d output = e (eq 3.9) through every layer in reverse (eqs 3.23-3.25).

        Fills :meth:`gradients`; returns dE/d(input spike counts) in the input's layout.
        With ``gradient="through-time"`` each layer runs ``backward_through_time`` on the steps
        the forward kept, and the result is dE/d(input spikes at each step), (T, B, *input_shape).
        """
        if self.T is None:
            raise RuntimeError("backward() needs a forward(train=True) first")
        with self.runner.compute():
            grad = self._gradient.backward(self.layers, error)
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


__all__ = ["Network", "RunOptions", "Layer", "LIF", "SpikingAvgPool", "Output"]
