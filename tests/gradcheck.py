"""Centred finite differences and relative errors (cs231n's gradient_check, in float64)."""
from __future__ import annotations

import numpy as np


def relative_error(a, b):
    """max |a - b| / max(|a| + |b|, tiny), elementwise, as one number."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)))


def numerical_gradient(f, x, indices, eps=1e-6):
    """dF/dx at the given flat indices of ``x`` (modified in place and restored)."""
    flat = x.reshape(-1)
    grads = []
    for i in indices:
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        grads.append((plus - minus) / (2 * eps))
    return np.array(grads)


def sample_indices(rng, size, count):
    return rng.choice(size, size=min(count, size), replace=False)


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
