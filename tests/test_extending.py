"""The worked examples of docs/design.md, "Extending minisnn": a new neuron and a new layer, each
defined here, outside the package, in one place, and run through the whole framework."""
import math

import numpy as np
import pytest

import minisnn
from minisnn import Backend, Flatten, Linear, LIF, Network, Output, energy, models
from minisnn.checkpoint import capture, save
from minisnn.encoding import FrameInput
from minisnn.layers import ALL, Layer, Neurons, StepRecord
from minisnn.neurons import LIFNeuron, leaky_sum, lif_derivative, through_hard_reset
from minisnn.optim import SGD, MultiStepLR
from minisnn.testing import check_layer

from conftest import shared_data_dir


# -- a new neuron: LIF with an adaptive threshold ----------------------------------------------
class AdaptiveLIF(LIFNeuron):
    """LIF neurons whose threshold jumps by ``jump`` at each spike and relaxes back by ``decay``
    per step (spike-frequency adaptation):

        U_t = lambda U'_{t-1} + I_t,   o_t = [U_t > V_th + b_t],   U'_t = U_t (1 - o_t)
        b_{t+1} = decay b_t + jump o_t

    The backward keeps the LIF's a' (eq 3.22) at the resting threshold and its hard-reset
    recursion through time."""

    def __init__(self, threshold=1.0, leak=0.99, jump=0.5, decay=0.9):
        super().__init__(threshold, leak)
        self.jump, self.decay = jump, decay

    def state(self, xp, shape, dtype, training):
        state = super().state(xp, shape, dtype, training)
        state.excess = xp.zeros(shape, dtype)          # b_t: split over the CPU workers like the rest
        return state

    def fire(self, xp, currents, state):
        v, excess = state.potential, state.excess
        for t in range(currents.shape[0]):
            v *= self.leak
            v += currents[t]
            fired = v > self.threshold + excess
            v *= ~fired                                 # hard reset where it fired
            excess *= self.decay
            excess += fired * self.jump
            currents[t] = fired
        state.count += currents.sum(axis=0)             # a(T), eq 3.4
        if state.trace is not None:
            leaky_sum(xp, currents, state.trace, self.leak)   # f(T), for a' (eq 3.22)
        return currents

    def derivative(self, xp, state):
        return lif_derivative(xp, state.count, state.trace, self.threshold, self.leak)

    def through_time(self, xp, g, spikes):
        return through_hard_reset(xp, g, spikes)


# -- a new layer: one synapse per unit, I_t = w (.) s_t ----------------------------------------
class Scale(Layer):
    """A per-unit synaptic weight: unit i's current is w_i s_{t,i}. dE/dw = sum_b delta x(T),
    dE/dx(T) = w delta; through time, the same per step. Each input spike reaches one synapse."""

    def init_parameters(self, rng, gain):
        self.params["weight"] = (1 + 0.1 * rng.standard_normal(self.in_shape, dtype=self.xp.float32)).astype(self.dtype)

    def reset(self, batch_size, training=False, rng=None, T=None):
        super().reset(batch_size, training, rng, T)
        self.input_count = self.xp.zeros((batch_size,) + self.in_shape, self.dtype)
        self.input_steps = None

    def record_steps(self, T):
        self.input_steps = StepRecord(self.xp, T, self.batch_size, self.in_shape, self.dtype)

    def forward(self, x, rows=ALL):
        self.input_count[rows] += x.sum(axis=0)          # x(T) of this worker's rows only
        if self.input_steps is not None:
            self.input_steps.add(x, rows)
        return x * self.params["weight"]

    def backward(self, delta):
        self.grads["weight"] = (delta * self.input_count).sum(axis=0)
        return delta * self.params["weight"]

    def backward_through_time(self, grad_steps):
        inputs = self.recorded(self.input_steps)
        self.grads["weight"] = (grad_steps * inputs).sum(axis=(0, 1))
        return grad_steps * self.params["weight"]

    def synapse_fanout(self, xp):
        return xp.ones(self.in_shape)                    # one synapse per input

    def dense_macs(self):
        return math.prod(self.in_shape)

    def ann_twin(self):
        return self

    def linearised(self, gains):
        return self

    def convert_scales(self, conversion):
        conversion.weighted(self)


# -- the tests ---------------------------------------------------------------------------------
def _mnist_batch(count=32):
    """The first ``count`` MNIST training images (floats in [0, 1]) and labels, else a synthetic set."""
    try:
        images, labels = minisnn.data.load("mnist", "train", shared_data_dir() / "mnist")
        return images[:count].astype(np.float32) / 255, labels[:count].astype(np.int64)
    except minisnn.data.DatasetError:
        rng = np.random.default_rng(0)
        prototypes = rng.random((10, 1, 28, 28)) < 0.2
        labels = rng.integers(0, 10, count)
        return np.clip(prototypes[labels] + 0.2 * rng.random((count, 1, 28, 28)), 0, 1).astype(np.float32), labels


