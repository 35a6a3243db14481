# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 9 - Sparsity: spike rates per layer over training
#
# The promise of an SNN is work proportional to spikes: a neuron that does not fire costs its
# targets nothing. How sparse are the layers of LeNet5, how does training change that, and
# what does it mean for the number of operations? We train as in tutorial 8 and record
# `Network.spike_rates()` - spikes per neuron per time step, per layer - after every batch,
# then count synaptic operations with `minisnn.energy`.
#
# **You will learn** how sparse each layer of LeNet5 fires during training and what that
# means for synaptic operations and energy.
#
# **You need** tutorial 8; the idea of a multiply-accumulate (MAC).
#
# *Sources:* the thesis "Training Spiking Neural Networks" (P. Tsoukas, University of
# Thessaly, 2023), sections 4.1.5 and 4.2, which restates C. Lee, S. S. Sarwar, P. Panda, G. Srinivasan and
# K. Roy, "Enabling spike-based backpropagation for training deep neural network
# architectures", *Front. Neurosci.* 14:119, 2020, https://doi.org/10.3389/fnins.2020.00119.
# The equations are collected in `docs/algorithm.md`.
#
# Run it as a script (`python tutorials/09_sparsity.py`; `MINISNN_FAST=1` makes it smaller)
# or as a
# notebook (`jupytext --to notebook tutorials/09_sparsity.py`, see `tutorials/README.md`).

# %%
import math
import os
import sys
from pathlib import Path

import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minisnn import SGD, Backend, correct, energy, models, mse_loss
from minisnn.data import BatchIterator, DatasetError, load, subset

FAST = os.environ.get("MINISNN_FAST", "0") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = HERE / "figures"
FIGURES.mkdir(exist_ok=True)
WIDTH, T, N_TRAIN, BATCH, EPOCHS = (0.5, 20, 768, 32, 1) if FAST else (1.0, 50, 6000, 64, 2)
backend = Backend("cpu", "float32")
xp = backend.xp

# %%
try:
    images, labels = load("mnist", "train")         # $MINISNN_DATA, else minisnn's default folder
    test_x, test_y = load("mnist", "test")
    SOURCE = "MNIST"
except DatasetError as exc:
    print(f"{'=' * 78}\nMNIST NOT FOUND - using a SYNTHETIC task instead (noisy prototypes); "
          f"the rates below say nothing about MNIST\n{exc}\n{'=' * 78}")
    rng = np.random.default_rng(0)
    protos = rng.random((10, 28, 28)) < 0.15
    labels = rng.integers(0, 10, N_TRAIN + 256)
    images = ((protos[labels] ^ (rng.random((labels.size, 28, 28)) < 0.05))[:, None] * 255).astype(np.uint8)
    images, labels, test_x, test_y = images[:N_TRAIN], labels[:N_TRAIN], images[N_TRAIN:], labels[N_TRAIN:]
    SOURCE = "synthetic"
images, labels = subset(images, labels, N_TRAIN, seed=1)
test_x, test_y = subset(test_x, test_y, 256, seed=1)
batches = BatchIterator(images, labels, BATCH, backend, seed=1)
probe = next(BatchIterator(test_x, test_y, 256, backend, shuffle=False).epoch(0))   # fixed test batch

net = models.build("lenet5", (1, 28, 28), 10, WIDTH, backend, seed=1)
opt = SGD(net.parameters(), lr=0.01 if FAST else 0.005, weight_decay=5e-4)

# %% [markdown]
# ## 1. Spike rates while learning
#
# The rate of layer $l$ is $r^l = \frac{1}{N_l\,T\,B}\sum a^l_j(T)$: the mean spike count per
# neuron divided by $T$. A rate of 0.05 means a neuron fires once every 20 steps on average.

# %%
report_before = energy.measure(net, [probe], T, seed=0, model="lenet5")
rates, accuracy = [], []
for epoch in range(EPOCHS):
    for b, (x, y) in enumerate(batches.epoch(epoch)):
        out = net.forward(x, T, train=True, rng_key=(1, "train", epoch, b))
        _, e = mse_loss(out, y)
        net.backward(e)
        opt.step(net.gradients())
        rates.append(net.spike_rates())
        accuracy.append(int(correct(out, y)) / len(y))
