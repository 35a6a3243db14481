"""Layers, each with its forward and its backward side by side.

Forward: a layer takes a chunk of the spike train of the layer below, shaped
``(T_chunk, B, *in_shape)``, and returns its own ``(T_chunk, B, *out_shape)``. State that lives
longer than a chunk (membrane potentials, spike counts, the input counts x(T)) stays in the
layer until the next :meth:`Layer.reset`, so the network can run the T steps chunk by chunk.
``rows`` says which samples of the batch the chunk holds: on the CPU the network gives each
thread a slice of the batch, and every layer updates only that slice of its state.
Calling a layer, ``layer(x, rows)``, runs its forward after showing ``x`` to the network's
observer (:meth:`minisnn.network.Network.observe`).

Backward (docs/algorithm.md, "one pass on accumulated quantities"): a layer takes dE/d(its output
spike counts) ``(B, *out_shape)`` and returns dE/d(its input spike counts) ``(B, *in_shape)``,
storing dE/dW for its parameters in ``self.grads``. It runs once per iteration, on the
statistics the forward accumulated, whatever T was.

The authors' gradient through time (docs/algorithm.md, "The authors' gradient through time",
:mod:`minisnn.gradients`): after a training reset, :meth:`Layer.record_steps` makes a layer keep
per-step copies (:class:`StepRecord`: the inputs of weighted layers, the spikes of neuron
layers, for all T steps, so memory grows with T), and ``backward_through_time`` takes dE/d(its
output at each step) ``(T, B, *out_shape)`` and returns dE/d(its input at each step)
``(T, B, *in_shape)``, also filling ``self.grads``.

What the rest of minisnn needs to know about a layer is asked of the layer itself (the base
class raises NotImplementedError naming the method a new layer lacks): its synapses and dense
MACs (:mod:`minisnn.energy`), its ANN twin (:mod:`minisnn.ann`), its linearised twin
(:mod:`minisnn.linearised`) and its step in a weight conversion (:mod:`minisnn.hybrid`).
The neurons' dynamics live in :mod:`minisnn.neurons`; :class:`Neurons` wraps a neuron model
into a layer. The layers with weights are in :mod:`minisnn.weighted`, the residual block in
:mod:`minisnn.residual`; all are importable from here.

Shapes are channels-last inside the network: a feature map is ``(H, W, C)``.
"""
from __future__ import annotations

import math

from . import ops
from .neurons import IFNeuron, LIFNeuron

ALL = slice(None)  # rows=ALL: the whole batch


class StepRecord:
    """Copies of a layer's chunks for all T steps of a pass, ``steps`` (T, B, *shape), for the
    gradient through time (memory grows with T). Each row slice of the batch (one per CPU worker)
    is filled in time order, chunk by chunk, from its own cursor."""

    def __init__(self, xp, T, batch, shape, dtype):
        self.steps = xp.zeros((T, batch) + tuple(shape), dtype)
        self._next = {}

    def add(self, chunk, rows):
        key = (rows.start, rows.stop)
        start = self._next.get(key, 0)
        self.steps[start:start + chunk.shape[0], rows] = chunk
        self._next[key] = start + chunk.shape[0]


def _missing(layer, method, why):
    return NotImplementedError(f"{type(layer).__name__} ({layer.name}) defines no {method}: {why}")


