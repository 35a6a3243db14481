"""Checks any layer can be put through, built-in or your own (``minisnn.testing.check_layer``),
and the hand-written reference of the gradient through time.

:func:`check_layer` runs four checks on a hidden layer (a layer between the input and the output
layer), each of which a layer written without the conventions of :mod:`minisnn.layers` fails:

1. **finite differences**: its ``backward`` against centred differences of its linearised twin
   (``layer.linearised``, neurons frozen at random gains; float64), for the input and every
   parameter (docs/algorithm.md, check 1);
2. **workers**: forward, ``backward`` and parameter gradients bitwise the same with the batch
   on 1 and on 3 CPU workers (a forward that does not keep to its ``rows`` fails);
3. **through time** (unless the layer refuses that gradient): the same with
   ``backward_through_time``, and at T = 1 it equals ``backward`` (one step: a' is nonzero exactly
   where the neuron fired, x(T) = s_1);
4. **strict**: the same results under :func:`minisnn.testing.strict_backend` (CuPy's rules) as
   under NumPy, so the layer will run on a GPU.

:func:`hand_bptt` is the authors' per-step gradient of a two-hidden-layer fc network written out
by hand, the reference ``Network(gradient="through-time")`` is tested against (tutorial 6).
"""
from __future__ import annotations

import copy

import numpy as np

from .backend import Backend
from .layers import Neurons
from .neurons import lif_derivative
from .runner import Runner


# -- finite differences (cs231n's gradient_check, in float64) ---------------------------------
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


def _neuron_layers(layer):
    return [sub for sub in layer.sublayers() if isinstance(sub, Neurons)]


def finite_difference_error(layer, in_shape, batch=3, samples=8, seed=0):
    """Largest relative error of the linearised twin's dphi/dx and dphi/dW, phi = <r, twin(x)>."""
    backend = Backend("cpu", "float64")
    rng = np.random.default_rng(seed)
    layer.build(backend, in_shape)
    layer.init_parameters(backend.rng(seed, "init"), 2.0)
    gains = {sub.name: rng.uniform(0.5, 1.5, (batch,) + sub.out_shape) for sub in _neuron_layers(layer)}
    twin = layer.linearised(gains)
    x = rng.uniform(0, 2, (batch,) + tuple(in_shape))
    r = rng.standard_normal((batch,) + layer.out_shape)
    return max(adjoint_errors(twin, layer, x, r, lambda: backend.rng(seed, "dropout"), rng, samples))


def adjoint_errors(twin, layer, x, r, dropout_rng, rng, samples):
    """Relative errors of ``twin.backward(r)`` (dphi/dx) and of the gradients it stores in
    ``layer``'s parameters (dphi/dW), phi = <r, twin(x)>, against centred differences at
    ``samples`` entries of x and of each parameter drawn with ``rng``; ``dropout_rng()`` gives
    the same dropout masks at every evaluation."""
    batch = x.shape[0]

    def phi():
        twin.reset(batch, training=True, rng=dropout_rng(), T=1)
        return float(np.sum(r * twin.forward(x[None].copy())[0]))

    phi()
    grad_x = twin.backward(r)
    errors = [relative_error(grad_x.reshape(-1)[i], numerical_gradient(phi, x, [i])[0])
              for i in sample_indices(rng, x.size, samples)]
    for sub in layer.sublayers():
        for key, weight in sub.params.items():
            idx = sample_indices(rng, weight.size, samples)
            errors.append(relative_error(sub.grads[key].reshape(-1)[idx], numerical_gradient(phi, weight, idx)))
    return errors


# -- running a layer as the network does ------------------------------------------------------
def run_layer(layer, backend, spikes, workers=1, chunk=2, through_time=False, seed=0):
    """Build ``layer`` on ``backend``, run the host spike train ``spikes`` (T, B, *in_shape)
    through it chunk by chunk with the batch split over ``workers`` CPU threads (as
    :class:`~minisnn.network.Network` does), then its backward on a fixed random gradient.
    Returns {name: host array}: the output, dE/d input and every parameter gradient."""
    steps, batch = spikes.shape[:2]
    xp, to_host = backend.xp, backend.to_host
    layer.build(backend, spikes.shape[2:])
    layer.init_parameters(backend.rng(seed, "init"), 2.0)
    runner = Runner(workers)
    for sub in layer.sublayers():
        if sub.event_products:
            sub.batch_sum = runner.batch_sum
    layer.reset(batch, training=True, rng=backend.rng(seed, "dropout"), T=steps)
    if through_time:
        for sub in layer.sublayers():
            sub.record_steps(steps)
    out = xp.zeros((steps, batch) + layer.out_shape, backend.dtype)
    x = backend.to_device(spikes.astype(backend.dtype))

    def forward(piece, rows, start):
        out[start:start + piece.shape[0], rows] = layer(piece.copy(), rows)

    with runner, runner.compute():
        for start in range(0, steps, chunk):
            runner.submit(lambda piece, rows, start=start: forward(piece, rows, start), x[start:start + chunk])
        runner.wait()
    rng = np.random.default_rng(seed + 1)
    grad_shape = ((steps,) if through_time else ()) + (batch,) + layer.out_shape
    grad = backend.to_device(rng.standard_normal(grad_shape).astype(backend.dtype))
    grad_in = layer.backward_through_time(grad) if through_time else layer.backward(grad)
    result = {"output": to_host(out), "grad_input": to_host(grad_in)}
    for sub in layer.sublayers():
        result.update({f"{sub.name}.{key}": to_host(value) for key, value in sub.grads.items()})
    return result


def _refusal(layer):
    return next((why for why in (sub.through_time_refusal() for sub in layer.sublayers()) if why), None)


