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

The authors' gradient through time (docs/algorithm.md, "The authors' gradient through time"),
selected with ``Network(gradient="through-time")``: the forward also keeps per-step copies
(:class:`StepRecord`: the inputs of weighted layers, the spikes of neuron layers, for all T
steps, so memory grows with T), and ``backward_through_time`` takes dE/d(its output at each step)
``(T, B, *out_shape)`` and returns dE/d(its input at each step) ``(T, B, *in_shape)``, also
filling ``self.grads``.

The linearised twin used by the finite-difference checks (every neuron a frozen gain) is
built outside the layers, in :mod:`minisnn.linearised`.

Shapes are channels-last inside the network: a feature map is ``(H, W, C)``.
"""
from __future__ import annotations

import math

from . import events, ops
from .neurons import NeuronState, integrate_and_fire, leaky_sum, lif_derivative

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


class Layer:
    """Base class: no parameters, no state."""

    #: Set by :meth:`Network.observe`: called with (layer, input chunk) before each forward.
    observer = None
    #: Set by the network's ``gradient``: True makes a training forward keep :class:`StepRecord`s.
    through_time = False

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

    def __call__(self, x, rows=ALL):
        """``forward(x, rows)``, after showing ``x`` to the observer, if any."""
        if self.observer is not None:
            self.observer(self, x)
        return self.forward(x, rows)

    def sublayers(self):
        return [self]

    def recorded(self, record):
        """The per-step array of ``record``, or a clear error when the forward kept none."""
        if record is None:
            raise RuntimeError(f"{self.name}: the gradient through time needs a forward(train=True) "
                               "with the network's gradient='through-time'")
        return record.steps

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


# ------------------------------------------------------------------------------------------
# Linear maps with weights: net = W x (eq 3.3), dE/dW = delta x(T)^T (eqs 3.24-3.25)
# ------------------------------------------------------------------------------------------

class Weighted(Layer):
    """Shared bookkeeping of Conv2d and Linear: weight init and the input count x(T) (eq 3.3)."""

    def init_parameters(self, rng, gain):
        shape = self.weight_shape
        fan_in = math.prod(shape[1:])
        std = math.sqrt(gain / fan_in)
        # drawn in float32 whatever the dtype, so float32 and float64 runs start from the same weights
        normal = rng.standard_normal(shape, dtype=self.xp.float32).astype(self.dtype)
        self.params["weight"] = (normal * std).astype(self.dtype)

    #: Whether the gradient through time needs the inputs s_t of every step (not the output layer's).
    records_inputs = True
    #: Set by the network: its runner's ``batch_sum``, which totals a count over the workers'
    #: slices of the batch (None: the layer sees the whole batch).
    batch_sum = None

    def reset(self, batch_size, training=False, rng=None, T=None):
        super().reset(batch_size, training, rng, T)
        self.paths = []            # per chunk under execution="auto": (input density, event path taken?)
        self.input_count = self.xp.zeros((batch_size,) + self.in_shape, self.dtype) if training else None
        self.input_steps = (StepRecord(self.xp, T, batch_size, self.in_shape, self.dtype)
                            if training and self.through_time and self.records_inputs else None)

    def use_events(self, x, rows):
        """Whether this chunk takes the event path (:func:`minisnn.events.prefers_events`), decided
        on the whole batch's input density: the same for every worker, whatever their number."""
        event, rho = events.prefers_events(self.execution, self.xp, x, self.weight_shape[0], self.batch_sum)
        if rho is not None and rows.start in (None, 0):            # one record per chunk
            self.paths.append((rho, event))
        return event

    def count_input(self, x, rows):
        """x(T) = sum_t s_t, the per-sample input spike count (eq 3.3), kept for the backward
        (and, for the gradient through time, every s_t)."""
        if self.training:
            self.input_count[rows] += x.sum(axis=0)
            if self.input_steps is not None:
                self.input_steps.add(x, rows)


