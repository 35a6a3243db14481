"""Tests of minisnn.models: the six networks of tables 4.2-4.4.

* every layer's output shape for every model on 1x28x28, 2x34x34 and 3x32x32 (written by hand
  from the tables below, at width 1);
* total parameter counts at width 1 against hand arithmetic from the tables;
* a whole-chain finite-difference check of every model (linearised network, float64, reduced
  width, training mode so the dropout masks are on the path);
* every hidden spiking layer fires at initialisation under Poisson input at the thesis' T
  (batch 2; full width for LeNet5 and VGG7, width 0.25 for the four larger models by default,
  full width for them with MINISNN_SLOW=1).
"""
import math
import os
import time

import numpy as np
import pytest

from minisnn import models
from minisnn.backend import Backend
from minisnn.config import thesis_preset
from minisnn.layers import Dropout, Identity
from minisnn.linearised import Linearised, random_gains
from minisnn.loss import mse_loss

from gradcheck import numerical_gradient

MNIST, NMNIST, COLOUR = (1, 28, 28), (2, 34, 34), (3, 32, 32)
INPUTS = {"1x28x28": MNIST, "2x34x34": NMNIST, "3x32x32": COLOUR}


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------

def test_names_defaults_and_unknown_model():
    assert models.MODELS == ("lenet5", "vgg7", "vgg9", "resnet7", "resnet9", "resnet11")
    assert [models.default_dataset(n) for n in models.MODELS] == [
        "mnist", "svhn", "cifar10", "svhn", "cifar10", "cifar10"]
    with pytest.raises(ValueError, match="lenet5, vgg7, vgg9, resnet7, resnet9, resnet11"):
        models.build("vgg16")
    with pytest.raises(ValueError, match="resnet11_skip"):
        models.build("resnet11", resnet11_skip="pool")


