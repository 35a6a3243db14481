"""The authors' gradient through time (Network(gradient="through-time")): equal to tutorial 6's
hand-written BPTT on a fully connected net, equal to the aggregated gradient where it must be,
close to it on LeNet5 and ResNet11, independent of the worker count, CuPy-strict."""
import numpy as np
import pytest

from minisnn import (LIF, Backend, Conv2d, Dropout, Flatten, Linear, Network, Output, ResidualBlock,
                     SpikingAvgPool, models, mse_loss)
from minisnn import ann
from minisnn.encoding import FrameInput, poisson_encode
from minisnn.gradients import UnsupportedGradient
from minisnn.testing import hand_bptt as bptt, strict_backend

from test_train import error_line, fake_mnist, last_json, run_cli  # noqa: F401 (fake_mnist: a fixture)

B, T = 12, 20


def fc_net(backend, gradient="through-time"):
    return Network([Linear(784, 200, name="fc1"), LIF(1.0, 0.99, name="lif1"),
                    Linear(200, 100, name="fc2"), LIF(1.0, 0.99, name="lif2"),
                    Output(100, 10, 0.99, name="output")],
                   input_shape=(784,), backend=backend, encoder=FrameInput(), seed=0, gradient=gradient)


def fc_batch(backend):
    rng = np.random.default_rng(0)
    prototypes = (rng.random((10, 784)) < 0.2).astype(np.float64)
    labels = rng.integers(0, 10, B)
    images = np.clip(prototypes[labels] + 0.2 * rng.random((B, 784)), 0, 1)
    return poisson_encode(np, images, T, backend.rng(0, "batch")), labels


def gradients(net, x, labels, T=None, rng_key=(0,)):
    out = net.forward(x, T, train=True, rng_key=rng_key)
    _, e = mse_loss(out, labels)
    net.backward(e)
    return {k: net.backend.to_host(v).copy() for k, v in net.gradients().items()}


def test_equals_tutorial_6_hand_written_bptt():
    backend = Backend("cpu", "float64")
    net = fc_net(backend)
    spikes, labels = fc_batch(backend)
    ours = gradients(net, spikes, labels)
    theirs, out, (o1s, o2s) = bptt(net, spikes, labels)
    assert np.array_equal(o2s.sum(0), net.layers[3].spike_count), "same forward"
    assert o1s.any() and o2s.any()
    for name, expected in theirs.items():
        scale = np.abs(expected).max()
        assert scale > 0, name
        np.testing.assert_allclose(ours[name], expected, rtol=0, atol=1e-10 * scale, err_msg=name)


def test_output_layer_gradient_is_the_same_in_both_modes_and_top_layer_is_delta_x_up_to_last_spike():
    backend = Backend("cpu", "float64")
    net = fc_net(backend, "aggregated")
    spikes, labels = fc_batch(backend)
    aggregated = gradients(net, spikes, labels)
    net.gradient = "through-time"
    through = gradients(net, spikes, labels)
    np.testing.assert_array_equal(through["output.weight"], aggregated["output.weight"])
    assert not np.allclose(through["fc2.weight"], aggregated["fc2.weight"])
    # top hidden layer: dE/dW2 = delta^2 x^2(last spike of each neuron)^T (tutorial 6)
    _, e = mse_loss(net.layers[-1].output(), labels)
    delta2 = ((e / T) @ net.parameters()["output.weight"]) * net.layers[3].derivative()
    o1s, o2s = net.layers[1].output_steps.steps, net.layers[3].output_steps.steps
    last = np.max(np.where(o2s, np.arange(1, T + 1)[:, None, None], 0), axis=0)    # 0: never fired
    cum_in = np.cumsum(o1s, axis=0)
    x_upto = np.where(last[..., None] > 0, cum_in[np.maximum(last - 1, 0), np.arange(B)[:, None]], 0)
    np.testing.assert_allclose(through["fc2.weight"], np.einsum("bj,bji->ji", delta2, x_upto),
                               rtol=0, atol=1e-12)


def compare_modes(net, x, labels, T):
    net.gradient = "aggregated"
    aggregated = gradients(net, x, labels, T)
    net.gradient = "through-time"
    through = gradients(net, x, labels, T)
    figures = {}
    for name in aggregated:
        a, t = aggregated[name], through[name]
        assert np.all(np.isfinite(t)), name
        figures[name] = (float(np.sum(a * t) / (np.linalg.norm(a) * np.linalg.norm(t))),
                         float(np.linalg.norm(a) / np.linalg.norm(t)))
    print({k: f"cos {c:.3f} ratio {r:.3f}" for k, (c, r) in figures.items()})
    return figures


