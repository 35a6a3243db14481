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
# # Tutorial 6 - Back-propagation and the update (eqs 3.6, 3.23-3.26)
#
# Tutorials 4 and 5 gave the two local derivatives. Here we chain them: by hand on a tiny
# network, then verified by finite differences on the *linearised* network, and finally
# compared with the gradient the authors' PyTorch code computes by back-propagating
# through time - which we implement by hand, step by step, in NumPy.
#
# **You will learn** the whole backward pass by hand, how finite differences check it on the
# linearised network, and how it compares with the authors' gradient through time.
#
# **You need** tutorials 3-5; back-propagation in an ordinary network.
#
# *Sources:* the thesis "Training Spiking Neural Networks" (P. Tsoukas, University of
# Thessaly, 2023), eqs 3.6 and 3.23-3.26, which restates C. Lee, S. S. Sarwar, P. Panda, G. Srinivasan and
# K. Roy, "Enabling spike-based backpropagation for training deep neural network
# architectures", *Front. Neurosci.* 14:119, 2020, https://doi.org/10.3389/fnins.2020.00119.
# The equations are collected in `docs/algorithm.md`.
#
# Run it as a script (`python tutorials/06_backprop.py`; `MINISNN_FAST=1` makes it smaller)
# or as a
# notebook (`jupytext --to notebook tutorials/06_backprop.py`, see `tutorials/README.md`).

# %%
import os
import sys
from pathlib import Path

import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minisnn import (LIF, SGD, Backend, Conv2d, Flatten, Linear, Network, Output,
                     SpikingAvgPool, mse_loss, poisson_encode)
from minisnn.encoding import FrameInput, PoissonEncoder
from minisnn.linearised import Linearised
from minisnn.neurons import lif_derivative
from minisnn.testing import hand_bptt

FAST = os.environ.get("MINISNN_FAST", "0") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = HERE / "figures"
FIGURES.mkdir(exist_ok=True)
backend = Backend("cpu", "float64")
xp = backend.xp
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The backward pass, by hand
#
# The chain rule (3.6) for a weight $w^l_{ij}$ into neuron $j$ of layer $l$:
#
# $$\frac{\partial E}{\partial w^l_{ij}} = \frac{\partial E}{\partial a^l_j}\,
#   \frac{\partial a^l_j}{\partial\,\text{net}^l_j}\, \frac{\partial\,\text{net}^l_j}{\partial w^l_{ij}}.$$
#
# Every factor is now known: $\partial\,\text{net}^l_j / \partial w^l_{ij} = x^l_i(T)$, the input
# spike count (3.24); $\partial a / \partial\,\text{net} = a'(\text{net})$ from tutorial 5; and
# $\partial E/\partial a^l_j$ comes from the layer above. Writing $\delta^l = \partial E / \partial\,
# \text{net}^l$:
#
# $$\delta^L = \frac{e}{T} \ (3.23), \qquad
#   \delta^l = \big((W^{l+1})^{\!\top} \delta^{l+1}\big) \odot a'(\text{net}^l), \qquad
#   \frac{\partial E}{\partial W^l} = \delta^l\, x^l(T)^{\!\top} \ (3.25), \qquad
#   W^l \leftarrow W^l - \eta\, \frac{\partial E}{\partial W^l} \ (3.26).$$
#
# One pass, on counts and traces accumulated by the forward pass - nothing per time step.
# A 4-3-2 network, checked against `Network.backward`:

# %%
T, B = 20, 2
tiny = Network([Linear(4, 3, name="fc1"), LIF(1.0, 0.99, name="lif1"), Output(3, 2, 0.99, name="output")],
               input_shape=(4,), backend=backend, init_gain=6.0, seed=4)
x = rng.random((B, 4))
labels = np.array([0, 1])
out = tiny.forward(x, T, train=True, rng_key=(0,))
E, e = mse_loss(out, labels)
tiny.backward(e)