report_after = energy.measure(net, [probe], T, seed=0, model="lenet5")
names = list(rates[0])
print(f"{SOURCE}, {len(rates)} batches; batch accuracy {np.mean(accuracy[:5]):.2f} -> {np.mean(accuracy[-5:]):.2f}")
for name in names:
    print(f"{name:8s} rate at start {rates[0][name]:.4f}, at end {rates[-1][name]:.4f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for name in names:
    axes[0].plot([r[name] for r in rates], label=name)
axes[0].set_xlabel("training batch")
axes[0].set_ylabel("spikes / neuron / step")
axes[0].set_title("spike rate per layer during training")
axes[0].legend()
width = 0.4
pos = np.arange(len(names))
axes[1].bar(pos - width / 2, [report_before["spike_rate"][n] for n in names], width, label="before training")
axes[1].bar(pos + width / 2, [report_after["spike_rate"][n] for n in names], width, label="after training")
axes[1].set_xticks(pos, names)
axes[1].set_title("spike rates on a test batch (no dropout)")
axes[1].legend()
fig.tight_layout()
fig.savefig(FIGURES / "09_spike_rates.png", dpi=100)

# %% [markdown]
# Two things to check. The network is **sparse**: every layer's neurons are silent in the
# great majority of steps. And activity **thins with depth** among the LIF layers: each
# layer fires only where its weighted input crosses threshold.

# %%
end = rates[-1]
assert all(0 < end[n] < 0.25 for n in names), end
lif_layers = [n for n in names if n.startswith("lif")]
assert all(end[a] > end[b] for a, b in zip(lif_layers, lif_layers[1:])), end
silent = {layer.name: float(np.mean(backend.to_host(layer.spike_count).sum(axis=0) == 0))
          for layer in net.neuron_layers()}
print("fraction of neurons silent on the whole last batch:", {k: round(v, 3) for k, v in silent.items()})

# %% [markdown]
# A neuron that never fires gets no gradient ($a' = 0$, tutorial 5), so a silent neuron
# cannot learn its way back unless its inputs change. That is why the initialisation scale
# (and the learning rate) matter: too large a step can silence a layer for good.
#
# ## 2. What sparsity buys: synaptic operations
#
# An input spike to a layer costs one accumulate at each of the synapses it reaches (its
# fan-out): `fc` layers have fan-out = `out_features`, convolutions about $C_{out} k^2$ (fewer
# at borders). Over $T$ steps the synaptic operations (SOPs) of a layer are
#
# $$\text{SOPs} = \sum_{\text{inputs}} a_{\text{in}}(T) \cdot \text{fan-out}
#   = r_{\text{in}}\, T \cdot \text{MACs} \quad(\text{fc layer exactly}),$$
#
# where MACs $= \text{in}\times\text{out}$ are the multiply-accumulates of the same layer in a
# conventional network. So an SNN layer does fewer operations than its ANN twin only when
# $r_{\text{in}} T < 1$, and less *energy* when $r_{\text{in}} T < E_{MAC}/E_{AC} \approx 5$
# (45 nm figures; `minisnn.energy` states its caveats). Check the fc identity on the report:

# %%
rows = {r["name"]: r for r in report_after["layers"]}
for name in ("fc1", "output"):
    row = rows[name]
    predicted = row["input_rate"] * T * row["macs"]
    print(f"{name:7s} input rate {row['input_rate']:.4f}  SOPs {row['sops']:,.0f}  = r T MACs {predicted:,.0f}")
    assert math.isclose(row["sops"], predicted, rel_tol=1e-6)
# and by hand from the spike counts of the layer below the output layer:
fc_counts = backend.to_host(net.neuron_layers()[-1].spike_count)
assert math.isclose(rows["output"]["sops"], fc_counts.sum() / fc_counts.shape[0] * 10, rel_tol=1e-6)
print(f"total: SOPs {report_after['sops']:,.0f} vs ANN MACs {report_after['macs']:,}; "
      f"energy ratio ANN/SNN {report_after['energy_ratio']:.2f} (before training {report_before['energy_ratio']:.2f})")
for r in report_after["layers"]:
    if r["sops"] and r["macs"]:
        print(f"  {r['name']:8s} r_in T = {r['input_rate'] * T:.2f}   SOPs / MACs = {r['sops'] / r['macs']:.2f}")

# %% [markdown]
# **Reading the numbers.** With rates of a few per cent and $T$ in the tens, $r_{\text{in}}T$
# is of order 1: the SNN's operation count is comparable to the ANN's, and its energy
# advantage comes from accumulates being cheaper than multiply-accumulates - and shrinks as
# $T$ grows. Fewer time steps or sparser layers are the levers; the first layer, fed by
# dense Poisson-coded pixels, is usually the most expensive.
