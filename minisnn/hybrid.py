"""Hybrid training (Rathi, Srinivasan, Panda & Roy, ICLR 2020): convert a trained ANN into the
spiking model, then train the spiking network with the spike-based backward (docs/hybrid.md).

The ANN of a model (:func:`minisnn.ann.build`) has the spiking model's layer and weight names,
so its weights fit the spiking network as they are; only their scale must change. A ReLU
passes any activation, an LIF neuron at most one spike per step, so layer l's activations are
divided by lambda_l, a high percentile of that layer's positive ReLU activations on training
images (Rueckauer et al. 2017; the maximum, percentile 100, is Diehl et al. 2015's choice).
The threshold stays V_th = 1 and the weights carry the scales (weight normalisation, which is
threshold balancing with the thresholds moved into the weights):

    W_l <- W_l lambda_{l-1} / lambda_l                       (a layer feeding LIF neurons)
    W_L <- W_L lambda_{L-1} g,  g = T (1 - lambda) / (1 - lambda^T)     (the output layer)

lambda_{l-1} is the scale of the spikes coming in: 1 / encoding_scale for Poisson input (a
pixel x fires with probability scale |x| per step), 1 for direct input (the image itself is the
current). Then a neuron's rate approximates its ReLU activation / lambda_l (capped at one spike
per step), and W_l (lambda_{l-1} x rate_{l-1}) / lambda_l is the ReLU's input / lambda_l. A
spiking pool (IF, threshold theta = 0.75) fires at the window's average rate / theta, so each of
its spikes stands for theta times the scale coming in: lambda <- theta lambda. g makes the
leaky output layer (eq 3.5: U^L(T) / T with leak lambda per step) return the ANN's output for
a constant rate, so the loss starts where the ANN's stands; in a short window the deep layers
start late and the outputs come out smaller, which :func:`calibrate_output` (``--calibrate-output``)
fits afterwards with one factor on the output layer. In a residual block, conv_a is
scaled by lambda_in / lambda_a, conv_b by lambda_a / lambda_b and a 1x1 skip convolution by
lambda_in / lambda_b; a parameter-free skip (identity, subsample) cannot be scaled, so that
block keeps its input's scale, lambda_b = lambda_in, which is exact.

    scales = ann.activation_scales(ann_net, images, percentile)
    record = convert(ann_net, snn, images, percentile)      # loads the scaled weights into snn

``python -m minisnn.train --init-from ANN_CHECKPOINT`` on a spiking run calls
:func:`initialize_from_ann`; the run then trains the spiking network as any other.
"""
from __future__ import annotations

import numpy as np

from . import ann
from .backend import Backend
from .encoding import DirectInput, PoissonEncoder


class ConversionError(ValueError):
    """An ANN that cannot be converted into this spiking network (layout or input)."""


def input_scale(encoder):
    """lambda of the input: what one input spike (or unit of direct current) stands for."""
    if isinstance(encoder, DirectInput):
        return 1.0
    if isinstance(encoder, PoissonEncoder):
        return 1.0 / encoder.scale
    raise ConversionError(f"an ANN takes images; a spiking network with {encoder!r} cannot take its weights")


def output_gain(leak, T):
    """g = T (1 - lambda) / (1 - lambda^T): U^L(T) / T of a leaky output (eq 3.5) for a constant
    input rate r is W r / g, so scaling W by g returns the ANN's W r (1 when lambda = 1)."""
    return 1.0 if leak == 1 else T * (1 - leak) / (1 - leak ** T)


class _Scaling:
    """The walk of :func:`weight_factors` over the spiking network's layers: each layer's
    ``convert_scales`` calls one method here (module docstring)."""

    def __init__(self, scales, current, T):
        self.scales, self.current, self.T = scales, current, T   # current: lambda of the spikes flowing in
        self.pending = None                   # the weighted layer feeding the next neuron layer
        self.factors, self.used = {}, {}

    def scale_of(self, name):
        if name not in self.scales:
            raise ConversionError(f"the ANN has no ReLU layer {name!r} for the spiking layer of that name")
        return self.scales[name]

    def weighted(self, layer):
        self.pending = layer

    def neurons(self, layer):
        lam = self.used[layer.name] = self.scale_of(layer.name)
        self.factors[f"{self.pending.name}.weight"] = self.current / lam
        self.current, self.pending = lam, None

    def spiking_pool(self, layer):
        self.current *= layer.threshold

    def block(self, layer):
        lam_a = self.used[layer.lif_a.name] = self.scale_of(layer.lif_a.name)
        parametric = layer.skip_kind == "conv"
        lam_b = self.used[layer.lif_b.name] = self.scale_of(layer.lif_b.name) if parametric else self.current
        self.factors[f"{layer.conv_a.name}.weight"] = self.current / lam_a
        self.factors[f"{layer.conv_b.name}.weight"] = lam_a / lam_b
        if parametric:
            self.factors[f"{layer.skip.name}.weight"] = self.current / lam_b
        self.current = lam_b

    def output(self, layer):
        self.factors[f"{layer.name}.weight"] = self.current * output_gain(layer.leak, self.T)

    def passes(self, layer):
        pass

    drops = passes


