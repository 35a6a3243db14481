"""Spike activity, synaptic operations and an energy estimate (the thesis' analysis of sparse
event-based computation).

What is counted, per inference (one sample, T time steps), for every weighted layer
(Conv2d, Linear, the Output layer, residual 1x1 skips):

* **SOPs** (synaptic operations) of the SNN: every input spike (|s| = 1; the input layer's
  spikes are bipolar for signed data, both signs count) reaches ``fan-out`` synapses and
  costs one accumulate at each. The fan-out is exact: a fully connected layer has
  ``out_features``; a convolution ``C_out`` times the number of output positions whose
  window covers the input pixel, which is ``ceil``-ish ``k^2 / stride^2`` in the interior
  and less near the borders (padding). That number is computed once per layer as the
  transposed convolution of an all-ones map with an all-ones kernel
  (:func:`conv_fanout_map`), and

      SOPs = sum over input positions (h, w, c) of  count(h, w, c) * C_out * fanout(h, w)

  with count the input spikes of that position summed over T (averaged over samples).
* **MACs** of the same network as an ANN (ReLU, average pooling, one pass): dense
  multiply-accumulates, ``H' W' C_out C_in k^2`` for a convolution (padding taps included,
  as an accelerator computes them), ``in * out`` for a fully connected layer.
* **Energy** with 45 nm CMOS figures (Horowitz, ISSCC 2014, 32-bit float): 4.6 pJ per
  multiply-accumulate (3.7 pJ multiply + 0.9 pJ add), 0.9 pJ per accumulate:

      energy_snn_j = 0.9e-12 * SOPs          energy_ann_j = 4.6e-12 * MACs

Caveats, stated in every report (:data:`CAVEATS`):

1. The first layer's input is the Poisson rate code of analog pixels. Its spikes are
   counted like any others (a pixel of intensity x spikes about x T times); the encoding
   itself is not counted. Many papers instead charge the first layer as MACs on the analog
   image; ``first_layer_macs_j`` gives that alternative total. With direct input
   (:class:`~minisnn.encoding.DirectInput`, an encoder whose ``spikes`` is False) the first
   layer receives no spikes: it is charged its dense MACs once per inference (its input, so
   its output current, is the same at every step and is computed once and held), and
   ``energy_snn_j`` equals ``first_layer_macs_j``.
2. Memory traffic (fetching weights and membrane potentials, often the dominant cost on
   real hardware) is not counted, for either network.
3. Neuron updates (leak, compare, reset per neuron per step) and pooling are not in the two
   totals. They are reported separately: ``pool_ops`` (one accumulate per spike entering a
   spiking pool, fan-out 1) and ``neuron_updates`` (neurons x T per sample). The ANN's
   ReLUs and average pools are likewise not counted.
4. Parameter-free residual skips (identity, subsample) add each spike into one membrane:
   counted as SOPs with fan-out 1 (ResNets only).
"""
from __future__ import annotations

import math

import numpy as np

from . import ops
from .layers import Neurons

E_MAC_J = 4.6e-12   # 32-bit float multiply-accumulate, 45 nm (Horowitz 2014)
E_AC_J = 0.9e-12    # 32-bit float add (accumulate), 45 nm (Horowitz 2014)

CAVEATS = [
    "45 nm figures (Horowitz 2014): 4.6 pJ per 32-bit MAC (ANN), 0.9 pJ per accumulate (SNN SOP).",
    "First layer: with Poisson input its input spikes are counted as SOPs (encoding not "
    "counted) and first_layer_macs_j charges it as ANN MACs instead; with direct (analog) input "
    "it is charged its dense MACs once per inference (the same current at every step).",
    "Memory traffic (weights, membrane potentials) is not counted for either network.",
    "Neuron updates and pooling are not in the totals: pool_ops (one accumulate per spike "
    "entering a spiking pool) and neuron_updates (neurons x T) are reported separately; "
    "the ANN's ReLU and pooling are not counted either.",
    "ANN MACs are dense (padding taps included); SOPs use the exact fan-out (borders excluded).",
]


# ------------------------------------------------------------------------------------------
# Static counts
# ------------------------------------------------------------------------------------------

def conv_fanout_map(xp, in_hw, kernel, stride, padding, dtype=np.float64):
    """fanout[h, w]: the number of output positions whose k x k window (stride, zero padding)
    contains input pixel (h, w). The transposed convolution of all-ones with an all-ones
    kernel, so borders and strides are exact."""
    h, w = in_hw
    ho = ops.conv_output_size(h, kernel, stride, padding)
    wo = ops.conv_output_size(w, kernel, stride, padding)
    ones_out = xp.ones((1, ho, wo, 1), dtype=dtype)
    ones_kernel = xp.ones((1, 1, kernel, kernel), dtype=dtype)
    return ops.conv2d_backward_input(xp, ones_out, ones_kernel, (1, h, w, 1), stride, padding)[0, :, :, 0]