class Layer:
    """Base class: no parameters, no state. A new layer defines ``forward`` and ``backward`` (and
    ``backward_through_time`` for that gradient) and answers the questions below."""

    #: Set by :meth:`Network.observe`: called with (layer, input chunk) before each forward.
    observer = None
    #: Whether forward computes W s_t by the network's ``execution`` (dense or event-driven products).
    event_products = False
    #: Whether it adds a skip path: a network with one initialises with k = 1 (section 4.1.1).
    residual = False
    #: Whether its input spikes are pooling accumulates (:mod:`minisnn.energy`'s pool_ops).
    pools_spikes = False

    def __init__(self, name: str | None = None):
        self.name = name
        self.params: dict = {}
        self.grads: dict = {}
        self.training = False

    def build(self, backend, in_shape):
        """Bind to a backend, allocate parameters; return the per-sample output shape."""
        self.xp, self.dtype = backend.xp, backend.dtype
        self.in_shape = tuple(in_shape)
        self.out_shape = self.output_shape(self.in_shape)
        return self.out_shape

    def output_shape(self, in_shape):
        return in_shape

    def init_parameters(self, rng, gain):
        """Draw weights ~ N(0, sqrt(gain / fan_in)) (section 4.1.1)."""

    def reset(self, batch_size, training=False, rng=None, T=None):
        """Start a new forward pass over ``T`` steps for ``batch_size`` samples (``rng``: the
        layer's random stream of the pass, for dropout masks)."""
        self.batch_size = batch_size
        self.training = training

    def record_steps(self, T):
        """After a training reset: keep the per-step copies ``backward_through_time`` needs."""

    def __call__(self, x, rows=ALL):
        """``forward(x, rows)``, after showing ``x`` to the observer, if any."""
        if self.observer is not None:
            self.observer(self, x)
        return self.forward(x, rows)

    def forward(self, x, rows=ALL):
        raise _missing(self, "forward", "map a chunk (T_chunk, B, *in_shape) to (T_chunk, B, *out_shape)")

    def backward(self, grad):
        raise _missing(self, "backward", "map dE/d(output counts) to dE/d(input counts), filling self.grads")

    def backward_through_time(self, grad_steps):
        raise _missing(self, "backward_through_time", "the network's gradient='through-time' needs it")

    def through_time_refusal(self):
        """Why the gradient through time cannot run through this layer (None: it can)."""
        if type(self).backward_through_time is Layer.backward_through_time:
            return f"{type(self).__name__} defines no backward_through_time"
        return None

    def sublayers(self):
        return [self]

    def entry_layers(self):
        """The layers that take this layer's input (a residual block: both paths)."""
        return [self]

    def recorded(self, record):
        """The per-step array of ``record``, or a clear error when the forward kept none."""
        if record is None:
            raise RuntimeError(f"{self.name}: the gradient through time needs a forward(train=True) "
                               "with the network's gradient='through-time'")
        return record.steps

    # -- facts for minisnn.energy, ann, linearised and hybrid ------------------------------
    def synapse_fanout(self, xp):
        """Per input position (``in_shape``): the synapses an input spike reaches, each one
        accumulate (a SOP); None for a layer without synapses."""
        raise _missing(self, "synapse_fanout", "minisnn.energy counts its SOPs with it (None: no synapses)")

    def dense_macs(self):
        """Multiply-accumulates of the layer in an ANN, per sample (0: none)."""
        raise _missing(self, "dense_macs", "minisnn.energy counts the ANN's MACs with it (0: none)")

    def ann_twin(self):
        """The layer of the same model as an ANN (same name and weights): itself, or a ReLU for neurons."""
        raise _missing(self, "ann_twin", "minisnn.ann builds a model's ANN with it")

    def linearised(self, gains):
        """The layer of the linearised twin (:mod:`minisnn.linearised`), neurons frozen at ``gains[name]``."""
        raise _missing(self, "linearised", "the whole-chain finite-difference checks use it")

    def convert_scales(self, conversion):
        """Its step in an ANN-to-SNN weight conversion: call the matching ``conversion`` method."""
        raise _missing(self, "convert_scales", "ANN-to-SNN conversion walks the layers with it")

    def spike_scale(self, incoming):
        """Spike events per unit of its output, given ``incoming`` per unit of its input (1: spikes)."""
        return 1.0

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


class Passive(Layer):
    """A layer that moves spikes without synapses or neurons (reshape, mask, skip): no SOPs, no
    MACs, itself in the ANN and the linearised twin, the conversion's scale unchanged."""

    def synapse_fanout(self, xp):
        return None

    def dense_macs(self):
        return 0

    def ann_twin(self):
        return self

    def linearised(self, gains):
        return self

    def convert_scales(self, conversion):
        conversion.passes(self)

    def spike_scale(self, incoming):
        return incoming


class Flatten(Passive):
    """(H, W, C) -> (H * W * C,)."""

    def output_shape(self, in_shape):
        return (math.prod(in_shape),)

    def forward(self, x, rows=ALL):
        return x.reshape(x.shape[:2] + self.out_shape)

    def backward(self, grad):
        return grad.reshape((grad.shape[0],) + self.in_shape)

    def backward_through_time(self, grad_steps):
        return grad_steps.reshape(grad_steps.shape[:2] + self.in_shape)


