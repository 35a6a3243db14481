"""Layers with weights: :class:`Conv2d`, :class:`Linear` and the non-spiking :class:`Output`
(their input counts, products and backward; minisnn.layers tells the shared conventions).
net = W x (eq 3.3), dE/dW = delta x(T)^T (eqs 3.24-3.25)."""
from __future__ import annotations

import copy
import math

from . import events, ops
from .layers import ALL, Layer, StepRecord
from .neurons import leaky_sum


class Weighted(Layer):
    """Shared bookkeeping of Conv2d, Linear and Output: weight init and the input count x(T) (eq 3.3)."""

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
        self.input_steps = None

    def record_steps(self, T):
        if self.records_inputs:
            self.input_steps = StepRecord(self.xp, T, self.batch_size, self.in_shape, self.dtype)

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

    def synapse_fanout(self, xp):
        return xp.full(self.in_shape, float(self.weight_shape[0]))        # fully connected: every output

    def dense_macs(self):
        return self.weight_shape[0] * self.weight_shape[1]

    def ann_twin(self):
        return self

    def linearised(self, gains):
        return self

    def convert_scales(self, conversion):
        conversion.weighted(self)


class Conv2d(Weighted):
    """2-D convolution without bias; weight shape (C_out, C_in, k, k)."""

    event_products = True

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

    def synapse_fanout(self, xp):
        """C_out times the output positions whose window covers the input pixel (borders exact)."""
        from .energy import conv_fanout_map

        h, w, c = self.in_shape
        fan = conv_fanout_map(xp, (h, w), self.kernel_size, self.stride, self.padding)
        return fan[:, :, None] * self.weight_shape[0] * xp.ones((1, 1, c))

    def dense_macs(self):
        """H' W' C_out C_in k^2 (padding taps included, as an accelerator computes them)."""
        c_out, c_in, k, _ = self.weight_shape
        ho, wo, _ = self.out_shape
        return ho * wo * c_out * c_in * k * k


class Linear(Weighted):
    """Fully connected map without bias; weight shape (out_features, in_features)."""

    event_products = True

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

    def linearised(self, gains):
        twin = copy.copy(self)                                        # shares params and grads
        twin.leak = 1.0
        return twin

    def convert_scales(self, conversion):
        conversion.output(self)
