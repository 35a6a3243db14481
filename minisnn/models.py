"""The six networks of the thesis' tables 4.2-4.4 (LeNet5, VGG7, VGG9, ResNet7, ResNet9, ResNet11).

``build(name, input_shape)`` returns a :class:`~minisnn.network.Network` laid out as
docs/algorithm.md ("The models") restates the tables, for every input the datasets give (1x28x28 MNIST and
Fashion-MNIST, 2x34x34 N-MNIST, 3x32x32 CIFAR-10 and SVHN). Conventions shared by all six:

* every convolution is followed by an LIF layer (threshold 1.0, leak 0.99); 3x3 convolutions
  use padding 1 and 5x5 padding 2 (the authors' code); no biases anywhere;
* every "avgpool 2" is a :class:`~minisnn.layers.SpikingAvgPool` (IF neurons, threshold 0.75),
  which floors odd sizes (34 -> 17 -> pool 8);
* every fc hidden layer is Linear + LIF, the last layer an :class:`~minisnn.layers.Output`;
  the fc input size follows from the layer shapes, so one builder serves every input size;
* initialisation N(0, sqrt(k / fan_in)) with k = 2 for the plain networks and k = 1 for the
  residual ones (section 4.1.1; the ``init_gain`` of :class:`Network`);
* dropout (section 3.3.2) sits after LIF layers only, never on a pooling layer's output,
  as in the authors' code (chan8972/Enabling_Spikebased_Backpropagation):
  - ``src/cifar10_VGG9.py``: p = 0.2 after every conv LIF layer and after the fc LIF layer;
  - ``src/cifar10_ResNet11.py``: p = 0.25 after the first conv LIF (before the pool), after
    the first LIF of every residual block, after every block's output LIF (so the masked
    spikes feed both paths of the next block, as ``x2 = out * mask_22`` there) and after
    the fc LIF;
  - ``src/mnist_LeNet.py``: no dropout, so LeNet5 defaults to p = 0 (when a p > 0 is asked
    for, it goes after every LIF layer);
  - VGG7 follows VGG9 (0.2) and ResNet7 / ResNet9 follow ResNet11 (0.25): the code for
    them is not public.

``width`` multiplies every hidden channel and feature count (rounded, at least 1) so tests can
run small networks of the same shape; the output layer keeps ``num_classes``.

Layer names: ``conv1, lif1, drop1, pool1, ..., fc1, lif_fc1, drop_fc1, output``; residual
blocks are ``block1 ...`` with sublayers ``block1.conv_a`` etc.; parameters are named
``"<layer>.weight"`` (:meth:`Network.parameters`).
"""
from __future__ import annotations

import importlib

from .layers import Conv2d, Dropout, Flatten, Linear, Output, ResidualBlock, SpikingAvgPool, neuron_layer
from .network import Network, RunOptions

MODELS = ("lenet5", "vgg7", "vgg9", "resnet7", "resnet9", "resnet11")

_DEFAULT_DATASET = {"lenet5": "mnist", "vgg7": "svhn", "resnet7": "svhn",
                    "vgg9": "cifar10", "resnet9": "cifar10", "resnet11": "cifar10"}

#: Dropout probability of each model when ``dropout=None`` (see the module docstring).
DEFAULT_DROPOUT = {"lenet5": 0.0, "vgg7": 0.2, "vgg9": 0.2,
                   "resnet7": 0.25, "resnet9": 0.25, "resnet11": 0.25}



def default_dataset(name: str) -> str:
    """The dataset each model is trained on in the thesis (tables 4.5-4.9)."""
    return _DEFAULT_DATASET[_check_name(name)]


def _check_name(name):
    key = str(name).lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    return key


