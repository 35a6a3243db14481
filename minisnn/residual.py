"""The residual block (section 3.2.2): two conv - neuron layers and a skip path."""
from __future__ import annotations

import copy

from .layers import ALL, Dropout, Identity, Layer, Subsample, neuron_layer
from .weighted import Conv2d


class ResidualBlock(Layer):
    """Two conv-LIF layers; the skip path is added into the second layer's membrane (3.2.2):

        U2_t = lambda U2'_{t-1} + W2 * o1_t + S * x_t

    with S a 1x1 convolution (``skip="conv"``), the identity (``"identity"``) or the authors'
    parameter-free stride-2 subsample (``"subsample"``). Backward: the sum over both paths.
    ``neuron``: a :class:`minisnn.neurons.Neuron` factory for both neuron layers (None: LIF
    neurons with ``threshold``, ``leak`` and ``reset``).
    """

    residual = True

    def __init__(self, in_channels, out_channels, stride=1, skip="conv", threshold=1.0, leak=0.99,
                 dropout=0.0, name=None, reset="hard", neuron=None):
        super().__init__(name)
        self.conv_a = Conv2d(in_channels, out_channels, 3, 1, 1, name=f"{name}.conv_a")
        self.lif_a = neuron_layer(neuron, f"{name}.lif_a", threshold, leak, reset)
        self.drop = Dropout(dropout, name=f"{name}.dropout") if dropout > 0 else Identity(f"{name}.id")
        self.conv_b = Conv2d(out_channels, out_channels, 3, stride, 1, name=f"{name}.conv_b")
        self.lif_b = neuron_layer(neuron, f"{name}.lif_b", threshold, leak, reset)
        if skip == "conv":
            self.skip = Conv2d(in_channels, out_channels, 1, stride, 0, name=f"{name}.skip")
        elif skip == "identity":
            if stride != 1 or in_channels != out_channels:
                raise ValueError(f"{name}: an identity skip needs stride 1 and equal channels")
            self.skip = Identity(f"{name}.skip", skip=True)
        elif skip == "subsample":
            if stride != 2 or in_channels != out_channels:
                raise ValueError(f"{name}: a subsample skip needs stride 2 and equal channels")
            self.skip = Subsample(f"{name}.skip")
        else:
            raise ValueError(f"{name}: skip must be 'conv', 'identity' or 'subsample', got {skip!r}")
        self.skip_kind = skip

    def sublayers(self):
        return [self.conv_a, self.lif_a, self.drop, self.conv_b, self.skip, self.lif_b]

    def entry_layers(self):
        return [self.conv_a, self.skip]

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

    # -- facts (minisnn.layers.Layer): the sublayers answer for energy; the block swaps its neurons
    def ann_twin(self):
        self.lif_a, self.lif_b = self.lif_a.ann_twin(), self.lif_b.ann_twin()
        return self

    def linearised(self, gains):
        twin = copy.copy(self)
        twin.lif_a, twin.lif_b = self.lif_a.linearised(gains), self.lif_b.linearised(gains)
        return twin

    def convert_scales(self, conversion):
        conversion.block(self)