class Conv2d(Weighted):
    """2-D convolution without bias; weight shape (C_out, C_in, k, k)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, name=None,
                 block_bytes=2 << 20):
        super().__init__(name)
        self.weight_shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.stride, self.padding, self.kernel_size = stride, padding, kernel_size
        self.block_bytes = block_bytes

    def output_shape(self, in_shape):
        h, w, c = in_shape
        if c != self.weight_shape[1]:
            raise ValueError(f"{self.name}: expects {self.weight_shape[1]} input channels, got {c}")
        k, s, p = self.kernel_size, self.stride, self.padding
        return (ops.conv_output_size(h, k, s, p), ops.conv_output_size(w, k, s, p), self.weight_shape[0])

    #: "auto" | "dense" | "event": how forward computes W * s_t (see minisnn.events)
    execution = "auto"

    def forward(self, x, rows=ALL):
        self.count_input(x, rows)
        steps, batch = x.shape[:2]
        images, w = x.reshape((steps * batch,) + self.in_shape), self.params["weight"]
        if self.use_events(images, rows):
            out = events.conv2d(self.xp, images, w, self.stride, self.padding)           # cost ~ spikes
        else:
            out = ops.conv2d(self.xp, images, w, self.stride, self.padding, self.block_bytes)
        return out.reshape((steps, batch) + self.out_shape)

    def backward(self, delta):
        w = self.params["weight"]
        self.grads["weight"] = ops.conv2d_backward_weight(
            self.xp, self.input_count, delta, w.shape, self.stride, self.padding)      # eq 3.25
        return ops.conv2d_backward_input(
            self.xp, delta, w, self.input_count.shape, self.stride, self.padding)

    def backward_through_time(self, grad_steps):
        """dE/dW = sum_t g_t * s_t: one correlation over all T * B rows."""
        inputs, w = self.recorded(self.input_steps), self.params["weight"]
        images = inputs.reshape((-1,) + self.in_shape)
        delta = grad_steps.reshape((-1,) + self.out_shape)
        self.grads["weight"] = ops.conv2d_backward_weight(
            self.xp, images, delta, w.shape, self.stride, self.padding)
        return ops.conv2d_backward_input(
            self.xp, delta, w, images.shape, self.stride, self.padding).reshape(inputs.shape)


class Linear(Weighted):
    """Fully connected map without bias; weight shape (out_features, in_features)."""

    def __init__(self, in_features, out_features, name=None):
        super().__init__(name)
        self.weight_shape = (out_features, in_features)

    def output_shape(self, in_shape):
        if in_shape != (self.weight_shape[1],):
            raise ValueError(f"{self.name}: expects ({self.weight_shape[1]},) inputs, got {in_shape}")
        return (self.weight_shape[0],)

    #: "auto" | "dense" | "event": how forward computes W s_t (see minisnn.events)
    execution = "auto"

    def reset(self, batch_size, training=False, rng=None, T=None):
        super().reset(batch_size, training, rng, T)
        self.weight_t = None      # W^T, contiguous, for the event path: made once per forward

    def forward(self, x, rows=ALL):
        self.count_input(x, rows)
        inputs, w = x.reshape(-1, x.shape[-1]), self.params["weight"]
        if self.use_events(inputs, rows):
            if self.weight_t is None:
                self.weight_t = self.xp.ascontiguousarray(w.T)
            currents = events.linear(self.xp, inputs, self.weight_t)                     # cost ~ spikes
        else:
            currents = inputs @ w.T                                                      # one product for the chunk
        return currents.reshape(x.shape[:-1] + self.out_shape)

    def backward(self, delta):
        self.grads["weight"] = delta.T @ self.input_count                               # eq 3.25
        return delta @ self.params["weight"]

    def backward_through_time(self, grad_steps):
        """dE/dW = sum_t g_t s_t^T: one product over all T * B rows; dE/ds_t = W^T g_t."""
        inputs = self.recorded(self.input_steps)
        delta = grad_steps.reshape(-1, grad_steps.shape[-1])
        self.grads["weight"] = delta.T @ inputs.reshape(-1, inputs.shape[-1])
        return (delta @ self.params["weight"]).reshape(inputs.shape)


class Flatten(Layer):
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
    """A layer of neurons: membrane potentials and spike statistics carried over the T steps."""

    keep_trace = True

    def reset(self, batch_size, training=False, rng=None, T=None):
        super().reset(batch_size, training, rng, T)
        self.state = NeuronState(self.xp, (batch_size,) + self.out_shape, self.dtype,
                                 keep_trace=self.keep_trace and training)
        self.output_steps = (StepRecord(self.xp, T, batch_size, self.out_shape, bool)
                             if training and self.through_time else None)

    def fire(self, spikes, rows):
        """Keep the chunk's spikes o_t for the gradient through time, if it is on; return them."""
        if self.output_steps is not None:
            self.output_steps.add(spikes, rows)
        return spikes

    def backward(self, grad):
        return grad * self.derivative()                                                 # eq 3.12

    def backward_through_time(self, grad_steps):
        """dE/dU_t through the hard reset, backwards from g_{T+1} = 0 (the authors' graph):

            g_t = o_t a' dE/do_t + (1 - o_t) g_{t+1}

        a spike passes its step's gradient (times the per-neuron a' of :meth:`derivative`), a
        silent step passes the next step's on. Returns g_t = dE/d(input current at step t)."""
        spikes = self.recorded(self.output_steps)
        g = grad_steps * self.derivative()                       # a' dE/do_t, a new (T, B, ...) array
        g[-1] *= spikes[-1]
        for t in range(g.shape[0] - 2, -1, -1):
            self.xp.copyto(g[t], g[t + 1], where=~spikes[t])     # silent: g_t = g_{t+1}
        return g

    @property
    def spike_count(self):
        return self.state.count