# Measured at initialisation, T = 20, a few draws: LeNet5 cosines 0.81-0.997 (fc1 0.96-0.98), norm
# ratios 1.3-2.1; ResNet11's fc1 0.91-0.94 (ratio 1.2-1.3), its convolutions 0.47-0.93 (ratios
# 1.6-3.7): the credit the gradient through time denies after each neuron's last spike compounds
# over ten sparse layers.
@pytest.mark.parametrize("model, width, shape, min_cosine",
                         [("lenet5", 0.25, (1, 28, 28), 0.7), ("resnet11", 0.125, (3, 32, 32), 0.35)])
def test_models_in_both_modes_point_the_same_way(model, width, shape, min_cosine):
    net = models.build(model, shape, 10, width, Backend("cpu", "float64"), seed=2, encoder=FrameInput())
    rng = np.random.default_rng(1)
    spikes = (rng.random((T, 8) + shape) < rng.uniform(0, 1, (8,) + shape)).astype(np.float64)
    figures = compare_modes(net, spikes, np.arange(8) % 10, None)
    assert figures["fc1.weight"][0] > 0.85
    for name, (cos, ratio) in figures.items():
        assert cos > min_cosine, (name, cos)
        if name == "output.weight":
            assert cos > 1 - 1e-12 and abs(ratio - 1) < 1e-12
        else:
            assert ratio >= 1, (name, ratio)


def all_layer_types(backend, pool_threshold=0.75):
    """Every layer type: conv, LIF, pool, residual blocks (conv / subsample / identity skips),
    dropout, flatten, fc, output."""
    layers = [Conv2d(2, 3, 3, 1, 1, name="conv1"), LIF(name="lif1"), SpikingAvgPool(pool_threshold, name="pool1"),
              ResidualBlock(3, 4, 1, skip="conv", dropout=0.25, name="block1"),
              ResidualBlock(4, 4, 2, skip="subsample", name="block2"),
              ResidualBlock(4, 4, 1, skip="identity", name="block3"),
              Flatten(name="flatten"), Linear(4 * 2 * 2, 8, name="fc1"), LIF(name="lif2"),
              Dropout(0.2, name="drop"), Output(8, 3, name="out")]
    net = Network(layers, (2, 8, 8), backend, init_gain=1.0, time_chunk=3, gradient="through-time")
    for weight in net.parameters().values():
        weight *= 3                                      # strong weights: every layer fires early
    return net


def test_worker_count_does_not_change_the_gradient_through_time():
    x = np.random.default_rng(2).uniform(0, 1, (7, 2, 8, 8))
    labels = np.arange(7) % 3
    results = []
    for workers in (1, 3):
        net = all_layer_types(Backend("cpu", "float64"))
        net.workers = workers
        results.append(gradients(net, x, labels, 11))
        net.close()
    for name in results[0]:
        assert np.any(results[0][name] != 0), name
        np.testing.assert_array_equal(results[0][name], results[1][name], err_msg=name)


def test_strict_backend_gives_the_numpy_gradient_through_time():
    x = np.random.default_rng(3).uniform(0, 1, (4, 2, 8, 8))
    labels = np.arange(4) % 3
    host = gradients(all_layer_types(Backend("cpu", "float64")), x, labels, 9)
    strict = strict_backend("float64")
    net = all_layer_types(strict)
    device = gradients(net, strict.to_device(x), strict.to_device(labels), 9)
    grad_in = net.backward(mse_loss(net.layers[-1].output(), strict.to_device(labels))[1])
    assert grad_in.shape == (9, 4, 2, 8, 8), "dE/d(input spikes at each step), channels first"
    for name in host:
        np.testing.assert_allclose(device[name], host[name], rtol=1e-12, atol=1e-14, err_msg=name)


def test_conv_and_fc_through_time_with_a_constant_gradient_are_the_aggregated_ones():
    """sum_t g s_t = g x(T): with dE/dI_t the same at every step the two backwards agree."""
    backend = Backend("cpu", "float64")
    rng = np.random.default_rng(4)
    for layer, shape in ((Conv2d(3, 4, 3, 2, 1, name="conv"), (7, 7, 3)), (Linear(6, 5, name="fc"), (6,))):
        out_shape = layer.build(backend, shape)
        layer.init_parameters(backend.rng(0, "init"), 2.0)
        layer.reset(3, training=True, T=6)
        layer.record_steps(6)
        for chunk in np.split(rng.random((6, 3) + shape) < 0.3, [2, 5]):
            layer(chunk.astype(np.float64))
        delta = rng.standard_normal((3,) + out_shape)
        per_step = layer.backward_through_time(np.broadcast_to(delta, (6,) + delta.shape))
        through = layer.grads["weight"]
        np.testing.assert_allclose(per_step.sum(axis=0) / 6, layer.backward(delta), atol=1e-12)
        np.testing.assert_allclose(through, layer.grads["weight"], atol=1e-12)