W1, WL = tiny.parameters()["fc1.weight"], tiny.parameters()["output.weight"]
x0 = tiny.layers[0].input_count                        # input spike counts x^1(T)
lif1 = tiny.layers[1]
x1 = lif1.spike_count                                   # a^1(T) = input counts of the output layer
delta_L = e / T                                         # 3.23
grad_WL = delta_L.T @ x1                                # 3.25
a_prime = lif_derivative(np, lif1.spike_count, lif1.state.trace, 1.0, 0.99)   # 3.22
delta_1 = (delta_L @ WL) * a_prime
grad_W1 = delta_1.T @ x0
print("spike counts of lif1:", x1.tolist())
print("a'(net):", np.round(a_prime, 4).tolist())
print("dE/dW1 by hand:\n", np.round(grad_W1, 4))   # the silent neuron's row is 0: a' = 0
assert np.all(grad_W1[x1.sum(axis=0) == 0] == 0)
assert np.allclose(grad_WL, tiny.gradients()["output.weight"], atol=1e-14)
assert np.allclose(grad_W1, tiny.gradients()["fc1.weight"], atol=1e-14)

W_before = W1.copy()
SGD(tiny.parameters(), lr=0.1).step(tiny.gradients())   # 3.26
assert np.allclose(W1, W_before - 0.1 * grad_W1)

# %% [markdown]
# ## 2. Finite differences on the linearised network
#
# $a'(\text{net})$ is an approximation - a spike count has no true derivative - so finite
# differences of the *spiking* loss cannot check it. What they can check exactly is
# everything else: the chain of transposes, pooling, flattening, the sums. Freeze each
# neuron layer's derivative at the values the spiking pass produced and replace the neurons
# by those gains, $z^l = g^l \odot (W^l z^{l-1})$, with $z^0 = x(T)$. That *linearised*
# network is an ordinary differentiable function of the weights, and the same backward code
# must give its exact gradient. A small conv net:

# %%
T, B = 20, 3
conv = Network([Conv2d(1, 3, 3, 1, 1, name="conv1"), LIF(1.0, 0.99, name="lif1"),
                SpikingAvgPool(0.75, name="pool1"), Flatten(name="flatten"),
                Linear(3 * 4 * 4, 12, name="fc1"), LIF(1.0, 0.99, name="lif2"),
                Output(12, 4, 0.99, name="output")],
               input_shape=(1, 8, 8), backend=backend, init_gain=5.0, seed=4)
images = rng.random((B, 1, 8, 8))
labels = rng.integers(0, 4, B)
conv.forward(images, T, train=True, rng_key=(1,))
z0 = conv.layers[0].input_count.transpose(0, 3, 1, 2).copy()     # x(T), back to (B, C, H, W)
twin = Linearised(conv, {layer.name: layer.derivative().copy() for layer in conv.neuron_layers()})
print("rates:", {k: round(v, 3) for k, v in conv.spike_rates().items()})


def linear_loss():
    return float(mse_loss(twin.forward(z0, T, train=True), labels)[0])


_, e = mse_loss(twin.forward(z0, T, train=True), labels)
twin.backward(e)
worst = 0.0
for name, W in conv.parameters().items():
    analytic = conv.gradients()[name]
    idx = rng.choice(W.size, size=min(20, W.size), replace=False)
    numeric = []
    for i in idx:
        old = W.flat[i]
        W.flat[i] = old + 1e-5
        up = linear_loss()
        W.flat[i] = old - 1e-5
        down = linear_loss()
        W.flat[i] = old
        numeric.append((up - down) / 2e-5)
    numeric = np.array(numeric)
    rel = np.max(np.abs(analytic.flat[idx] - numeric)) / max(np.abs(numeric).max(), 1e-12)
    worst = max(worst, rel)
    print(f"{name:15s} max relative error {rel:.1e}")
assert worst < 1e-6, worst

