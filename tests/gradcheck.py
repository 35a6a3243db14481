"""Centred finite differences and relative errors (cs231n's gradient_check, in float64)."""
from __future__ import annotations

import numpy as np

from minisnn.layercheck import numerical_gradient, relative_error, sample_indices  # noqa: F401


def check_whole_chain(net, batch=2, T=7, samples=5, seed=0):
    """Finite differences of the linearised network's loss against its backward
    (:mod:`minisnn.linearised`: the network's own layers, every neuron a random frozen gain).

    Returns the largest relative error over sampled entries of every parameter and the input.
    """
    from minisnn.linearised import Linearised, random_gains
    from minisnn.loss import mse_loss

    rng = np.random.default_rng(seed)
    twin = Linearised(net, random_gains(net, batch, rng))
    z0 = rng.uniform(0, 3, (batch,) + net.input_shape)
    labels = rng.integers(0, net.num_classes, batch)

    def loss():
        out = twin.forward(z0, T, train=True, rng_key=(seed,))
        return float(mse_loss(out, labels)[0])

    out = twin.forward(z0, T, train=True, rng_key=(seed,))
    grad_input = twin.backward(mse_loss(out, labels)[1])
    analytic = {key: value.copy() for key, value in net.gradients().items()}
    errors = {}
    for key, weight in net.parameters().items():
        idx = sample_indices(rng, weight.size, samples)
        errors[key] = relative_error(analytic[key].reshape(-1)[idx], numerical_gradient(loss, weight, idx))
    idx = sample_indices(rng, z0.size, samples)
    errors["input"] = relative_error(np.asarray(grad_input).reshape(-1)[idx], numerical_gradient(loss, z0, idx))
    return errors