def synapse_fanout(layer, xp=np):
    """Per input position (layer.in_shape), how many synapses an input spike reaches (the
    layer's :meth:`~minisnn.layers.Layer.synapse_fanout`)."""
    fan = layer.synapse_fanout(xp)
    if fan is None:
        raise TypeError(f"no synapses in {layer!r}")
    return fan


def dense_macs(layer):
    """Multiply-accumulates of the layer as an ANN, per sample (padding taps included)."""
    return layer.dense_macs()


# ------------------------------------------------------------------------------------------
# Measuring a network on data
# ------------------------------------------------------------------------------------------

class ActivityMeter:
    """Accumulates input spike counts of the synaptic layers and spike counts of the neuron
    layers over the batches of a dataset; :meth:`report` turns them into per-sample numbers.

        meter = ActivityMeter(net)
        with meter:                 # hooks installed
            for x, y in batches:
                out = net.forward(x, T)
                meter.after_batch(out, y)
        report = meter.report()
    """

    def __init__(self, net):
        self.net = net
        self.xp = net.xp
        self.fanouts = {layer.name: layer.synapse_fanout(self.xp) for layer in net.all_layers()}
        self.synaptic = [layer for layer in net.all_layers()
                         if self.fanouts[layer.name] is not None or layer.pools_spikes]
        self.event_scale = _event_scales(net)
        self.input_counts = {}
        self.neuron_counts = {layer.name: 0.0 for layer in net.neuron_layers()}
        self.samples = 0
        self.hits = 0
        self.T = None
        self._context = None

    def __enter__(self):
        self._context = self.net.observe(self._count_input)
        self._context.__enter__()
        return self

    def _count_input(self, layer, x):
        """Add the layer's absolute input spike count, summed over time and batch (per position)."""
        if any(layer is s for s in self.synaptic):
            counts = self.xp.abs(x).sum(axis=(0, 1)).astype(self.xp.float64)
            if layer.name in self.input_counts:
                self.input_counts[layer.name] += counts
            else:
                self.input_counts[layer.name] = counts

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)

    def after_batch(self, output, labels=None):
        """Call after each ``net.forward``: collects the neuron layers' spike counts."""
        self.T = self.net.T
        self.samples += int(output.shape[0])
        for layer in self.net.neuron_layers():
            self.neuron_counts[layer.name] += float(layer.spike_count.sum())
        if labels is not None:
            self.hits += int((output.argmax(axis=1) == labels).sum())

    def report(self, model=None):
        return activity_report(self, model=model)


def activity_report(meter, model=None):
    """Per-sample spike rates, SOPs, MACs and energies (module docstring) as a plain dict:

    ``layers``: one entry per layer of ``net.all_layers()`` with ``name``, ``type``,
    ``spike_rate`` (spikes per neuron per step of a neuron layer, else None), ``input_rate``
    (input spikes per input position per step of a synaptic layer, else None), ``sops``
    (synaptic operations per sample; for a spiking pool: its ``pool_ops``), ``macs`` (dense
    ANN MACs per sample). Totals: ``sops``, ``macs``, ``pool_ops``, ``neuron_updates``,
    ``energy_snn_j`` (0.9 pJ x SOPs), ``energy_ann_j`` (4.6 pJ x MACs), ``energy_ratio``
    (ANN / SNN), ``first_layer_macs_j`` (SNN energy with the first layer charged as MACs),
    ``accuracy`` (when labels were given), ``T``, ``samples``, ``input`` ("spikes" or
    "analog"), ``caveats``. With analog input the first synaptic layer's row has ``sops`` 0 and
    ``analog_macs`` (its MACs, charged at 4.6 pJ in ``energy_snn_j``).
    """
    net = meter.net
    analog_input = not getattr(net.encoder, "spikes", True)
    n, T = max(meter.samples, 1), meter.T
    host = net.backend.to_host
    rows, sops_total, macs_total, pool_total, updates = [], 0.0, 0, 0.0, 0
    first_synaptic = None
    for layer in net.all_layers():
        row = {"name": layer.name, "type": type(layer).__name__, "spike_rate": None,
               "input_rate": None, "sops": 0.0, "macs": 0}
        if isinstance(layer, Neurons):
            size = math.prod(layer.out_shape)
            row["spike_rate"] = meter.neuron_counts[layer.name] / (n * T * size)
            updates += size * T
        if layer.pools_spikes:
            counts = meter.input_counts[layer.name]
            row["input_rate"] = float(host(counts.sum())) / (n * T * math.prod(layer.in_shape))
            row["pool_ops"] = float(host(counts.sum())) / n       # fan-out 1, not in the totals
            pool_total += row["pool_ops"]
        elif layer.name in meter.input_counts:
            row["macs"] = layer.dense_macs()
            macs_total += row["macs"]
            if first_synaptic is None and analog_input:
                row["analog_macs"] = row["macs"]       # no spikes in: MACs, once per inference
            else:
                counts = meter.input_counts[layer.name] * meter.event_scale.get(layer.name, 1.0)
                fan = meter.fanouts[layer.name]
                row["sops"] = float(host((counts * fan).sum())) / n
                row["input_rate"] = float(host(counts.sum())) / (n * T * math.prod(layer.in_shape))
                row["input_spikes"] = float(host(counts.sum())) / n
                sops_total += row["sops"]
            if first_synaptic is None:
                first_synaptic = row
        rows.append(row)
    energy_ann = E_MAC_J * macs_total
    energy_spikes = E_AC_J * sops_total
    first_macs = (energy_spikes - E_AC_J * first_synaptic["sops"] + E_MAC_J * first_synaptic["macs"]
                  if first_synaptic else energy_spikes)
    energy_snn = first_macs if analog_input else energy_spikes
    report = {
        "model": model or net.name, "T": T, "samples": meter.samples,
        "input": "analog" if analog_input else "spikes",
        "accuracy": (meter.hits / meter.samples) if meter.samples else None,
        "layers": rows,
        "spike_rate": {r["name"]: r["spike_rate"] for r in rows if r["spike_rate"] is not None},
        "sops": sops_total, "macs": macs_total, "pool_ops": pool_total, "neuron_updates": updates,
        "energy_snn_j": energy_snn, "energy_ann_j": energy_ann,
        "energy_ratio": energy_ann / energy_snn if energy_snn > 0 else None,
        "first_layer_macs_j": first_macs,
        "e_mac_j": E_MAC_J, "e_ac_j": E_AC_J, "caveats": CAVEATS,
    }
    return report