# %% [markdown]
# ## 3. How close is the aggregated gradient to the gradient through time?
#
# The authors' code (chan8972/Enabling_Spikebased_Backpropagation) does not use the
# aggregated form. It runs the network step by step in PyTorch, multiplies the gradient of
# *every time step's* spike output by the same per-neuron factor $a'(\text{net})$, and lets
# autograd back-propagate through time. Reading their graph carefully (see
# `docs/algorithm.md`), the per-step semantics of one LIF layer are:
#
# * the spike $o_t = [U_t > V_{th}]$ passes gradient to $U_t$ only where it fired:
#   $\partial o_t / \partial U_t = o_t$ (times $a'$, which includes $1/V_{th}$);
# * the hard reset $U'_t = U_t - U_t o_t$ passes $1 - o_t$; the leak is applied *in value
#   only*, so $\partial U_{t+1} / \partial U'_t = 1$;
# * $U_t$ depends on $W$ through $W s_{t}$.
#
# Backwards in time, with $g_t = \partial E / \partial U_t$ and $g_{T+1} = 0$:
#
# $$g_t = o_t \odot a' \odot \frac{\partial E}{\partial o_t} + (1 - o_t) \odot g_{t+1}, \qquad
#   \frac{\partial E}{\partial W} = \sum_t g_t\, s_t^{\!\top}, \qquad
#   \frac{\partial E}{\partial s_t} = W^{\!\top} g_t.$$
#
# So every input step is credited to the *next spike* of the neuron, and inputs after its
# last spike get no credit at all (the reset cuts the path); the aggregated form credits the
# whole window, $x(T)$. For the output layer, $\partial E/\partial U^L_t = e/T$ at every step, and the
# two are identical. `minisnn.testing.hand_bptt` writes this BPTT out by hand, step by step in
# plain NumPy, for a fully connected SNN 784-200-100-10 (read it there: about thirty lines);
# we compare it with minisnn's gradient on a real batch.

# %%
B = 32 if FAST else 128
T = 30 if FAST else 50
try:
    from minisnn.data import DatasetError, load
    images, labels = load("mnist", "train")        # $MINISNN_DATA, else minisnn's default folder
    images = images[:B].reshape(B, -1).astype(np.float64) / 255
    labels = labels[:B]
    source = "MNIST"
except DatasetError as exc:                         # no data: a synthetic 10-class task
    print(f"{'=' * 78}\nMNIST NOT FOUND - this part uses a SYNTHETIC task (noisy prototypes); "
          f"its numbers say nothing about MNIST\n{exc}\n{'=' * 78}")
    prototypes = (rng.random((10, 784)) < 0.2).astype(np.float64)
    labels = rng.integers(0, 10, B)
    images = np.clip(prototypes[labels] + 0.2 * rng.random((B, 784)), 0, 1)
    source = "synthetic"

fc = Network([Linear(784, 200, name="fc1"), LIF(1.0, 0.99, name="lif1"),
              Linear(200, 100, name="fc2"), LIF(1.0, 0.99, name="lif2"),
              Output(100, 10, 0.99, name="output")],
             input_shape=(784,), backend=backend, seed=0)


def cosine(a, b):
    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare(net, step):
    spikes = poisson_encode(xp, images, T, backend.rng(0, "batch", step))      # (T, B, 784)
    net.encoder = FrameInput()                      # this pass takes the spike train as given
    out = net.forward(spikes, train=True)
    net.encoder = PoissonEncoder()
    _, e = mse_loss(out, labels)
    net.backward(e)
    ours = {k: v.copy() for k, v in net.gradients().items()}
    theirs, out_ref, (o1s, o2s) = hand_bptt(net, spikes, labels)
    # same forward: identical spikes, identical output
    assert np.array_equal(o1s.sum(0), net.layers[1].spike_count)
    assert np.array_equal(o2s.sum(0), net.layers[3].spike_count)
    assert np.allclose(out, out_ref, atol=1e-12)
    return ours, theirs, (o1s, o2s), spikes, e