class _Builder:
    """Appends layers and tracks the per-sample shape (channels-last) as it goes, so the fc
    input size and the block shapes come from the layers themselves."""

    def __init__(self, input_shape, width, threshold, leak, pool_threshold, dropout, reset="hard", neuron=None):
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
        c, h, w = (int(s) for s in input_shape)
        if w <= 3 < c:
            raise ValueError(f"input_shape must be (C, H, W) with the channels first; "
                             f"{tuple(input_shape)} looks channels-last: use {(w, c, h)}")
        if min(c, h, w) < 1:
            raise ValueError(f"input_shape must be positive (C, H, W), got {tuple(input_shape)}")
        self.input_shape = (c, h, w)
        self.shape = (h, w, c)           # internal layout (H, W, C)
        self.width = width
        self.threshold, self.leak, self.pool_threshold = threshold, leak, pool_threshold
        self.dropout, self.reset, self.neuron = dropout, reset, neuron
        self.layers = []
        self.counts = {"conv": 0, "pool": 0, "fc": 0, "block": 0}

    def _check(self, layer):
        """A layer that shrinks the feature map to nothing: the input is too small."""
        if min(self.shape[:2]) < 1:
            raise ValueError(f"input_shape {self.input_shape} is too small for this model: "
                             f"{layer} leaves a {self.shape[0]}x{self.shape[1]} feature map")

    def ch(self, n):
        """A hidden channel / feature count scaled by ``width`` (rounded, at least 1)."""
        return max(1, int(round(n * self.width)))

    def _neurons(self, name):
        """The neuron layer after a convolution or fc layer (LIF unless a neuron factory was given)."""
        return neuron_layer(self.neuron, name, self.threshold, self.leak, self.reset)

    def _drop(self, suffix):
        if self.dropout > 0:
            self.layers.append(Dropout(self.dropout, name=f"drop{suffix}"))

    def conv(self, out, k, stride=1, drop=True):
        """conv k x k (padding k // 2: 1 for 3x3, 2 for 5x5) - LIF [- dropout]."""
        self.counts["conv"] += 1
        i = self.counts["conv"]
        h, w, c = self.shape
        out = self.ch(out)
        conv = Conv2d(c, out, k, stride, k // 2, name=f"conv{i}")
        self.shape = conv.output_shape(self.shape)
        self._check(conv.name)
        self.layers += [conv, self._neurons(f"lif{i}")]
        if drop:
            self._drop(str(i))

    def pool(self):
        self.counts["pool"] += 1
        pool = SpikingAvgPool(self.pool_threshold, name=f"pool{self.counts['pool']}", reset=self.reset)
        self.shape = pool.output_shape(self.shape)
        self._check(pool.name)
        self.layers.append(pool)

    def block(self, out, stride, skip="conv"):
        """[conv 3x3 out s1, conv 3x3 out s<stride>; skip] - dropout after the block's output LIF."""
        self.counts["block"] += 1
        i = self.counts["block"]
        c = self.shape[2]
        out = self.ch(out)
        self.layers.append(ResidualBlock(c, out, stride, skip, self.threshold, self.leak,
                                         self.dropout, name=f"block{i}", reset=self.reset,
                                         neuron=self.neuron))
        h, w = self.shape[:2]
        self.shape = ((h - 1) // stride + 1, (w - 1) // stride + 1, out)
        self._check(f"block{i}")
        self._drop(f"_block{i}")

    def fc(self, out):
        """(flatten -) fc out - LIF - dropout."""
        if len(self.shape) == 3:
            self.layers.append(Flatten(name="flatten"))
            self.shape = (self.shape[0] * self.shape[1] * self.shape[2],)
        self.counts["fc"] += 1
        i = self.counts["fc"]
        out = self.ch(out)
        self.layers += [Linear(self.shape[0], out, name=f"fc{i}"),
                        self._neurons(f"lif_fc{i}")]
        self.shape = (out,)
        self._drop(f"_fc{i}")

    def output(self, num_classes):
        self.layers.append(Output(self.shape[0], num_classes, self.leak, name="output"))
        return self.layers


def _lenet5(b, num_classes, **_):
    """LeNet5, table 4.2: conv 5x5 20 - avgpool 2 - conv 5x5 50 - avgpool 2 - fc 200 - output.

    As ``src/mnist_LeNet.py``: padding 2, so MNIST's 28x28 gives a 50x7x7 fc input
    (N-MNIST's 34x34: 34 -> 17 -> 17 -> 8, a 50x8x8 fc input). No dropout by default.
    """
    b.conv(20, 5)
    b.pool()
    b.conv(50, 5)
    b.pool()
    b.fc(200)
    return b.output(num_classes)


def _vgg7(b, num_classes, **_):
    """VGG7, table 4.3 (SVHN): conv 3x3 64 s1 - conv 3x3 64 s2 - avgpool 2 - conv 3x3 128 s1 -
    conv 3x3 128 s2 - conv 3x3 128 s2 - avgpool 2 - fc 1024 - output.

    Padding 1 throughout; on 32x32 the map shrinks 32-32-16-8-8-4-2-1, so the fc input is
    128x1x1. Dropout 0.2 after every LIF layer, as the VGG9 code (no VGG7 code is public).
    """
    b.conv(64, 3)
    b.conv(64, 3, stride=2)
    b.pool()
    b.conv(128, 3)
    b.conv(128, 3, stride=2)
    b.conv(128, 3, stride=2)
    b.pool()
    b.fc(1024)
    return b.output(num_classes)


def _vgg9(b, num_classes, **_):
    """VGG9, table 4.4 (CIFAR-10): conv 3x3 64 - conv 3x3 64 - avgpool 2 - conv 3x3 128 -
    conv 3x3 128 - avgpool 2 - conv 3x3 256 x3 - avgpool 2 - fc 1024 - output (stride 1).

    As ``src/cifar10_VGG9.py``: padding 1, fc input 256x4x4 on 32x32, dropout 0.2 after all
    seven conv LIF layers and the fc LIF layer (``DO = DO_f = 0.2``).
    """
    b.conv(64, 3)
    b.conv(64, 3)
    b.pool()
    b.conv(128, 3)
    b.conv(128, 3)
    b.pool()
    b.conv(256, 3)
    b.conv(256, 3)
    b.conv(256, 3)
    b.pool()
    b.fc(1024)
    return b.output(num_classes)


def _resnet7(b, num_classes, **_):
    """ResNet7, table 4.3 (SVHN): conv 3x3 64 s1 - avgpool 2 - [conv 3x3 128 s1, conv 3x3 128 s2;
    skip 1x1 128 s2] - [conv 3x3 256 s1, conv 3x3 256 s2; skip 1x1 256 s2] - fc 1024 - output.

    32x32 gives 32-16-8-4, a 256x4x4 fc input. Dropout 0.25 placed as the ResNet11 code.
    """
    b.conv(64, 3)
    b.pool()
    b.block(128, 2)
    b.block(256, 2)
    b.fc(1024)
    return b.output(num_classes)


def _resnet9(b, num_classes, **_):
    """ResNet9, table 4.4 (CIFAR-10): conv 3x3 64 - avgpool 2 - [conv 128 s1, conv 128 s1;
    skip 1x1 128 s1] - [conv 256 s1, conv 256 s2; skip 1x1 256 s2] - [conv 512 s1,
    conv 512 s2; skip 1x1 512 s2] - fc 1024 - output.

    The first block changes 64 -> 128 channels, hence its 1x1 convolution skip at stride 1.
    32x32 gives 32-16-16-8-4, a 512x4x4 fc input. Dropout 0.25 placed as the ResNet11 code.
    """
    b.conv(64, 3)
    b.pool()
    b.block(128, 1)
    b.block(256, 2)
    b.block(512, 2)
    b.fc(1024)
    return b.output(num_classes)


def _resnet11(b, num_classes, resnet11_skip="subsample", **_):
    """ResNet11, table 4.4 (CIFAR-10) as ``src/cifar10_ResNet11.py`` has it (the thesis table
    merges two blocks): conv 3x3 64 - avgpool 2 - [conv 128, conv 128; skip 1x1 128] -
    [conv 256, conv 256 s2; skip 1x1 256 s2] - [conv 512, conv 512; skip 1x1 512] -
    [conv 512, conv 512 s2; skip stride 2] - fc 1024 - output.

    The last skip is ambiguous: the thesis calls it a 1x1 convolution of stride 2, the code
    uses a parameter-free stride-2 subsample (``AvgPool2d(kernel_size=1, stride=2)``). The
    default follows the code (``resnet11_skip="subsample"``); ``resnet11_skip="conv"`` gives
    the thesis' version (512 x 512 more weights). 32x32 gives 32-16-16-8-8-4, a 512x4x4
    fc input. Eleven trainable layers, skips not counted. Dropout 0.25 as in the code.
    """
    if resnet11_skip not in ("subsample", "conv"):
        raise ValueError(f"resnet11_skip must be 'subsample' or 'conv', got {resnet11_skip!r}")
    b.conv(64, 3)
    b.pool()
    b.block(128, 1)
    b.block(256, 2)
    b.block(512, 1)
    b.block(512, 2, skip=resnet11_skip)
    b.fc(1024)
    return b.output(num_classes)


_LAYOUTS = {"lenet5": _lenet5, "vgg7": _vgg7, "vgg9": _vgg9,
            "resnet7": _resnet7, "resnet9": _resnet9, "resnet11": _resnet11}


def default_input_shape(name: str) -> tuple:
    """(C, H, W) of the dataset the model is trained on in the thesis, e.g. (1, 28, 28) for LeNet5."""
    from .data.registry import DATASETS

    return tuple(DATASETS[default_dataset(name)].input_shape)


def layers(name, input_shape=None, num_classes=10, width=1.0, *, threshold=1.0, leak=0.99,
           pool_threshold=0.75, dropout=None, resnet11_skip="subsample", reset="hard", neuron=None):
    """The layer list of model ``name`` (tables 4.2-4.4), unbuilt; :func:`build` wraps it."""
    key = _check_name(name)
    if input_shape is None:
        input_shape = default_input_shape(key)
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    p = DEFAULT_DROPOUT[key] if dropout is None else float(dropout)
    b = _Builder(input_shape, width, threshold, leak, pool_threshold, p, reset, neuron)
    return _LAYOUTS[key](b, num_classes, resnet11_skip=resnet11_skip)


def build(name, input_shape=None, num_classes=10, width=1.0, backend=None, *, threshold=1.0,
          leak=0.99, pool_threshold=0.75, dropout=None, seed=0, encoder=None, init_gain=None,
          resnet11_skip="subsample", reset="hard", neuron=None, options=None, time_chunk=None,
          execution=None, gradient=None):
    """Build model ``name`` (one of :data:`MODELS`) of tables 4.2-4.4 as a :class:`Network`.

    ``input_shape`` is (C, H, W), channels first: (1, 28, 28), (2, 34, 34) or (3, 32, 32) in
    the thesis, but any size the layers can reduce works; None takes the shape of the model's
    dataset (:func:`default_input_shape`: LeNet5 1x28x28 MNIST, VGG7/ResNet7 SVHN and
    VGG9/ResNet9/ResNet11 CIFAR-10, 3x32x32). ``width`` scales the hidden channel / feature counts.
    ``threshold`` / ``leak`` are the LIF layers' (and the output's leak), ``pool_threshold``
    the pooling IF neurons'. ``dropout=None`` takes the model's default
    (:data:`DEFAULT_DROPOUT`); 0 removes the dropout layers. ``init_gain=None`` takes the
    Network's k: 2 (plain) or 1 (residual). ``resnet11_skip`` selects ResNet11's last skip (see
    its docstring). ``reset``: every spiking neuron's reset, "hard" (the thesis) or "subtract"
    (:class:`~minisnn.layers.LIF`). ``neuron``: a factory of :class:`~minisnn.neurons.Neuron` models,
    called once per neuron layer after a convolution or fc layer (residual blocks included), in
    place of the LIF neurons (threshold, leak and reset then apply to the pools and the output only).
    ``encoder=None`` is the Network's default PoissonEncoder (scale 1, the thesis' reading;
    the authors' MNIST code corresponds to ``PoissonEncoder(scale=0.5)``). ``options``: how it
    runs, a :class:`~minisnn.network.RunOptions` (execution, gradient, workers, time_chunk);
    ``time_chunk``, ``execution`` and ``gradient``, when given, override it.
    """
    key = _check_name(name)
    input_shape = default_input_shape(key) if input_shape is None else tuple(input_shape)
    stack = layers(key, input_shape, num_classes, width, threshold=threshold, leak=leak,
                   pool_threshold=pool_threshold, dropout=dropout, resnet11_skip=resnet11_skip, reset=reset,
                   neuron=neuron)
    return Network(stack, input_shape, backend=backend, encoder=encoder, init_gain=init_gain, seed=seed,
                   name=key, options=options, time_chunk=time_chunk, execution=execution, gradient=gradient)


def run_options(config, **changes):
    """The :class:`~minisnn.network.RunOptions` of a run's config (``execution``, ``gradient``,
    ``time_chunk``), with ``changes`` (not None) applied. Workers stay one per core unless
    ``changes`` name them: the config's ``threads`` belong to the machine it trained on."""
    return RunOptions(execution=config.get("execution", "auto"), gradient=config.get("gradient", "aggregated"),
                      time_chunk=int(config.get("time_chunk", 10))).replace(**changes)


def from_config(config, backend=None, options=None):
    """The network a run's config describes (``python -m minisnn.train``, :func:`minisnn.load`):
    the spiking model, or its ANN (:func:`minisnn.ann.build`) for ``network="ann"``; event data
    enters through FrameInput, images through PoissonEncoder(encoding_scale) or, for
    ``input="direct"``, DirectInput; ``reset`` is the neurons' reset, ``neuron`` their model
    (:func:`neuron_factory`; absent: LIF). ``options``: how it runs, by default the config's
    (:func:`run_options`)."""
    from .data import DATASETS

    info = DATASETS[config["dataset"]]
    shape = (tuple(info.input_shape), info.num_classes, config.get("width", 1.0), backend)
    structure = dict(dropout=config.get("dropout"), seed=int(config.get("seed", 0)),
                     options=options or run_options(config))
    if config.get("network", "snn") == "ann":
        from . import ann
        return ann.build(config["model"], *shape, **structure)
    encoder = info.encoder(config.get("input", "poisson"), config.get("encoding_scale", 1.0))
    return build(config["model"], *shape, encoder=encoder, reset=config.get("reset", "hard"),
                 neuron=neuron_factory(config.get("neuron")), **structure)


def neuron_factory(spec):
    """The neuron factory a config's ``neuron`` names: None (LIF neurons) or ``"module:name"`` of an
    importable :class:`~minisnn.neurons.Neuron` class or factory, so a checkpoint of a network
    with your own neurons loads back (:func:`minisnn.load`) wherever that module imports."""
    if spec is None:
        return None
    module, _, attr = str(spec).partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"neuron {spec!r} is not an importable 'module:name' neuron factory ({exc}); "
                         "put its module on the Python path") from None


def summary(name, input_shape=None, num_classes=10, width=1.0, **kwargs):
    """The layer table (:meth:`Network.summary`) of a model, e.g. ``print(summary("vgg9"))``."""
    return build(name, input_shape, num_classes, width, **kwargs).summary()


__all__ = ["MODELS", "DEFAULT_DROPOUT", "build", "from_config", "run_options", "layers", "summary", "default_dataset",
           "default_input_shape", "neuron_factory"]
