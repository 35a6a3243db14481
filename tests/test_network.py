"""The network as a whole: linearised whole-chain gradients, dropout over time, the CuPy-strict
array module, memory independent of T, and an end-to-end learning check."""
import numpy as np
import pytest

from minisnn import (LIF, SGD, Backend, Conv2d, Dropout, Flatten, Linear, Network, Output,
                     ResidualBlock, SpikingAvgPool, correct, mse_loss)
from minisnn.encoding import FrameInput
from minisnn.testing import strict_backend

from gradcheck import check_whole_chain


def conv_pool_stack(backend, dropout=0.0, width=4, in_ch=1, size=12, encoder=None):
    """conv - pool - conv - pool - fc - out, the LeNet5 shape in miniature."""
    flat = (size // 4) ** 2 * 2 * width
    layers = [Conv2d(in_ch, width, 5, 1, 2, name="conv1"), LIF(name="lif1"), SpikingAvgPool(name="pool1"),
              Conv2d(width, 2 * width, 3, 1, 1, name="conv2"), LIF(name="lif2"), SpikingAvgPool(name="pool2"),
              Flatten(name="flatten"), Linear(flat, 16, name="fc1"), LIF(name="lif3"),
              Dropout(dropout, name="drop"), Output(16, 3, name="out")]
    return Network(layers, (in_ch, size, size), backend, encoder=encoder, time_chunk=4)


def residual_stack(backend, encoder=None):
    layers = [Conv2d(2, 3, 3, 1, 1, name="conv1"), LIF(name="lif1"), SpikingAvgPool(name="pool1"),
              ResidualBlock(3, 4, 1, skip="conv", dropout=0.25, name="block1"),
              ResidualBlock(4, 4, 2, skip="subsample", name="block2"),
              ResidualBlock(4, 4, 1, skip="identity", name="block3"),
              Flatten(name="flatten"), Linear(4 * 2 * 2, 8, name="fc1"), LIF(name="lif2"),
              Output(8, 3, name="out")]
    return Network(layers, (2, 8, 8), backend, encoder=encoder, init_gain=1.0)


@pytest.mark.parametrize("make", [lambda b: conv_pool_stack(b, dropout=0.3), residual_stack],
                         ids=["conv-pool-conv-pool-fc-out", "residual"])
def test_whole_chain_finite_differences_on_the_linearised_network(make):
    errors = check_whole_chain(make(Backend("cpu", "float64")))
    print({k: f"{v:.1e}" for k, v in errors.items()}, "largest", f"{max(errors.values()):.2e}")
    assert max(errors.values()) <= 1e-6


def test_whole_chain_check_catches_a_wrong_backward():
    """The whole-chain test must fail when one layer's backward is wrong."""
    class WrongPool(SpikingAvgPool):
        def backward(self, grad):
            return super().backward(grad) * 1.01

    net = conv_pool_stack(Backend("cpu", "float64"))
    net.layers[5].__class__ = WrongPool
    assert max(check_whole_chain(net).values()) > 1e-4


def test_dropout_mask_is_held_over_time_and_redrawn_each_iteration():
    backend = Backend("cpu", "float64")
    drop = Dropout(0.5, name="drop")
    drop.build(backend, (40,))
    ones = np.ones((6, 3, 40))
    drop.reset(3, training=True, rng=backend.rng(0, "dropout", 1))
    first = drop.forward(ones.copy())
    assert np.all(first == first[0]), "the same units must be silent at every time step"
    assert set(np.unique(first)) == {0.0, 2.0}, "kept units are scaled by 1 / (1 - p)"
    assert not np.all(first[0, 0] == first[0, 1]), "one mask per sample"
    drop.reset(3, training=True, rng=backend.rng(1, "dropout", 1))
    assert not np.array_equal(drop.forward(ones.copy()), first), "a new mask next iteration"
    drop.reset(3, training=False, rng=backend.rng(2, "dropout", 1))
    np.testing.assert_array_equal(drop.forward(ones.copy()), ones)


def test_dropout_inside_a_network_silences_the_same_units_for_all_T():
    backend = Backend("cpu", "float64")
    net = conv_pool_stack(backend, dropout=0.5)
    x = np.random.default_rng(0).uniform(0, 1, (8, 1, 12, 12))
    net.forward(x, 40, train=True, rng_key=(0, 0))
    lif3, drop = net.layers[8], net.layers[9]
    silenced = (drop.mask == 0) & (lif3.spike_count > 0)
    assert silenced.any()
    # a silenced unit contributes nothing: the output layer's input count is 0 there
    assert np.all(net.layers[-1].input_count[drop.mask == 0] == 0)


def _train_step(net, optimizer, x, y, T, iteration):
    out = net.forward(x, T, train=True, rng_key=(0, iteration))
    loss, error = mse_loss(out, y)
    net.backward(error)
    optimizer.step(net.gradients())
    return loss, out


def test_engine_runs_under_a_cupy_strict_array_module():
    """Fails where code would break under CuPy: implicit device->host conversion, host/device mixing."""
    backend = strict_backend()
    net = residual_stack(backend)
    optimizer = SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = backend.to_device(np.random.default_rng(0).uniform(0, 1, (3, 2, 8, 8)).astype(np.float32))
    y = backend.to_device(np.array([0, 1, 2]))
    loss, out = _train_step(net, optimizer, x, y, 6, 0)
    assert isinstance(out, backend.xp.ndarray)
    float(loss), int(correct(out, y)), net.spike_rates()
    frames = backend.to_device(np.random.default_rng(1).integers(0, 2, (5, 3, 2, 8, 8)).astype(np.float32))
    residual_stack(backend, encoder=FrameInput()).forward(frames, train=False)
    lenet = conv_pool_stack(backend, dropout=0.2, in_ch=2, size=8)
    lenet.forward(x, 5, train=True)
    lenet.backward(lenet.forward(x, 5, train=True) * 0)


def test_strict_module_would_catch_a_host_array_in_the_engine():
    backend = strict_backend()
    net = conv_pool_stack(backend)
    with pytest.raises(TypeError):
        net.forward(np.zeros((2, 1, 12, 12), np.float32), 4)   # a host array given as a batch


def test_memory_for_the_backward_does_not_grow_with_T():
    """Everything the backward keeps is per neuron or per input unit: its size is independent of T."""
    def kept_bytes(T):
        net = conv_pool_stack(Backend("cpu", "float32"))
        net.forward(np.ones((2, 1, 12, 12), np.float32), T, train=True)
        arrays = []
        for layer in net.all_layers():
            arrays += [getattr(layer, "input_count", None), getattr(layer, "leaky_sum", None)]
            state = getattr(layer, "state", None)
            if state is not None:
                arrays += [state.potential, state.count, state.trace]
        return sum(a.nbytes for a in arrays if a is not None)

    assert kept_bytes(5) == kept_bytes(200)


def test_time_chunk_does_not_change_the_result():
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 12, 12))
    outs = []
    for chunk in (1, 3, 25):
        net = conv_pool_stack(Backend("cpu", "float64"), encoder=FrameInput())
        net.time_chunk = chunk
        frames = (np.random.default_rng(5).uniform(0, 1, (25, 2, 1, 12, 12)) < x).astype(np.float64)
        outs.append(net.forward(frames, train=True))
        net.backward(outs[-1])
        outs.append(net.gradients()["conv1.weight"])
    for a, b in zip(outs[:2], outs[2:4]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def bars(rng, n, size=12, noise=0.1):
    """Two classes: a vertical or a horizontal bright bar at a random position, plus noise."""
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, noise, (n, 1, size, size))
    pos = rng.integers(2, size - 2, n)
    for i in range(n):
        if labels[i]:
            images[i, 0, :, pos[i] - 1:pos[i] + 1] = 1.0
        else:
            images[i, 0, pos[i] - 1:pos[i] + 1, :] = 1.0
    return images.astype(np.float32), labels