def test_build_options_and_defaults():
    net = models.build("vgg9", COLOUR, width=0.125)
    assert net.name == "vgg9" and net.init_gain == 2.0 and net.num_classes == 10
    assert models.build("resnet7", COLOUR, width=0.125).init_gain == 1.0      # k = 1, residual
    lifs = [l for l in net.neuron_layers() if type(l).__name__ == "LIF"]
    pools = [l for l in net.neuron_layers() if type(l).__name__ == "SpikingAvgPool"]
    assert {(l.threshold, l.leak) for l in lifs} == {(1.0, 0.99)}
    assert {l.threshold for l in pools} == {0.75}
    assert net.layers[-1].leak == 0.99
    # dropout: VGG9 0.2 after its 7 conv LIFs and the fc LIF, nowhere after a pool
    drops = [l for l in net.all_layers() if isinstance(l, Dropout)]
    assert [d.p for d in drops] == [0.2] * 8
    order = net.all_layers()
    for d in drops:
        assert type(order[order.index(d) - 1]).__name__ == "LIF"
    # ResNet11: 0.25 after conv1's LIF, in each block, after each block and after fc1 = 10
    r11 = models.build("resnet11", COLOUR, width=0.125)
    assert [d.p for d in r11.all_layers() if isinstance(d, Dropout)] == [0.25] * 10
    assert not any(isinstance(l, Dropout) for l in models.build("lenet5", MNIST).all_layers())
    # overrides
    custom = models.build("lenet5", MNIST, num_classes=7, width=0.5, threshold=0.5, leak=0.9,
                          pool_threshold=0.6, dropout=0.1, init_gain=3.0, seed=4)
    assert custom.num_classes == 7 and custom.init_gain == 3.0
    assert custom.parameters()["conv1.weight"].shape == (10, 1, 5, 5)
    assert custom.parameters()["output.weight"].shape == (7, 100)
    assert {l.threshold for l in custom.neuron_layers()} == {0.5, 0.6}
    assert [d.p for d in custom.all_layers() if isinstance(d, Dropout)] == [0.1] * 3
    nodrop = models.build("vgg9", COLOUR, width=0.125, dropout=0)
    assert not any(isinstance(l, (Dropout,)) for l in nodrop.all_layers())
    # same seed, same weights; another seed, other weights
    a = models.build("vgg7", COLOUR, width=0.125, seed=1).parameters()["conv2.weight"]
    b = models.build("vgg7", COLOUR, width=0.125, seed=1).parameters()["conv2.weight"]
    c = models.build("vgg7", COLOUR, width=0.125, seed=2).parameters()["conv2.weight"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert "fc1" in models.summary("lenet5", MNIST)


def test_run_options_reach_every_builder_alike():
    """One RunOptions object sets how a network runs, through models.build, ann.build and
    from_config; the config is the default of from_config; bad values are refused by name."""
    from minisnn import ann
    from minisnn.network import RunOptions
    options = RunOptions(execution="dense", gradient="through-time", workers=2, time_chunk=3)
    net = models.build("lenet5", MNIST, width=0.5, options=options)
    assert net.options == options and net.runner.workers == 2
    assert models.build("lenet5", MNIST, width=0.5, options=options, time_chunk=5).options.time_chunk == 5
    relu = ann.build("lenet5", MNIST, width=0.5, options=options.replace(gradient="aggregated"))
    assert relu.options == RunOptions("dense", "aggregated", 2, 3)
    assert ann.build("lenet5", MNIST, width=0.5, execution="event", time_chunk=7).options \
        == RunOptions("event", "aggregated", None, 7)
    config = {"dataset": "mnist", "model": "lenet5", "width": 0.5, "execution": "event",
              "gradient": "through-time", "time_chunk": 4, "threads": 3}
    assert models.from_config(config).options == RunOptions("event", "through-time", None, 4)
    assert models.from_config(config, options=options).options == options
    assert models.run_options(config, workers=2) == RunOptions("event", "through-time", 2, 4)
    for bad, message in (({"execution": "sparse"}, "execution must be one of"),
                         ({"gradient": "bptt"}, "gradient must be one of"),
                         ({"workers": 0}, "workers must be a positive integer"),
                         ({"time_chunk": 0}, "time_chunk must be a positive integer")):
        with pytest.raises(ValueError, match=message):
            RunOptions(**bad)


def test_initialisation_std_is_sqrt_k_over_fan_in():
    """N(0, sqrt(k / fan_in)), k = 2 plain (VGG9), k = 1 residual (ResNet9), section 4.1.1."""
    params = {"vgg9": models.build("vgg9", COLOUR).parameters(),
              "resnet9": models.build("resnet9", COLOUR).parameters()}
    for name, k, key, fan_in in [("vgg9", 2, "conv6.weight", 256 * 9), ("vgg9", 2, "fc1.weight", 4096),
                                 ("resnet9", 1, "block3.conv_b.weight", 512 * 9),
                                 ("resnet9", 1, "block3.skip.weight", 256)]:
        w = params[name][key]
        assert abs(w.std() / math.sqrt(k / fan_in) - 1) < 0.02, (name, key)
        assert abs(w.mean()) < 0.05 * w.std()


def test_resnet11_skip_choice():
    sub = models.build("resnet11", COLOUR, width=0.125)
    conv = models.build("resnet11", COLOUR, width=0.125, resnet11_skip="conv")
    block4 = next(l for l in sub.layers if l.name == "block4")
    assert type(block4.skip).__name__ == "Subsample"
    assert "block4.skip.weight" not in sub.parameters()
    assert conv.parameters()["block4.skip.weight"].shape == (64, 64, 1, 1)   # 512 * 0.125
    assert conv.num_parameters() - sub.num_parameters() == 64 * 64


# ---------------------------------------------------------------------------------------------
# Per-layer output shapes (C x H x W, width 1), by hand from tables 4.2-4.4.
# Conventions: 3x3 conv padding 1 keeps the size at stride 1 and gives floor((n-1)/2)+1 at
# stride 2; 5x5 padding 2 keeps it; pool 2 floors (17 -> 8, 7 -> 3); a 1x1 stride-2 skip and
# the stride-2 subsample give the same size as the 3x3 stride-2 conv. Each "a b c SHAPE"
# group lists layers sharing one output shape; Dropout layers (same shape as their input)
# are left out of the comparison and checked separately.
# ---------------------------------------------------------------------------------------------

def _blocks(*specs):
    """'i c h w' -> the six sublayers of residual block i, conv_a at h_a x w_a, the rest at h x w."""
    out = []
    for i, c, ha, h in specs:
        out += [f"block{i}.conv_a block{i}.lif_a {c}x{ha}x{ha}",
                f"block{i}.conv_b block{i}.skip block{i}.lif_b {c}x{h}x{h}"]
    return out


TAIL = ["fc1 lif_fc1 {fc}", "output 10"]

SHAPES = {
    "lenet5": {
        "1x28x28": ["conv1 lif1 20x28x28", "pool1 20x14x14", "conv2 lif2 50x14x14", "pool2 50x7x7",
                    "flatten 2450", "fc1 lif_fc1 200", "output 10"],
        "2x34x34": ["conv1 lif1 20x34x34", "pool1 20x17x17", "conv2 lif2 50x17x17", "pool2 50x8x8",
                    "flatten 3200", "fc1 lif_fc1 200", "output 10"],
        "3x32x32": ["conv1 lif1 20x32x32", "pool1 20x16x16", "conv2 lif2 50x16x16", "pool2 50x8x8",
                    "flatten 3200", "fc1 lif_fc1 200", "output 10"],
    },
    "vgg7": {   # 64 s1, 64 s2, pool, 128 s1, 128 s2, 128 s2, pool
        "1x28x28": ["conv1 lif1 64x28x28", "conv2 lif2 64x14x14", "pool1 64x7x7", "conv3 lif3 128x7x7",
                    "conv4 lif4 128x4x4", "conv5 lif5 128x2x2", "pool2 128x1x1", "flatten 128",
                    "fc1 lif_fc1 1024", "output 10"],
        "2x34x34": ["conv1 lif1 64x34x34", "conv2 lif2 64x17x17", "pool1 64x8x8", "conv3 lif3 128x8x8",
                    "conv4 lif4 128x4x4", "conv5 lif5 128x2x2", "pool2 128x1x1", "flatten 128",
                    "fc1 lif_fc1 1024", "output 10"],
        "3x32x32": ["conv1 lif1 64x32x32", "conv2 lif2 64x16x16", "pool1 64x8x8", "conv3 lif3 128x8x8",
                    "conv4 lif4 128x4x4", "conv5 lif5 128x2x2", "pool2 128x1x1", "flatten 128",
                    "fc1 lif_fc1 1024", "output 10"],
    },
    "vgg9": {
        "1x28x28": ["conv1 lif1 conv2 lif2 64x28x28", "pool1 64x14x14", "conv3 lif3 conv4 lif4 128x14x14",
                    "pool2 128x7x7", "conv5 lif5 conv6 lif6 conv7 lif7 256x7x7", "pool3 256x3x3",
                    "flatten 2304", "fc1 lif_fc1 1024", "output 10"],
        "2x34x34": ["conv1 lif1 conv2 lif2 64x34x34", "pool1 64x17x17", "conv3 lif3 conv4 lif4 128x17x17",
                    "pool2 128x8x8", "conv5 lif5 conv6 lif6 conv7 lif7 256x8x8", "pool3 256x4x4",
                    "flatten 4096", "fc1 lif_fc1 1024", "output 10"],
        "3x32x32": ["conv1 lif1 conv2 lif2 64x32x32", "pool1 64x16x16", "conv3 lif3 conv4 lif4 128x16x16",
                    "pool2 128x8x8", "conv5 lif5 conv6 lif6 conv7 lif7 256x8x8", "pool3 256x4x4",
                    "flatten 4096", "fc1 lif_fc1 1024", "output 10"],
    },
    "resnet7": {  # blocks (128 s2), (256 s2)
        "1x28x28": ["conv1 lif1 64x28x28", "pool1 64x14x14", *_blocks((1, 128, 14, 7), (2, 256, 7, 4)),
                    "flatten 4096", "fc1 lif_fc1 1024", "output 10"],
        "2x34x34": ["conv1 lif1 64x34x34", "pool1 64x17x17", *_blocks((1, 128, 17, 9), (2, 256, 9, 5)),
                    "flatten 6400", "fc1 lif_fc1 1024", "output 10"],
        "3x32x32": ["conv1 lif1 64x32x32", "pool1 64x16x16", *_blocks((1, 128, 16, 8), (2, 256, 8, 4)),
                    "flatten 4096", "fc1 lif_fc1 1024", "output 10"],
    },
    "resnet9": {  # blocks (128 s1), (256 s2), (512 s2)
        "1x28x28": ["conv1 lif1 64x28x28", "pool1 64x14x14",
                    *_blocks((1, 128, 14, 14), (2, 256, 14, 7), (3, 512, 7, 4)),
                    "flatten 8192", "fc1 lif_fc1 1024", "output 10"],
        "2x34x34": ["conv1 lif1 64x34x34", "pool1 64x17x17",
                    *_blocks((1, 128, 17, 17), (2, 256, 17, 9), (3, 512, 9, 5)),
                    "flatten 12800", "fc1 lif_fc1 1024", "output 10"],
        "3x32x32": ["conv1 lif1 64x32x32", "pool1 64x16x16",
                    *_blocks((1, 128, 16, 16), (2, 256, 16, 8), (3, 512, 8, 4)),
                    "flatten 8192", "fc1 lif_fc1 1024", "output 10"],
    },
    "resnet11": {  # blocks (128 s1), (256 s2), (512 s1), (512 s2, subsample skip)
        "1x28x28": ["conv1 lif1 64x28x28", "pool1 64x14x14",
                    *_blocks((1, 128, 14, 14), (2, 256, 14, 7), (3, 512, 7, 7), (4, 512, 7, 4)),
                    "flatten 8192", "fc1 lif_fc1 1024", "output 10"],
        "2x34x34": ["conv1 lif1 64x34x34", "pool1 64x17x17",
                    *_blocks((1, 128, 17, 17), (2, 256, 17, 9), (3, 512, 9, 9), (4, 512, 9, 5)),
                    "flatten 12800", "fc1 lif_fc1 1024", "output 10"],
        "3x32x32": ["conv1 lif1 64x32x32", "pool1 64x16x16",
                    *_blocks((1, 128, 16, 16), (2, 256, 16, 8), (3, 512, 8, 8), (4, 512, 8, 4)),
                    "flatten 8192", "fc1 lif_fc1 1024", "output 10"],
    },
}


def _expand(groups):
    rows = []
    for group in groups:
        *names, shape = group.split()
        rows += [(n, tuple(int(s) for s in shape.split("x"))) for n in names]
    return rows


def _actual_shapes(net):
    rows = []
    for layer in net.all_layers():
        if isinstance(layer, (Dropout, Identity)):
            assert layer.out_shape == layer.in_shape
            continue
        s = layer.out_shape
        rows.append((layer.name, (s[2], s[0], s[1]) if len(s) == 3 else s))
    return rows


# ---------------------------------------------------------------------------------------------
# Parameter counts at width 1, by hand (no biases; conv = C_in * C_out * k * k; skip 1x1 =
# C_in * C_out; fc = in * out).
# ---------------------------------------------------------------------------------------------

# LeNet5: conv 5x5 20, conv 5x5 50, fc 200, out 10
#   MNIST   1*20*25 + 20*50*25 + 50*7*7*200 + 200*10 = 500 + 25,000 + 490,000 + 2,000 = 517,500
#   N-MNIST 2*20*25 + 25,000 + 50*8*8*200 + 2,000    = 1,000 + 25,000 + 640,000 + 2,000 = 668,000
#   colour  3*20*25 + 25,000 + 640,000 + 2,000                                          = 668,500
# VGG7: 3x3 64, 64 s2, 128, 128 s2, 128 s2; fc input 128*1*1 for all three inputs
#   C*64*9 + 64*64*9 + 64*128*9 + 2*128*128*9 + 128*1024 + 1024*10
#   = C*576 + 36,864 + 73,728 + 294,912 + 131,072 + 10,240 = C*576 + 546,816
#   MNIST 547,392; N-MNIST 547,968; colour 548,544
# VGG9: C*64*9 + 64*64*9 + 64*128*9 + 128*128*9 + 128*256*9 + 2*256*256*9 + fc + 10,240
#   = C*576 + 36,864 + 73,728 + 147,456 + 294,912 + 1,179,648 + fc + 10,240 = C*576 + 1,742,848 + fc
#   MNIST   fc 256*3*3*1024 = 2,359,296 -> 576 + 1,742,848 + 2,359,296   = 4,102,720
#   N-MNIST fc 256*4*4*1024 = 4,194,304 -> 1,152 + 1,742,848 + 4,194,304 = 5,938,304
#   colour  1,728 + 1,742,848 + 4,194,304                                 = 5,938,880
# Residual blocks [a, b; skip 1x1]:  cin*cout*9 + cout*cout*9 + cin*cout
#   B(64->128)  = 73,728 + 147,456 + 8,192       = 229,376
#   B(128->256) = 294,912 + 589,824 + 32,768     = 917,504
#   B(256->512) = 1,179,648 + 2,359,296 + 131,072 = 3,670,016
#   B(512->512, subsample skip) = 2 * 2,359,296   = 4,718,592
# ResNet7: C*576 + B(64->128) + B(128->256) + 256*s*s*1024 + 10,240 = C*576 + 1,157,120 + fc
#   MNIST   (s=4) 576 + 1,157,120 + 4,194,304   = 5,352,000
#   N-MNIST (s=5) 1,152 + 1,157,120 + 6,553,600 = 7,711,872
#   colour  (s=4) 1,728 + 1,157,120 + 4,194,304 = 5,353,152
# ResNet9: C*576 + 229,376 + 917,504 + 3,670,016 + 512*s*s*1024 + 10,240 = C*576 + 4,827,136 + fc
#   MNIST   (s=4) 576 + 4,827,136 + 8,388,608    = 13,216,320
#   N-MNIST (s=5) 1,152 + 4,827,136 + 13,107,200 = 17,935,488
#   colour  (s=4) 1,728 + 4,827,136 + 8,388,608  = 13,217,472
# ResNet11: ResNet9's convs + B(512->512) = C*576 + 4,827,136 + 4,718,592 + fc = C*576 + 9,545,728 + fc
#   MNIST   576 + 9,545,728 + 8,388,608    = 17,934,912
#   N-MNIST 1,152 + 9,545,728 + 13,107,200 = 22,654,080
#   colour  1,728 + 9,545,728 + 8,388,608  = 17,936,064
PARAMS = {
    "lenet5": {"1x28x28": 517_500, "2x34x34": 668_000, "3x32x32": 668_500},
    "vgg7": {"1x28x28": 547_392, "2x34x34": 547_968, "3x32x32": 548_544},
    "vgg9": {"1x28x28": 4_102_720, "2x34x34": 5_938_304, "3x32x32": 5_938_880},
    "resnet7": {"1x28x28": 5_352_000, "2x34x34": 7_711_872, "3x32x32": 5_353_152},
    "resnet9": {"1x28x28": 13_216_320, "2x34x34": 17_935_488, "3x32x32": 13_217_472},
    "resnet11": {"1x28x28": 17_934_912, "2x34x34": 22_654_080, "3x32x32": 17_936_064},
}


@pytest.mark.parametrize("name", models.MODELS)
@pytest.mark.parametrize("input_name", list(INPUTS))
def test_width_1_layer_shapes_and_parameter_counts(name, input_name):
    """Per-layer output shapes (SHAPES) and total parameters (PARAMS) of the width-1 model;
    one build serves both (width-1 builds dominate this file's setup time)."""
    net = models.build(name, INPUTS[input_name], backend=Backend("cpu", "float32"))
    assert _actual_shapes(net) == _expand(SHAPES[name][input_name])
    assert net.num_parameters() == PARAMS[name][input_name]
    assert f"{PARAMS[name][input_name]:,}" in net.summary().splitlines()[-1]


def test_width_scales_hidden_counts_only():
    net = models.build("resnet9", COLOUR, width=0.25)
    p = net.parameters()
    assert p["conv1.weight"].shape == (16, 3, 3, 3)
    assert p["block3.conv_b.weight"].shape == (128, 128, 3, 3)
    assert p["fc1.weight"].shape == (256, 128 * 4 * 4)
    assert p["output.weight"].shape == (10, 256)
    assert models.build("lenet5", MNIST, width=0.01).parameters()["conv1.weight"].shape == (1, 1, 5, 5)


# ---------------------------------------------------------------------------------------------
# Whole-chain finite differences on the linearised network (docs/algorithm.md, "what a finite-
# difference check can validate"): z^l = gain^l (.) (W^l z^{l-1}), gains random in (0.5, 1.5)
# on every neuron layer, z^0 random non-negative counts, E = 1/2 sum (W^L z^{L-1} / T - y)^2.
# Training mode: the default dropout masks (VGG/ResNet) are on the path, drawn from rng_key.
# E is quadratic in any single weight (the linearised output is linear in each layer's
# weights), so the centred difference has no truncation error and its only error is rounding,
# about 1e-16 * |E| / eps: the step is therefore relative and not tiny, 1e-3 x the rms of the
# array (about 1e-4 for weights). With a 1e-6 relative step the same check reaches only ~1e-5.
# ---------------------------------------------------------------------------------------------

FD_CASES = [("lenet5", MNIST, 0.25, None), ("lenet5", NMNIST, 0.25, 0.2), ("vgg7", COLOUR, 0.125, None),
            ("vgg9", COLOUR, 0.125, None), ("resnet7", COLOUR, 0.125, None),
            ("resnet9", COLOUR, 0.125, None), ("resnet11", COLOUR, 0.125, None),
            ("resnet11", MNIST, 0.125, 0.0)]


def _relative_error(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-30)))


