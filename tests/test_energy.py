"""Operation counts and the energy estimate (minisnn.energy) against hand counts."""
import numpy as np

from minisnn import energy
from minisnn.backend import Backend
from minisnn.encoding import DirectInput, FrameInput
from minisnn.layers import LIF, Conv2d, Flatten, Output
from minisnn.network import Network


def test_fanout_map_stride_and_padding_by_hand():
    # 6x6 input, 3x3 kernel, stride 2, padding 1: output centres at rows/cols 0, 2, 4; the
    # window of centre c covers c-1..c+1. Row 0: centre 0 only -> 1; row 1: centres 0, 2 -> 2;
    # row 2: centre 2 -> 1; row 3: centres 2, 4 -> 2; row 4: 1; row 5: centre 4 only -> 1.
    per_axis = np.array([1, 2, 1, 2, 1, 1])
    fan = energy.conv_fanout_map(np, (6, 6), 3, 2, 1)
    np.testing.assert_array_equal(fan, np.outer(per_axis, per_axis))
    # 5x5 kernel, stride 1, padding 2 on 28x28 (LeNet5 conv1): interior 25, corner 3 * 3 = 9
    fan = energy.conv_fanout_map(np, (28, 28), 5, 1, 2)
    assert fan[14, 14] == 25 and fan[0, 0] == 9 and fan[0, 14] == 15 and fan[1, 1] == 16


def _tiny_net():
    # conv 3x3, 1 -> 2 channels, stride 1, padding 1 on 4x4; LIF; flatten 32; output 3
    layers = [Conv2d(1, 2, 3, 1, 1, name="conv1"), LIF(1.0, 0.99, name="lif1"),
              Flatten(name="flatten"), Output(32, 3, name="output")]
    net = Network(layers, (1, 4, 4), backend=Backend("cpu", "float64"), encoder=FrameInput())
    net.layers[0].params["weight"][...] = 10.0     # any covered output neuron fires at once
    return net


def test_operation_counts_of_a_tiny_network_match_a_hand_count():
    net = _tiny_net()
    frames = np.zeros((2, 1, 1, 4, 4))              # (T, B, C, H, W)
    frames[0, 0, 0, 0, 0] = 1                       # corner pixel, t = 0
    frames[:, 0, 0, 1, 1] = 1                       # interior pixel, t = 0 and 1
    report = energy.measure(net, [(frames, np.array([0]))], T=2)
    rows = {r["name"]: r for r in report["layers"]}
    # conv1: corner pixel (0,0) is covered by output positions rows 0-1 x cols 0-1 = 4;
    # pixel (1,1) by rows 0-2 x cols 0-2 = 9. 3 input spikes: 1 * 4 + 2 * 9 = 22 output
    # positions, x 2 output channels = 44 SOPs.
    assert rows["conv1"]["sops"] == 44
    assert rows["conv1"]["input_rate"] == 3 / (16 * 2)
    # lif1: every covered neuron gets >= 10 > 1 and fires. t=0: union of the two windows =
    # the 3x3 block rows 0-2 x cols 0-2 = 9 positions x 2 channels = 18 spikes; t=1: pixel
    # (1,1) alone again covers those 9 positions -> 18 spikes. 36 spikes / (32 neurons * 2 steps).
    assert rows["lif1"]["spike_rate"] == 36 / 64
    # output: 36 input spikes x 3 output neurons = 108 SOPs
    assert rows["output"]["sops"] == 108
    # dense MACs: conv 4*4 positions * 2 out * 1 in * 9 taps = 288; output 32 * 3 = 96
    assert rows["conv1"]["macs"] == 288 and rows["output"]["macs"] == 96
    assert report["sops"] == 152 and report["macs"] == 384
    assert np.isclose(report["energy_snn_j"], 152 * 0.9e-12)
    assert np.isclose(report["energy_ann_j"], 384 * 4.6e-12)
    # first layer charged as MACs instead: (152 - 44) * 0.9 pJ + 288 * 4.6 pJ
    assert np.isclose(report["first_layer_macs_j"], 108 * 0.9e-12 + 288 * 4.6e-12)
    assert report["neuron_updates"] == 32 * 2