def test_a_conv_snn_learns_a_two_class_image_task():
    rng = np.random.default_rng(0)
    train_x, train_y = bars(rng, 512)
    test_x, test_y = bars(rng, 256)
    backend = Backend("cpu", "float32")
    layers = [Conv2d(1, 4, 5, 1, 2, name="conv1"), LIF(name="lif1"), SpikingAvgPool(name="pool1"),
              Flatten(name="flatten"), Linear(4 * 36, 32, name="fc1"), LIF(name="lif2"),
              Output(32, 2, name="out")]
    net = Network(layers, (1, 12, 12), backend, seed=0)
    optimizer = SGD(net.parameters(), lr=0.005)   # the loss is summed over the batch (eq 3.8)
    T, step = 20, 0
    for epoch in range(3):
        order = rng.permutation(len(train_y))
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            _train_step(net, optimizer, train_x[idx], train_y[idx], T, step)
            step += 1
    hits = sum(int(correct(net.forward(test_x[i:i + 64], T, rng_key=(1, i)), test_y[i:i + 64]))
               for i in range(0, 256, 64))
    print(f"test accuracy after {step} steps: {hits / 256:.3f}")
    assert hits / 256 >= 0.95


def test_bad_input_gets_a_clear_error():
    net = conv_pool_stack(Backend("cpu", "float32"))
    good = np.zeros((2, 1, 12, 12), np.float32)
    with pytest.raises(ValueError, match=r"does not match \(batch, 1, 12, 12\)"):
        net.forward(np.zeros((2, 12, 12), np.float32), 5)
    with pytest.raises(ValueError, match="input_shape"):
        net.forward(np.zeros((2, 3, 12, 12), np.float32), 5)
    with pytest.raises(TypeError, match="float64.*float32"):
        net.forward(good.astype(np.float64), 5)
    with pytest.raises(ValueError, match="positive number of time steps"):
        net.forward(good, 0)
    with pytest.raises(ValueError, match="build it with encoder=FrameInput"):
        net.forward(np.zeros((3, 2, 1, 12, 12), np.float32), 3)
    frames_net = conv_pool_stack(Backend("cpu", "float32"), encoder=FrameInput())
    with pytest.raises(ValueError, match="T=4 but the given spike train has 3 steps"):
        frames_net.forward(np.zeros((3, 2, 1, 12, 12), np.float32), 4)
    with pytest.raises(ValueError, match=r"does not match \(T, batch, 1, 12, 12\)"):
        frames_net.forward(good, 3)
    with pytest.raises(RuntimeError, match="needs a forward"):
        conv_pool_stack(Backend("cpu", "float32")).backward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="missing.*conv1.weight"):
        net.load_parameters({})
    params = {k: np.zeros((1,), np.float32) for k in net.parameters()}
    with pytest.raises(ValueError, match="shape"):
        net.load_parameters(params)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        Backend("tpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        Backend("cpu", "float16")


def test_subnormal_weights_load_as_zero():
    """A checkpoint from a run that kept subnormal weights loads without them (they slow BLAS)."""
    net = conv_pool_stack(Backend("cpu", "float32"))
    params = {key: value.copy() for key, value in net.parameters().items()}
    key = next(iter(params))
    tiny = np.finfo(np.float32).tiny
    params[key].flat[:3] = [tiny / 16, -tiny / 2, 0.25]
    net.load_parameters(params)
    assert list(net.parameters()[key].flat[:3]) == [0, 0, np.float32(0.25)]
    rest = {k: v for k, v in net.parameters().items() if k != key}
    assert all(np.array_equal(v, params[k]) for k, v in rest.items())


def test_every_layer_returns_its_result_and_the_output_layer_keeps_T():
    """One contract: forward(x, rows) returns, backward(grad) takes only the gradient."""
    backend = Backend("cpu", "float64")
    out = Output(6, 3, leak=0.9, name="out")
    out.build(backend, (6,))
    out.init_parameters(backend.rng(0), 2.0)
    x = (np.random.default_rng(0).random((8, 2, 6)) < 0.5).astype(np.float64)
    out.reset(2, training=True, T=8)
    first = out.forward(x[:5])
    last = out.forward(x[5:])
    leaky = np.tensordot(0.9 ** np.arange(7, -1, -1.0), x, axes=(0, 0))
    np.testing.assert_allclose(last, leaky @ out.params["weight"].T / 8, rtol=1e-12)
    np.testing.assert_allclose(out.output(), last, rtol=1e-12)
    assert first.shape == last.shape == (2, 3)
    grad = out.backward(np.ones((2, 3)))
    np.testing.assert_allclose(out.grads["weight"], np.ones((3, 2)) / 8 @ x.sum(axis=0), rtol=1e-12)
    assert grad.shape == (2, 6)
    with pytest.raises(ValueError, match="reset needs T"):
        out.reset(2)


def test_observe_shows_every_layer_its_input_once_per_chunk_and_slice():
    backend = Backend("cpu", "float64")
    net = residual_stack(backend)
    net.workers = 2
    seen = {}

    def record(layer, x):
        seen.setdefault(layer.name, []).append(x.shape)

    x = np.random.default_rng(0).random((4, 2, 8, 8))
    with net.observe(record):
        net.forward(x, 12)
    names = {layer.name for layer in net.layers + net.all_layers()}
    assert set(seen) == names
    # 12 steps in chunks of 10 and 2, the batch of 4 in two slices of 2
    assert sorted(s[:2] for s in seen["block1.conv_b"]) == [(2, 2), (2, 2), (10, 2), (10, 2)]
    assert seen["conv1"][0][2:] == (8, 8, 2)                          # channels-last inside
    seen.clear()
    net.forward(x, 12)
    assert not seen and all(layer.observer is None for layer in net.all_layers())


def test_default_init_gain_is_1_with_residual_blocks_and_2_without():
    backend = Backend("cpu", "float32")
    assert residual_stack(backend).init_gain == 1.0
    assert conv_pool_stack(backend).init_gain == 2.0
    layers = [Flatten(name="f"), Output(4, 2, name="out")]
    assert Network(layers, (4,), backend, init_gain=3.0).init_gain == 3.0


def test_frame_input_passes_the_spike_train_through():
    backend = Backend("cpu", "float64")
    frames = (np.random.default_rng(2).random((7, 3, 1, 12, 12)) < 0.3).astype(np.float64)
    net = conv_pool_stack(backend, encoder=FrameInput())
    net.workers = 1                                   # whole chunks, in order
    seen = []
    with net.observe(lambda layer, x: seen.append(x.copy()) if layer.name == "conv1" else None):
        net.forward(frames, train=False)
    np.testing.assert_array_equal(np.concatenate(seen), frames.transpose(0, 1, 3, 4, 2))
    assert net.T == 7