def _event_scales(net):
    """{layer name: events per unit of its input} where that is not 1: the layers fed (through
    reshapes and masks) by a plain, non-spiking AvgPool of a converted network, whose pooled value
    is (sum of the window's spikes) / 4 (each layer's :meth:`~minisnn.layers.Layer.spike_scale`)."""
    scales, scale = {}, 1.0
    for layer in net.layers:
        if scale != 1.0:
            scales.update((entry.name, scale) for entry in layer.entry_layers())
        scale = layer.spike_scale(scale)
    return scales


def measure(net, batches, T, seed=0, model=None, rng_key=None):
    """Run ``net`` over ``batches`` of (x, labels) device arrays (images, rate-coded by the
    network's encoder, or frames (T, B, ...)) and return :func:`activity_report`. Batch ``i``
    draws its input spikes with the key ``(*rng_key, i)``, by default ``(seed, "energy", i)``."""
    meter = ActivityMeter(net)
    rng_key = (seed, "energy") if rng_key is None else tuple(rng_key)
    with meter:
        for i, (x, y) in enumerate(batches):
            out = net.forward(x, None if x.ndim == len(net.input_shape) + 2 else T, rng_key=(*rng_key, i))
            meter.after_batch(out, y)
    return meter.report(model)


def format_table(report):
    """The per-layer table and the totals as text for the terminal."""
    lines = [f"{report['model']}: T={report['T']}, {report['samples']} samples"
             + (f", accuracy {100 * report['accuracy']:.2f} %" if report["accuracy"] is not None else ""),
             f"{'layer':<16}{'type':<16}{'spike rate':>11}{'input rate':>11}{'SOPs/sample':>14}{'MACs/sample':>14}"]
    for r in report["layers"]:
        rate = f"{r['spike_rate']:.4f}" if r["spike_rate"] is not None else "-"
        inrate = f"{r['input_rate']:.4f}" if r["input_rate"] is not None else "-"
        sops = r.get("pool_ops", r["sops"])
        sops_s = (f"({sops:,.0f})" if "pool_ops" in r else f"{sops:,.0f}") if sops else "-"
        macs = f"{r['macs']:,}" if r["macs"] else "-"
        lines.append(f"{r['name']:<16}{r['type']:<16}{rate:>11}{inrate:>11}{sops_s:>14}{macs:>14}")
    lines.append(f"{'total':<54}{report['sops']:>14,.0f}{report['macs']:>14,}")
    lines.append(f"pool accumulates (not in total): {report['pool_ops']:,.0f};  neuron updates: "
                 f"{report['neuron_updates']:,}")
    ratio = report["energy_ratio"]
    snn_terms = "0.9 pJ x SOPs" + (" + 4.6 pJ x first-layer MACs" if report.get("input") == "analog" else "")
    lines.append(f"energy per inference: SNN {report['energy_snn_j'] * 1e6:.3f} uJ ({snn_terms}), "
                 f"ANN {report['energy_ann_j'] * 1e6:.3f} uJ (4.6 pJ x MACs)"
                 + (f", ANN/SNN = {ratio:.2f}x" if ratio else ""))
    lines.append(f"SNN with the first layer charged as MACs: {report['first_layer_macs_j'] * 1e6:.3f} uJ")
    return "\n".join(lines)


__all__ = ["E_MAC_J", "E_AC_J", "CAVEATS", "conv_fanout_map", "synapse_fanout", "dense_macs",
           "ActivityMeter", "activity_report", "measure", "format_table"]
