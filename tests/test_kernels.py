"""The compiled kernels (minisnn.kernels, numba) equal their NumPy/SciPy references: the event
products within float rounding for every geometry the models use, the neuron loop bitwise; and
``auto`` takes one path per layer and chunk for the whole batch, whatever the worker count."""
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minisnn import events, models, neurons, ops
from minisnn.backend import Backend
from minisnn.loss import mse_loss

kernels = events.compiled_kernels(np)
needs_numba = pytest.mark.skipif(kernels is None, reason="the compiled kernels are off (numba not installed, or MINISNN_NUMBA=0): an "
                                 "optional fast path (pip install 'minisnn[fast]'); the references run instead")

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}     # max |kernel - dense| / max |dense|
VALUES = {"binary": (1.0,), "bipolar": (1.0, -1.0), "dropout-scaled": (1 / (1 - 0.2),)}


def _relative_error(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) if b.size else 0.0


def _inputs(rng, shape, density, kind, dtype):
    x = (rng.random(shape) < density) * rng.choice(VALUES[kind], shape)
    if kind == "dropout-scaled":              # a dropout mask zeroes some spikes, scales the rest
        x *= rng.random(shape) >= 0.2
    return x.astype(dtype)


@needs_numba
@settings(max_examples=60, deadline=None)
@given(geometry=st.sampled_from([(1, 1, 0), (1, 2, 0), (3, 1, 0), (3, 1, 1), (3, 2, 1), (3, 1, 2),
                                 (3, 2, 0), (5, 1, 2), (5, 2, 2), (5, 1, 0)]),
       size=st.tuples(st.integers(5, 11), st.integers(5, 11)), channels=st.tuples(st.integers(1, 9), st.integers(1, 12)),
       density=st.sampled_from([0.0, 0.03, 0.2, 1.0]), kind=st.sampled_from(sorted(VALUES)),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_compiled_conv_equals_the_dense_and_the_sparse_reference(geometry, size, channels, density, kind, dtype, seed):
    k, stride, padding = geometry
    rng = np.random.default_rng(seed)
    x = _inputs(rng, (3,) + size + (channels[0],), density, kind, dtype)
    weight = rng.standard_normal((channels[1], channels[0], k, k)).astype(dtype)
    dense = ops.conv2d(np, x, weight, stride, padding)
    compiled = events.conv2d(np, x, weight, stride, padding)
    assert compiled.shape == dense.shape and compiled.dtype == dtype
    assert _relative_error(compiled, dense) <= TOLERANCE[dtype]
    assert _relative_error(compiled, events.conv2d_sparse(np, x, weight, stride, padding)) <= TOLERANCE[dtype]
    if density == 0.0:
        assert not compiled.any()


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("density", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("kind", sorted(VALUES))
def test_compiled_linear_equals_the_dense_product(dtype, density, kind):
    rng = np.random.default_rng(7)
    x = _inputs(rng, (30, 200), density, kind, dtype)
    weight = rng.standard_normal((17, 200)).astype(dtype)
    compiled = events.linear(np, x, np.ascontiguousarray(weight.T))
    assert _relative_error(compiled, x @ weight.T) <= TOLERANCE[dtype]
    assert _relative_error(compiled, events.linear_sparse(np, x, weight.T)) <= TOLERANCE[dtype]


@needs_numba
def test_the_compiled_products_take_read_only_inputs():
    """An image batch can arrive as a read-only view (an ANN's first layer under --execution event)."""
    rng = np.random.default_rng(3)
    x = _inputs(rng, (2, 6, 6, 3), 0.3, "binary", np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    flat, weight_t = x.reshape(2, -1).copy(), rng.standard_normal((108, 5)).astype(np.float32)
    for array in (x, weight, flat, weight_t):
        array.flags.writeable = False
    assert _relative_error(events.conv2d(np, x, weight, 1, 1), ops.conv2d(np, x, weight, 1, 1)) <= 1e-5
    assert _relative_error(events.linear(np, flat, weight_t), flat @ weight_t) <= 1e-5


@needs_numba
def test_the_compiled_conv_sees_a_wrong_weight():
    rng = np.random.default_rng(2)
    x = _inputs(rng, (2, 6, 6, 3), 0.3, "binary", np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    flipped = weight[:, :, ::-1, :].copy()
    assert _relative_error(events.conv2d(np, x, flipped, 1, 1), ops.conv2d(np, x, weight, 1, 1)) > 1e-2


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold,leak", [(1.0, 0.99), (1.0, 1.0), (3.0, 1.0), (0.5, 0.9)])
def test_the_fused_neuron_loop_is_bitwise_the_reference(monkeypatch, dtype, threshold, leak):
    rng = np.random.default_rng(3)
    chunks = [(rng.standard_normal((4, 5, 6, 7)) * 0.8).astype(dtype) for _ in range(3)]
    results = []
    for fused in (False, True):
        monkeypatch.setattr(events, "USE_NUMBA", fused)
        state = neurons.NeuronState(np, (5, 6, 7), dtype, keep_trace=True)
        spikes = [neurons.integrate_and_fire(np, c.copy(), state, threshold, leak) for c in chunks]
        results.append((spikes, state))
    (spikes_ref, ref), (spikes_fused, fused) = results
    for a, b in zip(spikes_ref, spikes_fused):
        assert a.tobytes() == b.tobytes()
    for name in ("potential", "count", "trace"):
        assert getattr(ref, name).tobytes() == getattr(fused, name).tobytes(), name
    assert spikes_ref[0].any() and not spikes_ref[0].all()


@needs_numba
@pytest.mark.parametrize("name", models.MODELS)
def test_every_models_products_agree_on_its_real_inputs(name):
    """The inputs each weighted layer gets in a float32 forward (real spike maps, dropout-scaled
    ones among them), through the compiled kernel and the dense product."""
    shape = {"lenet5": (1, 28, 28)}.get(name, (3, 32, 32))
    net = models.build(name, shape, width=0.25, backend=Backend("cpu", "float32"), seed=1, time_chunk=3)
    net.workers = 1
    seen = []

    def keep(layer, x):
        if layer.__class__.__name__ in ("Conv2d", "Linear"):
            seen.append((layer, x.reshape((-1,) + layer.in_shape).copy()))

    x = np.random.default_rng(0).random((2,) + shape, dtype=np.float32)
    with net.observe(keep):
        net.forward(x, T=3, train=True)
    assert len(seen) >= 3
    for layer, inputs in seen:
        w = layer.params["weight"]
        if w.ndim == 4:
            pair = (events.conv2d(np, inputs, w, layer.stride, layer.padding),
                    ops.conv2d(np, inputs, w, layer.stride, layer.padding))
        else:
            pair = events.linear(np, inputs, np.ascontiguousarray(w.T)), inputs @ w.T
        assert _relative_error(*pair) <= 1e-5, layer.name


@pytest.mark.parametrize("name", ["vgg9", "resnet11"])
def test_auto_gives_the_same_bits_with_1_2_and_4_threads(name):
    """Full width, bright and dark images in one batch: the slices of 2 or 4 workers have very
    different densities, but the path of each layer and chunk is decided on the whole batch.
    (With numba's kernel or, without it, SciPy's.)"""
    shape = (3, 16, 16)
    rng = np.random.default_rng(0)
    x = rng.random((8,) + shape, dtype=np.float32)
    x[4:] *= 0.05                                                  # a dark second half
    labels = rng.integers(0, 10, 8)
    results = []
    for workers in (1, 2, 4):
        net = models.build(name, shape, backend=Backend("cpu", "float32"), seed=1, time_chunk=1)
        net.workers = workers
        out = net.forward(x, T=2, train=True, rng_key=(3, 1))
        net.backward(mse_loss(out, labels)[1])
        paths = {layer.name: layer.paths for layer in net.all_layers() if hasattr(layer, "paths")}
        results.append((out, net.gradients(), paths))
        net.close()
    taken = {event for p in results[0][2].values() for _, event in p}
    assert taken == {True, False}, "the inputs should send some layers down each path"
    for out, grads, paths in results[1:]:
        assert paths == results[0][2]
        assert out.tobytes() == results[0][0].tobytes()
        for key in grads:
            assert grads[key].tobytes() == results[0][1][key].tobytes(), key


@needs_numba
def test_the_kernel_in_use_is_named(monkeypatch):
    assert events.event_kernel(np) == "numba"
    assert "numba" in events.describe_kernel(np) and kernels.COMPILE_SECONDS > 0
    monkeypatch.setattr(events, "USE_NUMBA", False)
    assert events.event_kernel(np) == "scipy" and "MINISNN_NUMBA=0" in events.describe_kernel(np)


def test_without_numba_the_references_run(monkeypatch):
    monkeypatch.setattr(events, "_kernels", [])
    monkeypatch.setitem(sys.modules, "numba", None)                 # import numba fails
    monkeypatch.delitem(sys.modules, "minisnn.kernels", raising=False)
    monkeypatch.delattr(sys.modules["minisnn"], "kernels", raising=False)
    assert events.compiled_kernels(np) is None and events.event_kernel(np) == "scipy"
    assert "minisnn[fast]" in events.describe_kernel(np)
    rng = np.random.default_rng(1)
    x = _inputs(rng, (2, 6, 6, 3), 0.2, "bipolar", np.float64)
    weight = rng.standard_normal((4, 3, 3, 3))
    assert _relative_error(events.conv2d(np, x, weight, 1, 1), ops.conv2d(np, x, weight, 1, 1)) <= 1e-12
