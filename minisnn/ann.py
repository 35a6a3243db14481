"""ANN baseline and ANN-to-SNN conversion (the two reference columns of the thesis' table 4.9).

ANN
---
The same architectures as :mod:`minisnn.models`, with every LIF layer replaced by a
:class:`ReLU` and every spiking pool by a plain 2x2 :class:`AvgPool`, trained by the same
hand-written engine (no autograd). An ANN is an ordinary :class:`~minisnn.network.Network`
run for a single step on the image itself (:class:`~minisnn.encoding.DirectInput`):
``net.forward(x, T=1)``; ``python -m minisnn.train --network ann`` trains it from the command line. With one step the Output layer's
leaky sum is exactly its input, so the network returns ``W x`` and the backward (which
works on accumulated quantities) is the exact gradient of the ANN: the spiking engine's
``delta = e / T`` with ``T = 1`` and every "spike count" replaced by the activation itself.

    forward(net, images, train=False)   -> outputs (B, classes)
    build(name, input_shape, ...)       -> a ReLU / AvgPool Network (mirrors models.build)
    train(net, images, labels, epochs, ...)

ReLU forward max(0, x), backward ``grad * [x > 0]`` (the stored mask). ReLU derives from the
neuron base class, so ``Network.neuron_layers()`` lists it, ``Network.spike_rates()`` gives the
fraction of active units, and the linearised whole-chain finite-difference test
(:mod:`minisnn.linearised`) covers it like the spiking neurons.

ANN-to-SNN conversion (Rueckauer et al. 2017, data-based normalisation)
----------------------------------------------------------------------
``convert(ann, images, percentile=99.9)`` returns a spiking Network with the ANN's weights:

* every ReLU becomes an IF neuron (no leak, threshold 1) with **reset by subtraction**
  (:class:`IFSubtract`; minisnn's own neurons reset to zero, which loses the charge above
  threshold and biases high rates down). ``reset="zero"`` uses the engine's hard reset
  instead, for comparison;
* every AvgPool stays a plain linear average of the incoming spikes (values 0, 1/4, ...,
  1 per step) that feeds the next layer directly, without pooling neurons;
* the Output layer integrates without leak, so its output is ``W sum_t s_t / T``;
* normalisation: lambda_l = the ``percentile``-th percentile (99.9 by default; 99.99 or 100 =
  the maximum are the usual alternatives) of the *positive* activations of ReLU layer l on
  training images; each weight is scaled ``W_l <- W_l lambda_{in} / lambda_l`` where
  lambda_in is the lambda of the neurons feeding it (1 for the image, whose values are in
  [0, 1]), and the output layer by ``lambda_in`` alone. Then a neuron's firing rate
  approximates its ANN activation / lambda_l, clipped at one spike per step. Average pools
  are linear and pass lambda through unchanged. In a residual block the second neuron
  layer's two inputs are scaled separately (W2 by lambda_a / lambda_b, the skip by
  lambda_in / lambda_b). Sengupta et al. 2019's spike-based threshold balancing is not
  implemented; this is the data-based variant, equivalent up to the choice of lambda.
* input: analog rate coding, Poisson with scale 1 (a pixel of value x spikes with
  probability x per step), the network's encoder.
"""
from __future__ import annotations

import copy

import numpy as np

from . import models, ops
from .backend import Backend
from .encoding import DirectInput, PoissonEncoder
from .layers import ALL, Layer, Neurons, Output, Passive, ResidualBlock
from .loss import correct, mse_loss
from .network import Network
from .neurons import IFNeuron
from .optim import SGD, MultiStepLR


# ------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------

class ReLU(Neurons):
    """max(0, x); backward grad * [x > 0] on the stored mask.

    Meant for single-step networks (T = 1): the mask is that of the input of the last chunk.
    """

    def __init__(self, name=None):
        super().__init__(None, name)
        self.mask = None

    def reset(self, batch_size, training=False, rng=None, T=None):
        Layer.reset(self, batch_size, training, rng, T)
        shape = (batch_size,) + self.out_shape
        self.mask = self.xp.zeros(shape, self.dtype)
        self.active = self.xp.zeros(shape, self.dtype)

    def forward(self, x, rows=ALL):
        mask = (x > 0).astype(x.dtype)
        self.mask[rows] = mask[-1]
        self.active[rows] += mask.sum(axis=0)
        return x * mask

    def derivative(self):
        return self.mask

    def through_time_refusal(self):
        return "ReLU units have no time steps: an ANN trains with the aggregated gradient"

    def ann_twin(self):
        return self

    @property
    def spike_count(self):
        """Number of steps each unit was active (for ``spike_rates``: the active fraction)."""
        return self.active