def check_layer(layer, in_shape, *, batch=6, T=5, density=0.3, tolerance=1e-6, seed=0):
    """Put ``layer`` (unbuilt; it is copied for every run) through the four checks of the module
    docstring on inputs of per-sample shape ``in_shape`` (channels last: (H, W, C) or
    (features,)), ``batch`` samples (at least 6, for 3 workers of 2) and ``T`` steps of spikes
    with probability ``density``. Raises AssertionError naming the check that failed; returns
    {check: result}: the largest finite-difference error, and True for each bitwise check."""
    if batch < 6:
        raise ValueError(f"check_layer needs batch >= 6 (3 workers of 2 samples), got {batch}")
    in_shape = tuple(in_shape)
    spikes = (np.random.default_rng(seed).random((T, batch) + in_shape) < density).astype(np.float64)
    fresh = lambda: copy.deepcopy(layer)                                         # noqa: E731
    report = {"finite_differences": finite_difference_error(fresh(), in_shape, seed=seed)}
    if not report["finite_differences"] <= tolerance:
        raise AssertionError(f"{layer!r}: backward differs from finite differences of its linearised twin "
                             f"(relative error {report['finite_differences']:.2e} > {tolerance:.0e})")
    gradients = [False] if _refusal(layer) else [False, True]
    for through_time in gradients:
        name = "through_time_workers" if through_time else "workers"
        one, three = (run_layer(fresh(), Backend("cpu", "float32"), spikes, workers, through_time=through_time,
                                seed=seed) for workers in (1, 3))
        differ = [key for key in one if not np.array_equal(one[key], three[key])]
        if differ:
            raise AssertionError(f"{layer!r}: {', '.join(differ)} differ between 1 and 3 workers"
                                 + (" through time" if through_time else "")
                                 + ": does forward update only the given rows of its state (state[rows])?")
        report[name] = True
    if len(gradients) == 2:
        steps = [run_layer(fresh(), Backend("cpu", "float64"), spikes[:1], through_time=through_time, seed=seed)
                 for through_time in (False, True)]
        close = all(np.allclose(steps[1][key].reshape(steps[0][key].shape), steps[0][key], rtol=1e-12, atol=1e-14)
                    for key in steps[0] if key != "output")
        if not close:
            raise AssertionError(f"{layer!r}: at T = 1 backward_through_time differs from backward")
        report["through_time_one_step"] = True
    from .testing import strict_backend

    host = run_layer(fresh(), Backend("cpu", "float64"), spikes, seed=seed)
    strict = run_layer(fresh(), strict_backend("float64"), spikes, seed=seed)
    differ = [key for key in host if not np.allclose(host[key], strict[key], rtol=1e-12, atol=1e-14)]
    if differ:
        raise AssertionError(f"{layer!r}: {', '.join(differ)} differ under CuPy's rules (strict_backend)")
    report["strict"] = True
    return report


# -- the gradient through time by hand ---------------------------------------------------------
def hand_bptt(net, spikes, labels, leak=0.99, threshold=1.0):
    """The authors' per-time-step gradient, by hand, of the fc network fc1 (784 -> 200) - LIF -
    fc2 (200 -> 100) - LIF - output (10) on a spike train (T, B, 784) (float64 NumPy).
    Returns ({name: dE/dW}, the output, (o1 spikes, o2 spikes) at every step)."""
    from .loss import mse_loss

    W1, W2, WL = (net.parameters()[k] for k in ("fc1.weight", "fc2.weight", "output.weight"))
    steps, batch = spikes.shape[:2]
    U1, U2, UL = np.zeros((batch, 200)), np.zeros((batch, 100)), np.zeros((batch, 10))
    o1s, o2s = np.zeros((steps, batch, 200)), np.zeros((steps, batch, 100))
    for t in range(steps):                                   # forward, keeping every step
        U1 = leak * U1 + spikes[t] @ W1.T
        o1s[t] = U1 > threshold
        U1 *= 1 - o1s[t]
        U2 = leak * U2 + o1s[t] @ W2.T
        o2s[t] = U2 > threshold
        U2 *= 1 - o2s[t]
        UL = leak * UL + o2s[t] @ WL.T
    out = UL / steps
    _, e = mse_loss(out, labels)

    def multiplier(o):                                       # grad_cal / V_th: from counts and leaky traces
        trace = np.tensordot(leak ** np.arange(steps - 1, -1, -1.0), o, axes=(0, 0))
        return lif_derivative(np, o.sum(axis=0), trace, threshold, leak)
    m1, m2 = multiplier(o1s), multiplier(o2s)
    grads = {"output.weight": (e / steps).T @ o2s.sum(axis=0)}
    g_o2 = (e / steps) @ WL                                  # dE/d o2_t, the same at every t
    g1, g2 = np.zeros((batch, 200)), np.zeros((batch, 100))
    dW1, dW2 = np.zeros_like(W1), np.zeros_like(W2)
    for t in reversed(range(steps)):                         # backward through time
        g2 = o2s[t] * m2 * g_o2 + (1 - o2s[t]) * g2
        dW2 += g2.T @ o1s[t]
        g_o1 = g2 @ W2
        g1 = o1s[t] * m1 * g_o1 + (1 - o1s[t]) * g1
        dW1 += g1.T @ spikes[t]
    grads.update({"fc1.weight": dW1, "fc2.weight": dW2})
    return grads, out, (o1s, o2s)


__all__ = ["check_layer", "run_layer", "finite_difference_error", "adjoint_errors", "hand_bptt", "numerical_gradient",
           "relative_error", "sample_indices"]