#: A spiking layer's ``reset``: the name of the rule in :func:`~minisnn.neurons.integrate_and_fire`.
RESETS = {"hard": "zero", "subtract": "subtract"}


def _reset_rule(reset):
    if reset not in RESETS:
        raise ValueError(f"reset must be 'hard' or 'subtract', got {reset!r}")
    return RESETS[reset]


class LIF(Neurons):
    """Leaky integrate-and-fire neurons (eqs 3.1-3.2) and their derivative (3.22).

    ``reset="hard"`` (the thesis): U <- 0 after a spike. ``reset="subtract"``: U <- U - V_th,
    which keeps the charge above threshold, so a(T) V_th = net - U_T - (leak losses) and the
    IF reading a ~ net / V_th of eq 3.16 holds up to one threshold; the derivative is the same
    eq 3.22. The gradient through time follows the hard reset's graph only."""

    def __init__(self, threshold=1.0, leak=0.99, name=None, reset="hard"):
        super().__init__(name)
        if not 0 < leak <= 1:
            raise ValueError(f"LIF leak must be in (0, 1], got {leak}")
        self.threshold, self.leak = threshold, leak
        self.reset_mode, self._rule = reset, _reset_rule(reset)

    def forward(self, currents, rows=ALL):
        spikes = integrate_and_fire(self.xp, currents, self.state.rows(rows), self.threshold, self.leak,
                                    reset=self._rule)
        return self.fire(spikes, rows)

    def derivative(self):
        """a'(net) per neuron (eq 3.22)."""
        return lif_derivative(self.xp, self.state.count, self.state.trace, self.threshold, self.leak)

    def backward_through_time(self, grad_steps):
        if self.reset_mode != "hard":
            raise NotImplementedError(f"{self.name}: the gradient through time follows the hard reset; "
                                      "use the aggregated gradient with reset by subtraction")
        return super().backward_through_time(grad_steps)