@pytest.mark.parametrize("name,shape,width,dropout", FD_CASES)
def test_whole_chain_finite_differences(name, shape, width, dropout):
    backend = Backend("cpu", "float64")
    net = models.build(name, shape, width=width, backend=backend, dropout=dropout, seed=3)
    rng = np.random.default_rng(11)
    batch, T, key = 2, 5, (7,)
    twin = Linearised(net, random_gains(net, batch, rng))
    z0 = rng.integers(0, T + 1, (batch,) + shape).astype(np.float64)
    labels = rng.integers(0, 10, batch)

    def loss():
        out = twin.forward(z0, T, train=True, rng_key=key)
        return float(mse_loss(out, labels)[0])

    out = twin.forward(z0, T, train=True, rng_key=key)
    if any(isinstance(l, Dropout) for l in net.all_layers()):
        masks = [l.mask for l in net.all_layers() if isinstance(l, Dropout)]
        assert all(m is not None and (m == 0).any() for m in masks)      # the mask path is live
    grad_z0 = twin.backward(mse_loss(out, labels)[1])
    analytic = {k: v.copy() for k, v in net.gradients().items()}
    assert set(analytic) == set(net.parameters())

    def numerical(array, indices):
        eps = 1e-3 * float(np.sqrt(np.mean(array * array)))     # relative to the array's scale
        return numerical_gradient(loss, array, indices, eps)

    errors = {}
    for pname, weight in net.parameters().items():
        idx = rng.choice(weight.size, size=min(5, weight.size), replace=False)
        num = numerical(weight, idx)
        assert np.abs(num).max() > 0, pname                                 # a non-trivial check
        errors[pname] = _relative_error(analytic[pname].reshape(-1)[idx], num)
    idx = rng.choice(z0.size, size=5, replace=False)
    errors["input"] = _relative_error(np.asarray(grad_z0).reshape(-1)[idx], numerical(z0, idx))
    worst = max(errors, key=errors.get)
    label = f"{name} {'x'.join(map(str, shape))} w={width} dropout={dropout}"
    print(f"\n  FD {label}: max rel err {errors[worst]:.2e} ({worst}, {len(errors)} arrays)")
    assert errors[worst] <= 1e-6, errors