# ------------------------------------------------------------------------------------------
# Neurons
# ------------------------------------------------------------------------------------------

class Neurons(Layer):
    """A layer of neurons: ``neuron`` (a :class:`minisnn.neurons.Neuron`) owns their dynamics,
    derivative and recursion through time; the layer keeps their state over the T steps, one
    slice of rows per CPU worker, and the spikes of every step for the gradient through time."""

    def __init__(self, neuron, name=None):
        super().__init__(name)
        self.neuron = neuron

    def reset(self, batch_size, training=False, rng=None, T=None):
        super().reset(batch_size, training, rng, T)
        self.state = self.neuron.state(self.xp, (batch_size,) + self.out_shape, self.dtype, training)
        self.output_steps = None

    def record_steps(self, T):
        self.output_steps = StepRecord(self.xp, T, self.batch_size, self.out_shape, bool)

    def forward(self, currents, rows=ALL):
        return self.fire(self.neuron.fire(self.xp, currents, self.state.rows(rows)), rows)

    def fire(self, spikes, rows):
        """Keep the chunk's spikes o_t for the gradient through time, if it is on; return them."""
        if self.output_steps is not None:
            self.output_steps.add(spikes, rows)
        return spikes

    def derivative(self):
        """a'(net) per neuron (eq 3.12)."""
        return self.neuron.derivative(self.xp, self.state)

    def backward(self, grad):
        return grad * self.derivative()                                                 # eq 3.12

    def backward_through_time(self, grad_steps):
        """g_t = dE/d(input current at step t) from a' dE/do_t by the neuron's reset recursion."""
        spikes = self.recorded(self.output_steps)
        return self.neuron.through_time(self.xp, grad_steps * self.derivative(), spikes)

    def through_time_refusal(self):
        return self.neuron.through_time_refusal()

    @property
    def spike_count(self):
        return self.state.count

    def linear_part(self, x):
        """The linear map in front of the neurons (none; a spiking pool's average)."""
        return x

    def synapse_fanout(self, xp):
        return None

    def dense_macs(self):
        return 0

    def ann_twin(self):
        from .ann import ReLU
        return ReLU(name=self.name)

    def linearised(self, gains):
        from .linearised import frozen
        return frozen(self, gains[self.name])

    def convert_scales(self, conversion):
        conversion.neurons(self)


def neuron_layer(neuron, name, threshold=1.0, leak=0.99, reset="hard"):
    """A layer of the neurons ``neuron()`` makes (a :class:`minisnn.neurons.Neuron` factory) or,
    with ``neuron=None``, of LIF neurons (threshold, leak, reset)."""
    return LIF(threshold, leak, name, reset) if neuron is None else Neurons(neuron(), name)


class LIF(Neurons):
    """A layer of leaky integrate-and-fire neurons (:class:`minisnn.neurons.LIFNeuron`, eqs 3.1-3.2,
    derivative 3.22); ``reset``: "hard" (the thesis) or "subtract" (converted networks)."""

    def __init__(self, threshold=1.0, leak=0.99, name=None, reset="hard"):
        super().__init__(LIFNeuron(threshold, leak, reset), name)

    threshold = property(lambda self: self.neuron.threshold)
    leak = property(lambda self: self.neuron.leak)
    reset_mode = property(lambda self: self.neuron.reset)