def test_backward_through_time_needs_a_recorded_forward():
    net = fc_net(Backend("cpu", "float64"), "aggregated")
    spikes, labels = fc_batch(net.backend)
    out = net.forward(spikes, train=True)
    net.gradient = "through-time"
    with pytest.raises(RuntimeError, match="gradient='through-time'"):
        net.backward(mse_loss(out, labels)[1])


def test_invalid_gradient_name_names_the_choices():
    with pytest.raises(ValueError, match="'aggregated', 'through-time'"):
        fc_net(Backend("cpu", "float64"), "bptt")
    net = fc_net(Backend("cpu", "float64"))
    with pytest.raises(ValueError, match="'aggregated', 'through-time'"):
        net.gradient = "per-step"
    with pytest.raises(ValueError, match="through-time"):
        models.build("lenet5", width=0.1, gradient="exact")


@pytest.mark.parametrize("make", [lambda b: all_layer_types(b, pool_threshold=0.2),
                                  lambda b: models.build("lenet5", (1, 28, 28), 10, 0.25, b, seed=2, pool_threshold=0.2)],
                         ids=["all-layer-types", "lenet5"])
def test_one_time_step_gives_the_aggregated_gradient(make):
    """At T = 1 a neuron's a' is nonzero exactly where o_1 = 1 and x(T) = s_1: the two backwards are
    the same map, which checks every layer's per-step plumbing against the aggregated one (pooling
    thresholds low enough that one step fires them)."""
    net = make(Backend("cpu", "float64"))
    net.encoder = FrameInput()
    if net.name == "lenet5":
        for weight in net.parameters().values():
            weight *= 3                                  # strong weights and input: deep layers fire at once
    frame = 3.0 * (np.random.default_rng(5).random((1, 6) + net.input_shape) < 0.5)
    labels = np.arange(6) % 3
    net.gradient = "aggregated"
    aggregated = gradients(net, frame, labels)
    net.gradient = "through-time"
    through = gradients(net, frame, labels)
    for name, expected in aggregated.items():
        assert np.any(expected != 0), name
        np.testing.assert_allclose(through[name], expected, rtol=1e-12, atol=1e-14 * np.abs(expected).max(),
                                   err_msg=name)


def test_cli_trains_with_the_gradient_through_time(fake_mnist, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(["--data-dir", fake_mnist, "--width", 0.25, "--limit-train", 64, "--limit-test", 32,
                    "--epochs", 1, "-T", 10, "--batch-size", 16, "--gradient", "through-time", "--quiet",
                    "--out", out], tmp_path)
    assert proc.returncode == 0, proc.stderr
    from minisnn import checkpoint
    assert checkpoint.load(out / "checkpoint.h5").config["gradient"] == "through-time"
    proc = run_cli(["--gradient", "bptt"], tmp_path)
    assert proc.returncode == 2 and "through-time" in proc.stderr


def test_gradient_knob_defaults_for_old_checkpoints_and_cannot_change_on_resume():
    from minisnn import config
    stored = config.resolve({"model": "lenet5"})
    old = {k: v for k, v in stored.items() if k != "gradient"}
    assert config.upgrade_stored(old)["gradient"] == "aggregated"
    with pytest.raises(config.ConfigError, match="--gradient"):
        config.resolve_stored({"gradient": "through-time"}, old, "resume")


def test_an_ann_through_time_is_refused_not_replaced(fake_mnist, tmp_path):
    """ReLU units have no time steps: the network refuses the gradient, and the command exits 2 with
    that reason before it writes anything (it used to train with the aggregated gradient)."""
    with pytest.raises(UnsupportedGradient, match="ReLU units.*lif1"):
        ann.build("lenet5", width=0.25, gradient="through-time")
    out = tmp_path / "run"
    proc = run_cli(["--data-dir", fake_mnist, "--network", "ann", "--gradient", "through-time", "--width", 0.25,
                    "--limit-train", 32, "--epochs", 1, "--quiet", "--out", out], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ReLU units" in error_line(proc) and not out.exists()