def weight_factors(snn, scales, T):
    """{parameter name: factor} that turns the ANN's weights into ``snn``'s (module docstring),
    and the scales actually used (a residual block with a parameter-free skip keeps its input's).
    ``scales``: {neuron layer name: lambda} from :func:`ann.activation_scales`."""
    walk = _Scaling(scales, input_scale(snn.encoder), T)
    for layer in snn.layers:
        try:
            layer.convert_scales(walk)
        except NotImplementedError as exc:
            raise ConversionError(f"cannot convert layer {layer.name} ({type(layer).__name__}): {exc}") from None
    return walk.factors, walk.used


def convert(ann_net, snn, images, percentile=99.9, T=None, batch_size=256):
    """Load ``ann_net``'s weights, normalised layer by layer, into the spiking network ``snn``
    (same model and width). ``images``: host training images (as the run feeds them: floats in
    [0, 1] or standardised) for the activation statistics; ``T``: the time steps the output gain
    is set for (default ``snn.T``, else 1). Returns a record: the scales per layer and g."""
    scales = ann.activation_scales(ann_net, images, percentile, batch_size=batch_size)
    return load_converted(ann_net, snn, scales, T)


def load_converted(ann_net, snn, scales, T=None):
    """:func:`convert` with the scales ({neuron layer: lambda}) already measured."""
    T = int(T or snn.T or 1)
    factors, used = weight_factors(snn, scales, T)
    weights = {k: ann_net.backend.to_host(v).astype(np.float64) for k, v in ann_net.parameters().items()}
    if set(weights) != set(factors) or set(factors) != set(snn.parameters()):
        raise ConversionError(f"the ANN's weights {sorted(weights)} do not fit the spiking network's "
                              f"{sorted(snn.parameters())}")
    snn.load_parameters({k: w * factors[k] for k, w in weights.items()})
    return {"scales": used, "output_gain": output_gain(snn.layers[-1].leak, T), "input_scale": input_scale(snn.encoder)}


def calibrate_output(ann_net, snn, images, T, batch_size=64, seed=0):
    """Scale the output layer of the converted ``snn`` by s = <a, o> / <o, o>, the least-squares
    fit of its outputs o = U^L(T)/T (eq 3.5) to the ANN's outputs a on ``images`` (host, as
    :func:`convert` takes them). Weight normalisation keeps the ANN's ranking of the classes but
    not the outputs' size (spikes reach the deep layers late in a short window, and the largest
    activations are clipped), and the squared-error loss (eq 3.8) then spends the first steps of
    spike training on that size. Poisson inputs draw from the run's ``seed``. Returns the record: s
    and the images."""
    cross = power = 0.0                                  # the ANN and the spiking network share a backend
    for b, start in enumerate(range(0, len(images), batch_size)):
        x = snn.backend.to_device(images[start:start + batch_size].astype(snn.backend.dtype))
        a = ann.forward(ann_net, x)
        o = snn.forward(x, T, rng_key=(seed, "calibrate", b))
        cross, power = cross + float((a * o).sum()), power + float((o * o).sum())
    if not power > 0:
        raise ConversionError("no spike reached the output layer on the calibration images; lower the percentile")
    factor = cross / power
    if not factor > 0:
        raise ConversionError(f"the spiking outputs run against the ANN's on the calibration images (least-squares "
                              f"factor {factor:.3g}): the conversion failed; check the percentile and T")
    output = snn.layers[-1].name + "."
    snn.load_parameters({k: (v * factor if k.startswith(output) else v) for k, v in snn.parameters().items()})
    return {"factor": factor, "images": len(images)}


def calibration_images(train, count, seed):
    """``count`` images of the training iterator ``train`` (a seeded choice, key ``(seed,
    "convert")``), preprocessed as training batches are but not augmented: host floats."""
    from .data.preprocess import to_float

    n = train.num_samples
    idx = np.sort(Backend.host_rng(seed, "convert").permutation(n)[:min(count, n)])
    x = to_float(train.images[idx])
    return x if train.transform is None else train.transform(x)


def initialize_from_ann(net, source, config, standardize=None, download=True):
    """Convert the ANN checkpoint ``source`` into the spiking network ``net`` of a run with
    ``config`` (``--init-from``): statistics on ``config["convert_images"]`` of the run's training
    images, preprocessed with ``standardize`` (the ANN's own statistics on its dataset, else the
    run's). Returns the conversion's record for metrics.json and the checkpoints."""
    from . import models
    from .checkpoint import CheckpointError, restore
    from .data import DatasetError
    from .data.pipeline import load_run_data

    ann_net = models.from_config({**config, "network": "ann", "dropout": source.config.get("dropout")}, net.backend)
    restore(source, ann_net)
    try:
        data = load_run_data(config, net.backend, download=download, standardize=standardize, progress=False)
    except (ValueError, OSError) as exc:
        raise DatasetError(f"cannot load {config['dataset']} for the conversion of {source.path}: {exc}") from None
    images = calibration_images(data.train, config["convert_images"], config["seed"])
    try:
        record = convert(ann_net, net, images, config["convert_percentile"], T=config["timesteps"])
        if config["calibrate_output"]:
            record["output_calibration"] = calibrate_output(ann_net, net, images[:config["calibrate_output"]],
                                                            config["timesteps"], seed=config["seed"])
    except ConversionError as exc:
        raise CheckpointError(f"--init-from {source.path}: {exc}") from None
    return {"percentile": config["convert_percentile"], "images": len(images), "reset": config["reset"],
            "input": config["input"], "timesteps": config["timesteps"], **record}


__all__ = ["ConversionError", "calibrate_output", "convert", "load_converted", "weight_factors", "input_scale",
           "output_gain", "calibration_images", "initialize_from_ann"]