ours, theirs, (o1s, o2s), spikes, e = compare(fc, 0)
print(f"{source} batch of {B}, T = {T}; rates", {k: round(v, 3) for k, v in fc.spike_rates().items()})

# %% [markdown]
# Before the comparison, a check that we understood the semantics. For the top hidden layer
# the incoming gradient $\partial E/\partial o^2_t$ is the same at every step, so BPTT's weight
# gradient must be the aggregated one with $x(T)$ replaced by the input count *up to each
# neuron's last spike*:
#
# $$\Big(\frac{\partial E}{\partial W^2}\Big)^{\text{BPTT}}_{j\cdot} = \delta^2_j\; x^2\big(t^{\text{last}}_j\big)^{\!\top}.$$

# %%
delta2 = ((e / T) @ fc.parameters()["output.weight"]) * fc.layers[3].derivative()   # (B, 100)
steps = np.arange(1, T + 1)[:, None, None]
last = np.max(np.where(o2s > 0, steps, 0), axis=0)                  # (B, 100), 0 = never fired
cum_in = np.cumsum(o1s, axis=0)                                     # x^2(t) for every t
x_upto = np.where(last[..., None] > 0, cum_in[np.maximum(last - 1, 0), np.arange(B)[:, None]], 0)
expected = np.einsum("bj,bji->ji", delta2, x_upto)
assert np.allclose(theirs["fc2.weight"], expected, atol=1e-12)
print("top hidden layer: BPTT == delta x(last spike), as derived")

# %%
results = {}
for name in ("fc1.weight", "fc2.weight", "output.weight"):
    results[name] = (cosine(ours[name], theirs[name]),
                     float(np.linalg.norm(ours[name]) / np.linalg.norm(theirs[name])))
    print(f"{name:14s} cosine(aggregated, BPTT) = {results[name][0]:.4f}   norm ratio {results[name][1]:.3f}")
assert results["output.weight"][0] > 1 - 1e-12                    # identical for the output layer
assert results["fc2.weight"][0] > 0.9 and results["fc1.weight"][0] > 0.8, results

# %% [markdown]
# And after some training (minisnn's own SGD, 59 steps on this one batch, 15 in fast mode:
# enough for the network to fit it), to see whether the two stay aligned once the network
# has learned something:

# %%
opt = SGD(fc.parameters(), lr=0.64 / B)                # E is summed over the batch: lr ~ 1/B
for step in range(1, 16 if FAST else 60):
    out = fc.forward(images, T, train=True, rng_key=(step,))
    _, e = mse_loss(out, labels)
    fc.backward(e)
    opt.step(fc.gradients())
ours, theirs, *_ = compare(fc, 999)
trained = {name: cosine(ours[name], theirs[name]) for name in ours}
print("after training:", {k: round(v, 4) for k, v in trained.items()})
assert trained["fc2.weight"] > 0.9 and trained["fc1.weight"] > 0.8, trained

fig, ax = plt.subplots(figsize=(5, 3.5))
names = list(results)
ax.bar(np.arange(3) - 0.2, [results[n][0] for n in names], 0.4, label="at initialisation")
ax.bar(np.arange(3) + 0.2, [trained[n] for n in names], 0.4, label="after training")
ax.set_xticks(range(3), [n.split(".")[0] for n in names])
ax.set_ylim(0.5, 1.01)
ax.set_ylabel("cosine similarity")
ax.set_title(f"aggregated vs BPTT gradient ({source}, T = {T})")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)   # below: hides no bar
fig.tight_layout()
fig.savefig(FIGURES / "06_cosine.png", dpi=100)

# %% [markdown]
# **Summary.** The backward pass is three lines per layer, on accumulated statistics; the
# linearised network confirms the chain exactly. Against the authors' back-propagation
# through time, the output layer's gradient is identical, and the hidden layers' point in
# nearly the same direction: the difference is only the credit BPTT denies to inputs that
# arrive after a neuron's last spike. The aggregated form costs one pass instead of $T$ and
# needs no memory per time step.
