"""The linearised twin of a network, for the whole-chain finite-difference checks (docs/algorithm.md).

A spiking network is not differentiable, so finite differences cannot check its backward
directly. Its twin is: every neuron layer becomes a frozen gain g, the value its derivative is
fixed to, and the output layer integrates without leak. With the input spike counts z^0,

    z^l = g^l (.) (W^l z^{l-1})        (a spiking pool: g (.) avgpool(z^{l-1}))
    output = W^L z^{L-1} / T

an ordinary function of the weights and z^0. The twin shares the weighted layers, dropout and
skips with the network (so their weights, masks and gradients), and the neuron layers' own
backward runs with the gain as their derivative: finite differences of the twin's loss check
the product's backward code, layer by layer and through the whole chain.

    twin = Linearised(net, random_gains(net, batch, rng))
    out = twin.forward(z0, T, train=True)
    twin.backward(mse_loss(out, labels)[1])        # fills net.gradients()
"""
from __future__ import annotations

import copy
import functools

from .layers import ALL, Layer


class FrozenGain:
    """Mixin over a neuron class: forward ``gain (.) (linear part of x)``, derivative ``gain``."""

    def reset(self, batch_size, training=False, rng=None, T=None):
        Layer.reset(self, batch_size, training, rng, T)              # no neuron state

    def forward(self, x, rows=ALL):
        return self.linear_part(x) * self.gain[rows]

    def derivative(self):
        return self.gain


@functools.cache
def _frozen_class(cls):
    return type(f"Frozen{cls.__name__}", (FrozenGain, cls), {})


def frozen(layer, gain):
    """A copy of neuron layer ``layer`` linearised at ``gain`` (per sample and neuron)."""
    twin = copy.copy(layer)
    twin.__class__ = _frozen_class(type(layer))
    twin.gain = gain
    return twin


def twin_layer(layer, gains):
    """The linearised twin of one layer (its ``linearised``): neuron layers (also inside residual
    blocks) frozen at ``gains[name]``, the output layer without leak, every other layer itself."""
    return layer.linearised(gains)


def random_gains(net, batch, rng, low=0.5, high=1.5):
    """{neuron layer name: gains ~ U(low, high) of shape (batch, *out_shape)} (host arrays)."""
    return {layer.name: rng.uniform(low, high, (batch,) + layer.out_shape) for layer in net.neuron_layers()}


class Linearised:
    """The linearised twin of ``net`` (module docstring), gains {neuron layer name: array}."""

    def __init__(self, net, gains):
        missing = [layer.name for layer in net.neuron_layers() if layer.name not in gains]
        if missing:
            raise ValueError(f"no gains given for the neuron layers {missing}")
        self.net = net
        self.layers = [twin_layer(layer, gains) for layer in net.layers]

    def forward(self, z0, T, train=True, rng_key=(0,)):
        """The output for input spike counts ``z0`` (B, *input_shape) of a pass of T steps;
        ``rng_key`` draws the same dropout masks as ``net.forward`` with that key."""
        z = self.net._to_internal(z0)[None]                              # one step carrying the counts
        for index, layer in enumerate(self.layers):
            layer.reset(z.shape[1], train, rng=self.net.backend.rng(*rng_key, "dropout", index), T=T)
        for layer in self.layers:
            z = layer.forward(z)
        return z

    def backward(self, error):
        """The layers' backward in reverse; fills ``net.gradients()``; returns dE/dz0."""
        grad = error
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return self.net._to_external(grad)


__all__ = ["Linearised", "random_gains", "twin_layer", "frozen", "FrozenGain"]