def test_direct_input_charges_the_first_layer_its_macs_once_not_its_analog_values_as_sops():
    net = _tiny_net()
    net.encoder = DirectInput()
    image = np.zeros((1, 1, 4, 4))
    image[0, 0, 1, 1] = 0.5                          # analog: no spikes reach conv1
    report = energy.measure(net, [(image, np.array([0]))], T=2)
    rows = {r["name"]: r for r in report["layers"]}
    assert report["input"] == "analog"
    assert rows["conv1"]["sops"] == 0 and rows["conv1"]["analog_macs"] == 288
    # conv1's current reaches the 3x3 block around (1,1) at every step: 18 spikes per step,
    # 36 over T=2, each to 3 output neurons
    assert rows["output"]["sops"] == 108 and report["sops"] == 108
    assert np.isclose(report["energy_snn_j"], 108 * 0.9e-12 + 288 * 4.6e-12)
    assert report["first_layer_macs_j"] == report["energy_snn_j"]
    assert "first-layer MACs" in energy.format_table(report)


def test_sops_equal_a_brute_force_count_over_synapses():
    """Stride 2, padding 1, odd size: sum over every (output position, tap) pair inside the
    image of the input spike count there, times C_out, must equal the fan-out formula."""
    rng = np.random.default_rng(0)
    h, w, c_in, c_out, k, s, p = 7, 5, 3, 4, 3, 2, 1
    conv = Conv2d(c_in, c_out, k, s, p, name="c")
    net = Network([conv, LIF(name="l"), Flatten(name="f"),
                   Output(conv.output_shape((h, w, c_in))[0] * conv.output_shape((h, w, c_in))[1] * c_out,
                          2, name="output")], (c_in, h, w), backend=Backend("cpu", "float64"),
                  encoder=FrameInput())
    frames = (rng.random((3, 2, c_in, h, w)) < 0.4).astype(np.float64)
    report = energy.measure(net, [(frames, np.array([0, 1]))], T=3)
    counts = frames.sum(axis=(0, 1))                # (C, H, W), summed over T and batch
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    brute = 0.0
    for oy in range(ho):
        for ox in range(wo):
            for dy in range(k):
                for dx in range(k):
                    y, x = oy * s - p + dy, ox * s - p + dx
                    if 0 <= y < h and 0 <= x < w:
                        brute += counts[:, y, x].sum() * c_out
    assert np.isclose(report["layers"][0]["sops"], brute / 2)      # per sample
    assert report["layers"][0]["macs"] == ho * wo * c_out * c_in * k * k


def test_lenet5_counts_and_energy_totals():
    from minisnn import models
    net = models.build("lenet5", (1, 28, 28))
    rng = np.random.default_rng(1)
    images = rng.random((4, 1, 28, 28)).astype(np.float32)
    report = energy.measure(net, [(images, np.zeros(4, np.int64))], T=5)
    # dense MACs: conv1 28*28*20*1*25 = 392,000; conv2 14*14*50*20*25 = 4,900,000;
    # fc1 2450*200 = 490,000; output 200*10 = 2,000
    assert report["macs"] == 392_000 + 4_900_000 + 490_000 + 2_000
    rates = report["spike_rate"]
    assert set(rates) == {"lif1", "pool1", "lif2", "pool2", "lif_fc1"}
    assert all(0 <= r <= 1 for r in rates.values())
    # the pool's input rate is the LIF rate below it; its ops are not in the SOP total
    rows = {r["name"]: r for r in report["layers"]}
    assert np.isclose(rows["pool1"]["input_rate"], rates["lif1"])
    assert np.isclose(report["sops"], sum(r["sops"] for r in report["layers"] if r["macs"]))


def test_the_scaled_skips_of_a_converted_resnet11_count_their_spikes_as_sops():
    """A converted ResNet11's parameter-free skips (identity, subsample) carry spikes times a
    constant: each such spike is one accumulate, as in the spiking ResNet11."""
    from minisnn import ann
    rng = np.random.default_rng(0)
    relu = ann.build("resnet11", (3, 8, 8), width=0.125, backend=Backend("cpu", "float64"), seed=0)
    images = rng.random((8, 3, 8, 8))
    snn, _ = ann.convert(relu, images, limit=8)
    report = energy.measure(snn, [(images, np.zeros(8, dtype=int))], T=20)
    skips = [r for r in report["layers"] if r["type"] == "ScaledSkip"]
    assert skips and all(r["sops"] > 0 for r in skips)
    for r in skips:     # fan-out 1 (identity) or 1 on the kept positions (subsample)
        assert r["sops"] <= r["input_spikes"]