class AvgPool(Passive):
    """Plain 2x2 stride-2 average (odd sizes floored), applied per step; backward spreads / 4.
    In a converted network its output counts 4 spike events per unit (:mod:`minisnn.energy`)."""

    def output_shape(self, in_shape):
        h, w, c = in_shape
        return (h // 2, w // 2, c)

    def forward(self, x, rows=ALL):
        steps, batch = x.shape[:2]
        pooled = ops.avg_pool2x2(x.reshape((steps * batch,) + self.in_shape))
        return pooled.reshape((steps, batch) + self.out_shape)

    def backward(self, grad):
        return ops.avg_pool2x2_backward(self.xp, grad, (grad.shape[0],) + self.in_shape)

    def spike_scale(self, incoming):
        return 4.0


class IFSubtract(Neurons):
    """IF neurons (no leak) for converted networks. ``reset="subtract"``: U <- U - V_th on a
    spike (keeps the residual charge, Rueckauer et al. 2017); ``reset="zero"``: minisnn's hard
    reset (:func:`~minisnn.neurons.integrate_and_fire`). Forward only (a converted network is
    not trained)."""

    def __init__(self, threshold=1.0, reset="subtract", name=None):
        if reset not in ("subtract", "zero"):
            raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
        super().__init__(IFNeuron(threshold, "hard" if reset == "zero" else "subtract"), name)
        self.threshold, self.reset_mode = threshold, reset

    def backward(self, grad):
        raise NotImplementedError("a converted network is for inference only")


# ------------------------------------------------------------------------------------------
# Building and running ANNs
# ------------------------------------------------------------------------------------------

def build(name, input_shape=None, num_classes=10, width=1.0, backend=None, *, dropout=None,
          seed=0, init_gain=None, resnet11_skip="subsample", options=None, time_chunk=None,
          execution=None, gradient=None, **_ignored):
    """The ANN of model ``name``: :func:`minisnn.models.layers` with each layer's ``ann_twin``
    (LIF -> ReLU, SpikingAvgPool -> AvgPool); same layer names, weight shapes and initialisation, so a
    checkpoint's weights fit either. ``input_shape`` defaults, as in :func:`minisnn.models.build`,
    to the model's thesis dataset (:func:`~minisnn.models.default_input_shape`). Dropout layers
    (the model's default p unless given) act only in training. Spiking-only keywords
    (threshold, leak, ...) are accepted and ignored. ``options``: how it runs, a
    :class:`~minisnn.network.RunOptions`; ``time_chunk``, ``execution`` and ``gradient``, when
    given, override it (as in :func:`minisnn.models.build`), and ``"through-time"`` is refused
    (:class:`~minisnn.gradients.UnsupportedGradient`): ReLU units have no time steps.
    """
    input_shape = models.default_input_shape(name) if input_shape is None else tuple(input_shape)
    stack = models.layers(name, input_shape, num_classes, width, dropout=dropout,
                          resnet11_skip=resnet11_skip)
    stack = [layer.ann_twin() for layer in stack]
    return Network(stack, input_shape, backend=backend, encoder=DirectInput(), init_gain=init_gain,
                   seed=seed, name=f"{str(name).lower()}-ann", options=options, time_chunk=time_chunk,
                   execution=execution, gradient=gradient)


def forward(net, images, train=False, rng_key=(0,)):
    """ANN output W x for a batch of images (B, C, H, W): one step of the network on the images
    themselves (the ANN's :class:`~minisnn.encoding.DirectInput`)."""
    return net.forward(images, T=1, train=train, rng_key=rng_key)


def _device_batches(net, images, labels, batch_size, order=None):
    """(x float [0, 1] on the device, y) batches of uint8 or float host images."""
    n = len(images)
    order = np.arange(n) if order is None else order
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        x = np.asarray(images[idx])
        x = x.astype(net.backend.dtype) / 255.0 if x.dtype == np.uint8 else x.astype(net.backend.dtype)
        yield net.backend.to_device(x), net.backend.to_device(np.asarray(labels[idx], dtype=np.int64))


def train(net, images, labels, epochs=1, batch_size=64, lr=0.005, momentum=0.9, weight_decay=5e-4,
          milestones=(), seed=0, log=None):
    """SGD on the MSE loss of :mod:`minisnn.loss` (summed over the batch), the same engine and
    loss as the spiking networks. Returns the per-epoch mean training loss and accuracy."""
    opt = SGD(net.parameters(), lr, momentum=momentum, weight_decay=weight_decay)
    schedule = MultiStepLR(opt, milestones)
    history = []
    for epoch in range(epochs):
        schedule.set_epoch(epoch)
        order = Backend.host_rng(seed, "ann-shuffle", epoch).permutation(len(labels))
        total_loss, hits, seen = 0.0, 0, 0
        for step, (x, y) in enumerate(_device_batches(net, images, labels, batch_size, order)):
            out = forward(net, x, train=True, rng_key=(seed, epoch, step))
            loss, error = mse_loss(out, y)
            net.backward(error)
            opt.step(net.gradients())
            total_loss += float(loss)
            hits += int(correct(out, y))
            seen += len(y)
        history.append({"epoch": epoch + 1, "loss": total_loss / seen, "accuracy": hits / seen})
        if log:
            log(f"ann epoch {epoch + 1}/{epochs}: loss {total_loss / seen:.4f} "
                f"train acc {100 * hits / seen:.2f} %")
    return history


def evaluate(net, images, labels, batch_size=256):
    """Accuracy of an ANN (single-step network) on host images."""
    hits = 0
    for x, y in _device_batches(net, images, labels, batch_size):
        hits += int(correct(forward(net, x), y))
    return hits / len(labels)


def evaluate_snn(net, images, labels, T, batch_size=64, seed=0):
    """Accuracy of a spiking network (converted or trained) rate-coding host images over T."""
    hits = 0
    for i, (x, y) in enumerate(_device_batches(net, images, labels, batch_size)):
        hits += int(correct(net.forward(x, T, rng_key=(seed, "eval", i)), y))
    return hits / len(labels)


# ------------------------------------------------------------------------------------------
# Conversion
# ------------------------------------------------------------------------------------------

def activation_scales(ann, images, percentile=99.9, batch_size=256, limit=None):
    """lambda per ReLU layer: the ``percentile``-th percentile of its positive activations on
    ``images`` (host, uint8 or float in [0, 1]); 100 gives the maximum."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    images = images if limit is None else images[:limit]
    values = {layer.name: [] for layer in ann.all_layers() if isinstance(layer, ReLU)}

    def collect(layer, x):
        """The positive activations of a ReLU are the positive values of its input."""
        if isinstance(layer, ReLU):
            host = ann.backend.to_host(x).reshape(-1)
            values[layer.name].append(host[host > 0])

    with ann.observe(collect):
        for x, _ in _device_batches(ann, images, np.zeros(len(images), np.int64), batch_size):
            forward(ann, x)
    scales = {}
    for name, parts in values.items():
        allv = np.concatenate(parts) if parts else np.zeros(0)
        scales[name] = float(np.percentile(allv, percentile)) if allv.size else 1.0
        if scales[name] <= 0:
            scales[name] = 1.0
    return scales


class ScaledSkip(Passive):
    """A parameter-free skip (identity or subsample) times a constant: in a converted residual
    block the skip carries spikes of scale lambda_in into neurons of scale lambda_b."""

    def __init__(self, inner, factor, name=None):
        super().__init__(name or inner.name)
        self.inner, self.factor = inner, float(factor)

    def build(self, backend, in_shape):
        super().build(backend, in_shape)
        self.out_shape = self.inner.build(backend, in_shape)
        return self.out_shape

    def reset(self, batch_size, training=False, rng=None, T=None):
        super().reset(batch_size, training, rng, T)
        self.inner.reset(batch_size, training, rng, T)

    def forward(self, x, rows=ALL):
        out = self.inner.forward(x, rows)
        return out * self.factor if self.factor != 1.0 else out

    def synapse_fanout(self, xp):
        """The inner skip's: each spike adds the factor into one membrane (one SOP)."""
        return self.inner.synapse_fanout(xp)


def _fresh(layer):
    """A copy of an unbuilt-or-built layer with its own (empty) parameter dicts, so building the
    converted network cannot overwrite the ANN's weights."""
    new = copy.copy(layer)
    new.params, new.grads = {}, {}
    return new


class _Converter:
    """The walk of :func:`convert` over the ANN's layers: each layer's ``convert_scales`` calls
    one method here, which appends its spiking counterpart and scales the weights feeding it."""

    def __init__(self, params, scales, reset):
        self.params, self.scales, self.reset = params, scales, reset
        self.layers, self.new_params = [], {}
        self.current = 1.0                          # lambda of the spikes flowing in
        self.pending = None                         # the weighted layer feeding the next ReLU

    def scaled(self, name, factor):
        self.new_params[f"{name}.weight"] = self.params[f"{name}.weight"] * factor

    def weighted(self, layer):
        self.pending = layer
        self.layers.append(_fresh(layer))

    def neurons(self, layer):
        lam = self.scales[layer.name]
        self.scaled(self.pending.name, self.current / lam)
        self.current = lam
        self.layers.append(IFSubtract(1.0, self.reset, name=layer.name))

    def output(self, layer):
        self.scaled(layer.name, self.current)
        self.layers.append(Output(layer.weight_shape[1], layer.weight_shape[0], leak=1.0, name=layer.name))

    def block(self, layer):
        lam_a, lam_b = self.scales[layer.lif_a.name], self.scales[layer.lif_b.name]
        c_out, c_in = layer.conv_a.weight_shape[:2]
        block = ResidualBlock(c_in, c_out, layer.conv_b.stride, layer.skip_kind, name=layer.name)
        block.lif_a = IFSubtract(1.0, self.reset, name=layer.lif_a.name)
        block.lif_b = IFSubtract(1.0, self.reset, name=layer.lif_b.name)
        self.scaled(layer.conv_a.name, self.current / lam_a)
        self.scaled(layer.conv_b.name, lam_a / lam_b)
        if layer.skip_kind == "conv":
            self.scaled(layer.skip.name, self.current / lam_b)
        else:
            block.skip = ScaledSkip(block.skip, self.current / lam_b)
        self.current = lam_b
        self.layers.append(block)

    def passes(self, layer):                        # AvgPool, Flatten, Identity: linear, keep lambda
        self.layers.append(_fresh(layer))

    spiking_pool = passes

    def drops(self, layer):                         # dropout: training only
        pass


def convert(ann, images, percentile=99.9, reset="subtract", scales=None, time_chunk=10,
            encoder=None, limit=2000, backend=None):
    """A spiking Network with the ANN's weights, normalised layer by layer (module docstring).

    ``images``: training images (host) used for the activation statistics (the first
    ``limit``). ``scales`` ({ReLU name: lambda}) skips the statistics. Returns
    ``(snn, scales)``; run the SNN with ``snn.forward(images, T)``.
    """
    if scales is None:
        scales = activation_scales(ann, images, percentile, limit=limit)
    backend = backend or ann.backend
    params = {k: ann.backend.to_host(v).astype(np.float64) for k, v in ann.parameters().items()}
    walk = _Converter(params, scales, reset)
    for layer in ann.layers:
        layer.convert_scales(walk)
    snn = Network(walk.layers, ann.input_shape, backend=backend, encoder=encoder or PoissonEncoder(1.0),
                  time_chunk=time_chunk, name=ann.name.replace("-ann", "") + "-converted")
    snn.load_parameters(walk.new_params)
    return snn, scales


__all__ = ["ReLU", "AvgPool", "IFSubtract", "build", "forward", "train", "evaluate",
           "evaluate_snn", "activation_scales", "convert", "ScaledSkip"]