class SpikingAvgPool(Neurons):
    """2x2 average of the incoming spikes integrated by IF neurons, threshold 0.75 (section 3.2.1).

    ``reset``: "hard" (the thesis) or "subtract", as :class:`LIF`'s.
    Backward as in the authors' code: the gradient passes with factor 1 where the pooling
    neuron fired at least once and 0 elsewhere (not 1/threshold), then spreads over the window / 4.
    Through time, the factor is 1 at the steps the pooling neuron fired, with the reset recursion
    of :meth:`Neurons.backward_through_time`.
    """

    keep_trace = False

    def __init__(self, threshold=0.75, name=None, reset="hard"):
        super().__init__(name)
        self.threshold = threshold
        self.reset_mode, self._rule = reset, _reset_rule(reset)

    def output_shape(self, in_shape):
        h, w, c = in_shape
        return (h // 2, w // 2, c)

    def forward(self, x, rows=ALL):
        steps, batch = x.shape[:2]
        # Integrating the 2x2 sum against 4 theta makes the same spikes as integrating the average
        # against theta (scaling by 1/4 is exact in floating point), one pass cheaper.
        summed = ops.sum_pool2x2(x.reshape((steps * batch,) + self.in_shape))
        summed = summed.reshape((steps, batch) + self.out_shape)
        return self.fire(integrate_and_fire(self.xp, summed, self.state.rows(rows), 4 * self.threshold,
                                            reset=self._rule), rows)

    def derivative(self):
        return (self.state.count > 0).astype(self.dtype)

    def backward(self, grad):
        return ops.avg_pool2x2_backward(self.xp, grad * self.derivative(), (grad.shape[0],) + self.in_shape)

    def backward_through_time(self, grad_steps):
        if self.reset_mode != "hard":
            raise NotImplementedError(f"{self.name}: the gradient through time follows the hard reset; "
                                      "use the aggregated gradient with reset by subtraction")
        g = super().backward_through_time(grad_steps)
        steps, batch = g.shape[:2]
        spread = ops.avg_pool2x2_backward(self.xp, g.reshape((-1,) + self.out_shape),
                                          (steps * batch,) + self.in_shape)
        return spread.reshape((steps, batch) + self.in_shape)


class Dropout(Layer):
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


# ------------------------------------------------------------------------------------------
# Output layer (eq 3.5) and residual block (section 3.2.2)
# ------------------------------------------------------------------------------------------

class Output(Weighted):
    """Non-spiking output layer: its membrane integrates W s_t with the leak and never fires;
    output = U^L(T) / T (eq 3.5). Since W is linear, U^L(T) = W sum_t lambda^(T-t) s_t is computed
    from a leaky input sum. Backward: delta^L = e / T (eqs 3.10-3.11, 3.23).

    ``forward`` returns U^L(t) / T after the chunk for its rows, so the output of the pass once
    the last chunk is in. :meth:`output` computes the same on the whole batch in one product,
    which the network returns: a matrix product's rounding depends on how many rows it has, so
    products over slices of the batch would make the result depend on the worker count.

    The authors' code leaks after adding the input, U_t = lambda (U_{t-1} + W s_t), so its
    output is this one times lambda (a constant 1 % at lambda = 0.99).

    Through time, the leak passes no gradient (the authors' graph), so dE/dU^L_t = e / T at every
    step and the gradients are the aggregated ones; :meth:`backward_through_time` takes the
    error e (B, classes) like :meth:`backward` and returns dE/ds_t (T, B, in_features), the same at
    every step (a read-only broadcast view)."""

    records_inputs = False

    def __init__(self, in_features, num_classes, leak=0.99, name=None):
        super().__init__(name)
        self.weight_shape = (num_classes, in_features)
        self.leak = leak

    def output_shape(self, in_shape):
        if in_shape != (self.weight_shape[1],):
            raise ValueError(f"{self.name}: expects ({self.weight_shape[1]},) inputs, got {in_shape}")
        return (self.weight_shape[0],)

    def reset(self, batch_size, training=False, rng=None, T=None):
        if T is None or T < 1:
            raise ValueError(f"{self.name}: reset needs T, the number of time steps of the pass, got {T}")
        super().reset(batch_size, training, rng, T)
        self.T = T
        self.leaky_sum = self.xp.zeros((batch_size,) + self.in_shape, self.dtype)

    def forward(self, x, rows=ALL):
        self.count_input(x, rows)
        total = leaky_sum(self.xp, x, self.leaky_sum[rows], self.leak)
        return total @ self.params["weight"].T / self.T                                 # eq 3.5

    def output(self):
        """U^L(T) / T (eq 3.5) of the whole batch."""
        return self.leaky_sum @ self.params["weight"].T / self.T

    def backward(self, error):
        delta = error / self.T                                                          # eq 3.23
        self.grads["weight"] = delta.T @ self.input_count                               # eq 3.25
        return delta @ self.params["weight"]

    def backward_through_time(self, error):
        grad = self.backward(error)
        return self.xp.broadcast_to(grad, (self.T,) + grad.shape)


class Identity(Layer):
    def forward(self, x, rows=ALL):
        return x

    def backward(self, grad):
        return grad

    backward_through_time = backward


class Subsample(Layer):
    """Parameter-free stride-2 skip of the authors' ResNet11 code: x[:, ::2, ::2, :]."""

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


class ResidualBlock(Layer):
    """Two conv-LIF layers; the skip path is added into the second layer's membrane (3.2.2):

        U2_t = lambda U2'_{t-1} + W2 * o1_t + S * x_t

    with S a 1x1 convolution (``skip="conv"``), the identity (``"identity"``) or the authors'
    parameter-free stride-2 subsample (``"subsample"``). Backward: the sum over both paths.
    """

    def __init__(self, in_channels, out_channels, stride=1, skip="conv", threshold=1.0, leak=0.99,
                 dropout=0.0, name=None, reset="hard"):
        super().__init__(name)
        self.conv_a = Conv2d(in_channels, out_channels, 3, 1, 1, name=f"{name}.conv_a")
        self.lif_a = LIF(threshold, leak, name=f"{name}.lif_a", reset=reset)
        self.drop = Dropout(dropout, name=f"{name}.dropout") if dropout > 0 else Identity(f"{name}.id")
        self.conv_b = Conv2d(out_channels, out_channels, 3, stride, 1, name=f"{name}.conv_b")
        self.lif_b = LIF(threshold, leak, name=f"{name}.lif_b", reset=reset)
        if skip == "conv":
            self.skip = Conv2d(in_channels, out_channels, 1, stride, 0, name=f"{name}.skip")
        elif skip == "identity":
            if stride != 1 or in_channels != out_channels:
                raise ValueError(f"{name}: an identity skip needs stride 1 and equal channels")
            self.skip = Identity(f"{name}.skip")
        elif skip == "subsample":
            if stride != 2 or in_channels != out_channels:
                raise ValueError(f"{name}: a subsample skip needs stride 2 and equal channels")
            self.skip = Subsample(f"{name}.skip")
        else:
            raise ValueError(f"{name}: skip must be 'conv', 'identity' or 'subsample', got {skip!r}")
        self.skip_kind = skip

    def sublayers(self):
        return [self.conv_a, self.lif_a, self.drop, self.conv_b, self.skip, self.lif_b]

    def build(self, backend, in_shape):
        super().build(backend, in_shape)
        shape = self.conv_a.build(backend, in_shape)
        shape = self.lif_a.build(backend, shape)
        shape = self.drop.build(backend, shape)
        shape = self.conv_b.build(backend, shape)
        skip_shape = self.skip.build(backend, in_shape)
        if skip_shape != shape:
            raise ValueError(f"{self.name}: skip gives {skip_shape} but the main path {shape}")
        self.out_shape = self.lif_b.build(backend, shape)
        return self.out_shape

    def output_shape(self, in_shape):
        return in_shape  # replaced in build

    def init_parameters(self, rng, gain):
        for layer in (self.conv_a, self.conv_b, self.skip):
            layer.init_parameters(rng, gain)

    def reset(self, batch_size, training=False, rng=None, T=None):
        super().reset(batch_size, training, rng, T)
        for layer in self.sublayers():
            layer.reset(batch_size, training, rng, T)

    def forward(self, x, rows=ALL):
        hidden = self.drop(self.lif_a(self.conv_a(x, rows), rows), rows)
        currents = self.conv_b(hidden, rows)
        currents += self.skip(x, rows)
        return self.lif_b(currents, rows)

    def backward(self, grad):
        delta = self.lif_b.backward(grad)
        through_main = self.conv_a.backward(self.lif_a.backward(self.drop.backward(self.conv_b.backward(delta))))
        return through_main + self.skip.backward(delta)

    def backward_through_time(self, grad_steps):
        delta = self.lif_b.backward_through_time(grad_steps)
        hidden = self.drop.backward_through_time(self.conv_b.backward_through_time(delta))
        through_main = self.conv_a.backward_through_time(self.lif_a.backward_through_time(hidden))
        return through_main + self.skip.backward_through_time(delta)