class SpikingAvgPool(Neurons):
    """2x2 average of the incoming spikes integrated by IF neurons, threshold 0.75 (section 3.2.1).

    ``reset``: "hard" (the thesis) or "subtract", as :class:`LIF`'s.
    Backward as in the authors' code: the gradient passes with factor 1 where the pooling
    neuron fired at least once and 0 elsewhere (not 1/threshold), then spreads over the window / 4.
    Through time, the factor is 1 at the steps the pooling neuron fired, with the reset recursion
    of :func:`minisnn.neurons.through_hard_reset`.
    """

    pools_spikes = True

    def __init__(self, threshold=0.75, name=None, reset="hard"):
        # Integrating the 2x2 sum against 4 theta makes the same spikes as integrating the average
        # against theta (scaling by 1/4 is exact in floating point), one pass cheaper.
        super().__init__(IFNeuron(4 * threshold, reset), name)
        self.threshold = threshold

    reset_mode = property(lambda self: self.neuron.reset)

    def output_shape(self, in_shape):
        h, w, c = in_shape
        return (h // 2, w // 2, c)

    def forward(self, x, rows=ALL):
        steps, batch = x.shape[:2]
        summed = ops.sum_pool2x2(x.reshape((steps * batch,) + self.in_shape))
        return super().forward(summed.reshape((steps, batch) + self.out_shape), rows)

    def derivative(self):
        return (self.state.count > 0).astype(self.dtype)

    def backward(self, grad):
        return ops.avg_pool2x2_backward(self.xp, grad * self.derivative(), (grad.shape[0],) + self.in_shape)

    def backward_through_time(self, grad_steps):
        g = super().backward_through_time(grad_steps)
        steps, batch = g.shape[:2]
        spread = ops.avg_pool2x2_backward(self.xp, g.reshape((-1,) + self.out_shape),
                                          (steps * batch,) + self.in_shape)
        return spread.reshape((steps, batch) + self.in_shape)

    def linear_part(self, x):
        steps, batch = x.shape[:2]
        return ops.avg_pool2x2(x.reshape((steps * batch,) + self.in_shape)).reshape((steps, batch) + self.out_shape)

    def ann_twin(self):
        from .ann import AvgPool
        return AvgPool(name=self.name)

    def convert_scales(self, conversion):
        conversion.spiking_pool(self)


class Dropout(Passive):
    """One Bernoulli mask per sample and unit, drawn once per forward and held for all T steps
    (section 3.3.2); kept units scaled by 1 / (1 - p). Identity at evaluation. Like the neurons,
    forward works in place: it scales the spike chunk it is given."""

    def __init__(self, p=0.2, name=None):
        super().__init__(name)
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.mask = None

    def reset(self, batch_size, training=False, rng=None, T=None):
        super().reset(batch_size, training, rng, T)
        self.mask = None
        if training and self.p > 0:
            keep = rng.random((batch_size,) + self.in_shape, dtype=self.xp.float32) >= self.p   # any dtype: same mask
            self.mask = keep.astype(self.dtype) * (1.0 / (1.0 - self.p))

    def forward(self, x, rows=ALL):
        if self.mask is not None:
            x *= self.mask[rows]          # in place: the spikes are this layer's alone
        return x

    def backward(self, grad):
        return grad if self.mask is None else grad * self.mask

    backward_through_time = backward          # the mask is the same at every step

    def convert_scales(self, conversion):
        conversion.drops(self)


# ------------------------------------------------------------------------------------------
# The parameter-free skips of residual blocks (minisnn.residual)
# ------------------------------------------------------------------------------------------

class Identity(Passive):
    """x -> x. ``skip=True``: a residual skip, whose spikes each add into one membrane (an SOP)."""

    def __init__(self, name=None, skip=False):
        super().__init__(name)
        self.skip = skip

    def forward(self, x, rows=ALL):
        return x

    def backward(self, grad):
        return grad

    backward_through_time = backward

    def synapse_fanout(self, xp):
        return xp.ones(self.in_shape) if self.skip else None


class Subsample(Passive):
    """Parameter-free stride-2 skip of the authors' ResNet11 code: x[:, ::2, ::2, :]; each kept
    spike adds into one membrane (an SOP)."""

    def output_shape(self, in_shape):
        h, w, c = in_shape
        return ((h + 1) // 2, (w + 1) // 2, c)

    def forward(self, x, rows=ALL):
        return x[:, :, ::2, ::2, :]

    def backward(self, grad):
        out = self.xp.zeros((grad.shape[0],) + self.in_shape, grad.dtype)
        out[:, ::2, ::2, :] = grad
        return out

    def backward_through_time(self, grad_steps):
        out = self.xp.zeros(grad_steps.shape[:2] + self.in_shape, grad_steps.dtype)
        out[:, :, ::2, ::2, :] = grad_steps
        return out

    def synapse_fanout(self, xp):
        fan = xp.zeros(self.in_shape)
        fan[::2, ::2, :] = 1
        return fan


# re-exported: they build on the layers above
from .weighted import Conv2d, Linear, Output, Weighted  # noqa: E402
from .residual import ResidualBlock  # noqa: E402