def test_finite_difference_check_can_fail():
    """The same check on a wrong gradient (one weight's gradient doubled) reports a large error."""
    backend = Backend("cpu", "float64")
    net = models.build("resnet7", COLOUR, width=0.125, backend=backend, seed=3)
    rng = np.random.default_rng(0)
    twin = Linearised(net, random_gains(net, 2, rng))
    z0 = rng.integers(0, 6, (2,) + COLOUR).astype(np.float64)
    labels = np.array([1, 2])
    out = twin.forward(z0, 5, train=True, rng_key=(1,))
    twin.backward(mse_loss(out, labels)[1])
    w = net.parameters()["block2.skip.weight"]
    g = net.gradients()["block2.skip.weight"].reshape(-1)
    i = int(np.argmax(np.abs(g)))
    old = w.reshape(-1)[i]
    vals = []
    for s in (1, -1):
        w.reshape(-1)[i] = old + s * 1e-4
        vals.append(float(mse_loss(twin.forward(z0, 5, train=True, rng_key=(1,)), labels)[0]))
    w.reshape(-1)[i] = old
    num = (vals[0] - vals[1]) / 2e-4
    assert _relative_error(g[i], num) < 1e-6
    assert _relative_error(2 * g[i], num) > 0.1


# ---------------------------------------------------------------------------------------------
# Spikes at initialisation: Poisson input at the thesis' T (50 LeNet5, 100 others), batch 2,
# full width, evaluation mode. MNIST-like: uniform [0, 1] pixels; colour: standard normal
# (standardised pixels). Every hidden neuron layer (LIF and pooling IF) must fire.
# ---------------------------------------------------------------------------------------------