def test_adaptive_neuron_trains_saves_loads_and_is_analysed(tmp_path):
    net = models.build("lenet5", (1, 28, 28), 10, 0.25, seed=0, neuron=AdaptiveLIF)
    assert [type(layer.neuron).__name__ for layer in net.neuron_layers()] == \
        ["AdaptiveLIF", "IFNeuron", "AdaptiveLIF", "IFNeuron", "AdaptiveLIF"]
    images, labels = _mnist_batch()
    opt = SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(6):
        out = net.forward(images, 10, train=True, rng_key=(0, step))
        loss, error = minisnn.mse_loss(out, labels)
        net.backward(error)
        opt.step(net.gradients())
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses
    assert 0 < net.spike_rates()["lif1"] < 1

    config = {"model": "lenet5", "dataset": "mnist", "width": 0.25, "timesteps": 10, "seed": 0,
              "optimizer": "sgd", "dropout": 0.0, "neuron": f"{AdaptiveLIF.__module__}:AdaptiveLIF"}
    save(tmp_path / "checkpoint.h5", capture(net, opt, MultiStepLR(opt, []), config, 1, [], {}))
    model = minisnn.load(tmp_path / "checkpoint.h5", threads=1)
    assert isinstance(model.net.layers[1].neuron, AdaptiveLIF)
    ours = net.forward(images[:8], 10, rng_key=(1,))
    np.testing.assert_array_equal(model.net.forward(images[:8], 10, rng_key=(1,)), ours)
    report = energy.measure(model.net, [(images[:8], labels[:8])], 10)
    assert report["sops"] > 0 and report["spike_rate"]["lif1"] > 0


def test_adaptive_neuron_passes_check_layer_and_adapts():
    report = check_layer(Neurons(AdaptiveLIF(leak=0.95), name="adaptive"), (4, 4, 3), T=6, density=0.8)
    assert report["workers"] and report["through_time_workers"] and report["strict"]
    constant = np.full((20, 1, 1), 0.6, np.float32)             # 0.6 per step: LIF fires every 2nd step
    counts = {}
    for neuron in (LIFNeuron(1.0, 1.0), AdaptiveLIF(1.0, 1.0)):
        layer = Neurons(neuron, name="n")
        layer.build(Backend(), (1,))
        layer.reset(1, T=20)
        counts[type(neuron).__name__] = float(layer(constant.copy()).sum())
    assert counts["AdaptiveLIF"] < counts["LIFNeuron"] == 10


def test_custom_layer_check_layer_sops_and_training():
    report = check_layer(Scale(name="scale"), (5,), T=4)
    assert report["finite_differences"] < 1e-6 and report["through_time_one_step"]
    net = Network([Flatten(name="flatten"), Linear(12, 8, name="fc1"), LIF(name="lif1"),
                   Scale(name="scale"), LIF(name="lif2"), Output(8, 3, name="output")],
                  input_shape=(1, 3, 4), encoder=FrameInput(), seed=0, gradient="through-time")
    frames = (np.random.default_rng(0).random((5, 4, 1, 3, 4)) < 0.5).astype(np.float32)
    report = energy.measure(net, [(frames, np.arange(4) % 3)], 5)
    rows = {row["name"]: row for row in report["layers"]}
    assert rows["scale"]["sops"] == rows["scale"]["input_spikes"] > 0    # fan-out 1
    assert rows["scale"]["macs"] == 8
    out = net.forward(frames, train=True)
    net.backward(minisnn.mse_loss(out, np.arange(4) % 3)[1])
    assert np.any(net.gradients()["scale.weight"] != 0)


def test_check_layer_catches_a_layer_that_ignores_its_rows():
    class Leaky(Scale):
        """Keeps x(T) for the whole batch whatever rows it is given: the worker split shows."""

        def forward(self, x, rows=ALL):
            self.input_count[:x.shape[1]] += x.sum(axis=0)
            return x * self.params["weight"]

    with pytest.raises(AssertionError, match="1 and 3 workers"):
        check_layer(Leaky(name="leaky"), (5,), T=4)


def test_check_layer_catches_a_wrong_backward():
    class Wrong(Scale):
        def backward(self, delta):
            return 2 * super().backward(delta)

    with pytest.raises(AssertionError, match="finite differences"):
        check_layer(Wrong(name="wrong"), (5,), T=4)


def test_a_layer_that_lacks_a_fact_says_which():
    class Bare(Layer):
        def forward(self, x, rows=ALL):
            return x

    net = Network([Flatten(name="flatten"), Bare(name="bare"), Output(12, 3, name="output")],
                  input_shape=(1, 3, 4), encoder=FrameInput())
    with pytest.raises(NotImplementedError, match="Bare.*synapse_fanout"):
        energy.ActivityMeter(net)
    with pytest.raises(ValueError, match="Bare defines no backward_through_time"):
        net.gradient = "through-time"


def test_the_neuron_knob_reaches_residual_blocks_and_through_time():
    net = models.build("resnet7", (3, 16, 16), 10, 0.1, neuron=AdaptiveLIF, gradient="through-time")
    kinds = {layer.name: type(layer.neuron).__name__ for layer in net.neuron_layers()}
    assert kinds["block1.lif_a"] == kinds["block2.lif_b"] == kinds["lif_fc1"] == "AdaptiveLIF"
    assert kinds["pool1"] == "IFNeuron"
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    out = net.forward(x, 6, train=True)
    net.backward(minisnn.mse_loss(out, np.arange(4))[1])
    assert all(np.isfinite(g).all() for g in net.gradients().values())


def test_the_examples_in_design_md_run_as_written():
    from pathlib import Path
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text[text.index("## Extending minisnn"):], re.S)
    assert len(blocks) == 2
    namespace = {}
    for block in blocks:
        exec(block, namespace)
    assert type(namespace["net"].layers[1].neuron).__name__ == "AdaptiveLIF"
