"""The event-driven products equal the dense ones (up to float rounding), layer by layer and on
whole models, on NumPy and under CuPy's rules; ``auto`` picks a path by measured input density."""
import numpy as np
import pytest

from minisnn import events, ops
from minisnn.backend import Backend
from minisnn.models import build
from minisnn.testing import strict_backend

CONV_CASES = [  # (N, H, W, C_in, C_out, k, stride, padding, density)
    (4, 9, 9, 3, 5, 3, 1, 1, 0.2), (4, 9, 8, 3, 5, 3, 2, 1, 0.2), (3, 8, 8, 4, 6, 1, 2, 0, 0.3),
    (2, 28, 28, 1, 20, 5, 1, 2, 0.2), (5, 7, 7, 4, 3, 3, 1, 0, 0.5), (2, 6, 6, 2, 4, 3, 1, 2, 0.4),
    (3, 5, 5, 2, 3, 3, 1, 1, 0.0), (2, 4, 4, 3, 2, 3, 1, 1, 1.0),
]


def _spikes(rng, shape, rho, values=(1.0, -1.0, 1.25)):
    return (rng.random(shape) < rho) * rng.choice(values, shape)


@pytest.mark.parametrize("case", CONV_CASES)
def test_event_conv_equals_dense(case):
    n, h, w, c, co, k, s, p, rho = case
    rng = np.random.default_rng(1)
    x = _spikes(rng, (n, h, w, c), rho)
    weight = rng.standard_normal((co, c, k, k))
    dense = ops.conv2d(np, x, weight, s, p)
    event = events.conv2d(np, x, weight, s, p)
    assert event.shape == dense.shape and event.flags.c_contiguous
    np.testing.assert_allclose(event, dense, rtol=0, atol=1e-12)


def test_event_conv_detects_a_wrong_weight():
    rng = np.random.default_rng(2)
    x = _spikes(rng, (2, 6, 6, 3), 0.3)
    weight = rng.standard_normal((4, 3, 3, 3))
    flipped = weight[:, :, ::-1, :].copy()
    assert np.abs(events.conv2d(np, x, flipped, 1, 1) - ops.conv2d(np, x, weight, 1, 1)).max() > 1e-3


def test_event_linear_equals_dense():
    rng = np.random.default_rng(3)
    x = _spikes(rng, (40, 30), 0.1)
    weight = rng.standard_normal((7, 30))
    np.testing.assert_allclose(events.linear(np, x, weight.T), x @ weight.T, rtol=0, atol=1e-12)


def test_strict_rules_hold_on_the_event_path():
    be = strict_backend("float64")
    rng = np.random.default_rng(4)
    x_host = _spikes(rng, (3, 6, 6, 2), 0.3)
    w_host = rng.standard_normal((4, 2, 3, 3))
    x, w = be.to_device(x_host), be.to_device(w_host)
    out = events.conv2d(be.xp, x, w, 1, 1)
    assert isinstance(out, be.xp.ndarray)
    np.testing.assert_allclose(be.to_host(out), ops.conv2d(np, x_host, w_host, 1, 1), atol=1e-12)
    binary = be.to_device((x_host != 0) * 1.25)                # all events alike: the no-gather branch
    np.testing.assert_allclose(be.to_host(events.conv2d(be.xp, binary, w, 2, 1)),
                               ops.conv2d(np, (x_host != 0) * 1.25, w_host, 2, 1), atol=1e-12)
    lin = events.linear(be.xp, x.reshape(3, -1), be.to_device(rng.standard_normal((72, 5))))
    assert isinstance(lin, be.xp.ndarray)
    with pytest.raises(TypeError):
        events.linear(be.xp, x.reshape(3, -1), rng.standard_normal((72, 5)))   # a host operand


def test_auto_follows_the_measured_density():
    xp = np
    sparse_input = np.zeros((100, 100), np.float32)
    sparse_input[0, :5] = 1
    dense_input = np.ones((100, 100), np.float32)
    assert events.prefers_events("auto", xp, sparse_input, 256) == (True, 5e-4)
    assert events.prefers_events("auto", xp, dense_input, 256) == (False, 1.0)
    assert events.prefers_events("event", xp, dense_input, 256) == (True, None)
    assert events.prefers_events("dense", xp, sparse_input, 256) == (False, None)
    # a worker's slice decides by the whole batch's count: its own 5 of 10,000 inputs plus 9,995 elsewhere
    assert events.prefers_events("auto", xp, sparse_input, 256, lambda c: (c[0] + 9995, c[1] * 2)) == (False, 0.5)
    assert 0 < events.break_even(xp, 16) < events.break_even(xp, 256) < 1
    with pytest.raises(ValueError, match="execution"):
        events.check_execution("sparse")


@pytest.mark.parametrize("model,shape", [("lenet5", (1, 28, 28)), ("vgg9", (3, 32, 32)),
                                         ("resnet11", (3, 32, 32))])
def test_models_give_the_same_potentials_and_gradients_on_both_paths(model, shape):
    results = []
    for mode in ("dense", "event"):
        net = build(model, input_shape=shape, num_classes=10, width=0.125,
                    backend=Backend("cpu", "float64"), seed=3, execution=mode)
        assert {layer.execution for layer in net.all_layers() if hasattr(layer, "execution")} == {mode}
        x = np.random.default_rng(5).random((3,) + shape)
        out = net.forward(x, T=12, train=True, rng_key=(1, 2))
        net.backward(out - 0.1)
        results.append((out, net.gradients(), {n: l.spike_count.copy() for n, l in
                                               ((l.name, l) for l in net.neuron_layers())}))
    (out_d, grad_d, count_d), (out_e, grad_e, count_e) = results
    np.testing.assert_allclose(out_e, out_d, rtol=1e-9, atol=1e-12)
    for name in count_d:   # the same spikes everywhere: the potentials agree to rounding
        np.testing.assert_array_equal(count_e[name], count_d[name])
    for key in grad_d:
        np.testing.assert_allclose(grad_e[key], grad_d[key], rtol=1e-9, atol=1e-12)


def test_network_execution_is_validated_and_reaches_every_weighted_layer():
    net = build("lenet5", width=0.25)
    assert net.execution == "auto"
    net.execution = "event"
    weighted = [layer for layer in net.all_layers() if hasattr(layer, "execution")]
    assert len(weighted) == 3 and all(layer.execution == "event" for layer in weighted)
    with pytest.raises(ValueError, match="execution must be one of"):
        net.execution = "fast"


def test_density_is_exact_on_small_arrays_and_close_on_large_ones():
    rng = np.random.default_rng(6)
    small = (rng.random((10, 10)) < 0.3).astype(np.float32)
    assert events.density(np, small) == small.mean()
    large = (rng.random((64, 16, 16, 128)) < 0.04).astype(np.float32)
    assert abs(events.density(np, large) - large.mean()) < 0.002