SPIKE_CASES = [("lenet5", MNIST, 1.0), ("lenet5", NMNIST, 1.0), ("vgg7", COLOUR, 1.0),
               ("vgg9", COLOUR, 0.25), ("resnet7", COLOUR, 0.25), ("resnet9", COLOUR, 0.25),
               ("resnet11", COLOUR, 0.25)]
# Full width for the four larger models costs 10-25 s each on 2 shared cores: marked slow and
# run only with MINISNN_SLOW=1 (pytest -m slow selects them too). Width 0.25 keeps the same
# depth, strides and fan-in statistics (the init scales with 1/fan_in), and its rates are
# within a factor ~1.5 of the full-width ones.
SLOW = pytest.mark.skipif(os.environ.get("MINISNN_SLOW") != "1", reason="full width: set MINISNN_SLOW=1")
SPIKE_CASES += [pytest.param(name, COLOUR, 1.0, marks=[pytest.mark.slow, SLOW])
                for name in ("vgg9", "resnet7", "resnet9", "resnet11")]


@pytest.mark.parametrize("name,shape,width", SPIKE_CASES)
def test_every_hidden_layer_spikes_at_initialisation(name, shape, width):
    net = models.build(name, shape, width=width, backend=Backend("cpu", "float32"), seed=0)
    rng = np.random.default_rng(5)
    if shape[0] == 3:
        x = rng.standard_normal((2,) + shape)
    else:
        x = rng.uniform(0, 1, (2,) + shape)
    T = thesis_preset(name, models.default_dataset(name))["timesteps"]
    start = time.perf_counter()
    net.forward(x.astype(np.float32), T, train=False, rng_key=(0,))
    seconds = time.perf_counter() - start
    rates = net.spike_rates()
    assert len(rates) == len(net.neuron_layers()) >= 4
    print(f"\n  rates {name} {'x'.join(map(str, shape))} width={width} T={T} ({seconds:.1f} s): "
          + " ".join(f"{k}={v:.4f}" for k, v in rates.items()))
    silent = [k for k, v in rates.items() if not v > 0]
    assert not silent, f"{name}: silent layers at initialisation: {silent}"
