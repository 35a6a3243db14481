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
# # Tutorial 7 - Dropout over time and residual blocks (sections 3.3.2 and 3.2.2)
#
# Two pieces the deeper networks (VGG9, ResNet11) need: dropout that is held fixed over all
# time steps, and residual blocks whose skip path feeds a neuron's membrane.
#
# **You will learn** dropout held over all time steps, and residual blocks whose skip path
# feeds the membrane, forward and backward.
#
# **You need** tutorials 3 and 6; dropout and residual connections in ordinary networks.
#
# *Sources:* the thesis "Training Spiking Neural Networks" (P. Tsoukas, University of
# Thessaly, 2023), sections 3.2.2 and 3.3.2, which restates C. Lee, S. S. Sarwar, P. Panda, G. Srinivasan and
# K. Roy, "Enabling spike-based backpropagation for training deep neural network
# architectures", *Front. Neurosci.* 14:119, 2020, https://doi.org/10.3389/fnins.2020.00119.
# The equations are collected in `docs/algorithm.md`.
#
# Run it as a script (`python tutorials/07_dropout_and_residual.py`; `MINISNN_FAST=1` makes
# it smaller) or as a
# notebook (`jupytext --to notebook tutorials/07_dropout_and_residual.py`, see `tutorials/README.md`).

# %%
import os
import sys
from pathlib import Path

import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minisnn import (LIF, Backend, Dropout, Flatten, Linear, Network, Output, ResidualBlock,
                     mse_loss, poisson_encode)
from minisnn import ops
from minisnn.encoding import FrameInput
from minisnn.linearised import Linearised

FAST = os.environ.get("MINISNN_FAST", "0") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = HERE / "figures"
FIGURES.mkdir(exist_ok=True)
backend = Backend("cpu", "float64")
xp = backend.xp
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Dropout: one mask per iteration, held for all $T$ steps
#
# In an ANN, dropout removes each unit with probability $p$ for one training example. The
# SNN analogue (section 3.3.2) draws one Bernoulli mask per sample and unit **once per
# iteration** and applies it to the unit's spikes at *every* step; kept units are scaled by
# $1/(1-p)$ so that expected inputs are unchanged:
#
# $$\tilde s_t = s_t \odot \frac{m}{1-p}, \qquad m \sim \text{Bernoulli}(1-p) \text{ fixed for } t = 1..T.$$
#
# Since $\tilde x(T) = \sum_t \tilde s_t = x(T) \odot m/(1-p)$, the backward multiplies by the
# same mask: $\partial E / \partial s = \partial E/\partial \tilde s \odot m/(1-p)$.

# %%
p, T, B, n = 0.2, 20, 64, 500
drop = Dropout(p, name="drop")
drop.build(backend, (n,))
drop.reset(B, training=True, rng=backend.rng(0, "dropout"))
spikes = (rng.random((T, B, n)) < 0.3).astype(np.float64)
out = drop.forward(spikes.copy())
mask = drop.mask                                        # (B, n): 0 or 1/(1-p)
assert np.allclose(out, spikes * mask[None])            # the same mask at every step
assert set(np.unique(mask)) == {0.0, 1 / (1 - p)}
dropped = float(np.mean(mask == 0))
print(f"dropped fraction {dropped:.3f} (p = {p}); kept units scaled by {mask.max():.3f}")
assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / mask.size)
grad = rng.standard_normal((B, n))
assert np.allclose(drop.backward(grad), grad * mask)    # backward: the same mask
drop.reset(B, training=False)
assert drop.forward(spikes) is spikes                   # identity at evaluation

# %% [markdown]
# Inside a network: a dropped unit fires as usual, but none of its spikes reach the next
# layer, for the whole window.

# %%
net = Network([Linear(30, 40, name="fc1"), LIF(name="lif1"), Dropout(0.25, name="drop1"),
               Output(40, 5, name="output")], input_shape=(30,), backend=backend, init_gain=4.0)
x = rng.random((8, 30))
net.forward(x, T, train=True, rng_key=(3,))
fired, reached = net.layers[1].spike_count, net.layers[-1].input_count
mask = net.layers[2].mask
assert np.allclose(reached, fired * mask)
print(f"units that fired but were dropped: {int(np.sum((fired > 0) & (mask == 0)))} of {fired.size}")

# %% [markdown]
# **Why per iteration and not per step?** Per-step masks would be averaged away by the
# time integration. With per-step masks a unit's delivered count is a sum of $a$ spikes each
# kept independently, so its variance is $a\,p/(1-p)$; with one mask it is $a^2\,p/(1-p)$ -
# larger by a factor $a$, the spike count (summed over inputs, the deviation of the next
# layer's net input grows by $\sqrt{\mathbb E[a^2]/\mathbb E[a]}$). Only the held mask actually removes units, and so
# prevents co-adaptation the way ANN dropout does. Measured on the net input of a next
# layer:

# %%
counts = spikes.sum(axis=0)                                             # x(T), (B, n)
W = rng.standard_normal((n, 50)) / np.sqrt(n)
base = counts @ W
per_iter, per_step = [], []
for k in range(20):
    m_iter = (rng.random((B, n)) >= p) / (1 - p)
    m_step = (rng.random((T, B, n)) >= p) / (1 - p)
    per_iter.append(np.std((counts * m_iter) @ W - base))
    per_step.append(np.std((spikes * m_step).sum(axis=0) @ W - base))
ratio = np.mean(per_iter) / np.mean(per_step)
predicted = np.sqrt(np.mean(counts ** 2) / counts.mean())              # sqrt(E[a^2] / E[a])
print(f"deviation of the next layer's net input: held mask {np.mean(per_iter):.3f}, "
      f"per-step masks {np.mean(per_step):.3f}; ratio {ratio:.2f}, predicted {predicted:.2f}")
assert abs(ratio / predicted - 1) < 0.15

# %% [markdown]
# ## 2. Residual blocks (section 3.2.2)
#
# A residual block has two conv-LIF layers. The skip path carries the block's *input spikes*
# $x_t$ straight into the second layer's membrane:
#
# $$U^{a}_t = \lambda U^{a\prime}_{t-1} + W_a * x_t, \qquad
#   U^{b}_t = \lambda U^{b\prime}_{t-1} + W_b * o^{a}_t + S\,x_t,$$
#
# where $S$ is the identity when shapes agree and a $1\times1$ convolution (stride 1 or 2)
# when the channel count or size changes. Backward: the gradient reaching the block input is
# the sum over both paths,
#
# $$\delta_{x} = W_a^{\!\top}\!\big((W_b^{\!\top}\delta_b) \odot a'_a\big) + S^{\!\top}\delta_b,
#   \qquad \delta_b = \frac{\partial E}{\partial o^b} \odot a'_b,$$
#
# and $\partial E/\partial S = \delta_b\, x(T)^{\!\top}$ like any other weight. First, the forward
# against a step-by-step loop, for both kinds of skip:

# %%
T, B = (20 if FAST else 50), 2
for skip, c_in, c_out, stride in (("identity", 4, 4, 1), ("conv", 3, 6, 2)):
    block = ResidualBlock(c_in, c_out, stride=stride, skip=skip, name="block1")
    h_out = 8 // stride
    res = Network([block, Flatten(name="flatten"), Output(c_out * h_out * h_out, 3, name="output")],
                  input_shape=(c_in, 8, 8), backend=backend, encoder=FrameInput(), init_gain=3.0, seed=5)
    images = rng.random((B, c_in, 8, 8))
    train = poisson_encode(xp, images, T, backend.rng(1, skip))
    res.forward(train, train=True)
    P = res.parameters()
    Ua, Ub = np.zeros((B, 8, 8, c_out)), np.zeros((B, h_out, h_out, c_out))
    count_a, count_b = np.zeros_like(Ua), np.zeros_like(Ub)
    for t in range(T):
        x_t = train[t].transpose(0, 2, 3, 1)
        Ua = 0.99 * Ua + ops.conv2d(np, x_t, P["block1.conv_a.weight"], 1, 1)
        oa = (Ua > 1.0) * 1.0
        Ua *= 1 - oa
        skip_in = x_t if skip == "identity" else ops.conv2d(np, x_t, P["block1.skip.weight"], stride, 0)
        Ub = 0.99 * Ub + ops.conv2d(np, oa, P["block1.conv_b.weight"], stride, 1) + skip_in
        ob = (Ub > 1.0) * 1.0
        Ub *= 1 - ob
        count_a += oa
        count_b += ob
    assert np.array_equal(block.lif_a.spike_count, count_a)
    assert np.array_equal(block.lif_b.spike_count, count_b)
    print(f"skip={skip:8s}: forward == step loop; rates a {count_a.mean() / T:.3f}, b {count_b.mean() / T:.3f}")

# %% [markdown]
# Then the backward, on the linearised network (tutorial 6) by finite differences - every
# weight of the block including the $1\times1$ skip, and the input:

# %%
# + 0.1: no zero gains, so every path is tested
twin = Linearised(res, {layer.name: layer.derivative() + 0.1 for layer in res.neuron_layers()})
z0 = rng.uniform(0, 3, (B, 3, 8, 8))
labels = rng.integers(0, 3, B)


def loss():
    return float(mse_loss(twin.forward(z0, T, train=True), labels)[0])


_, e = mse_loss(twin.forward(z0, T, train=True), labels)
grad_input = twin.backward(e)
grads = {k: v.copy() for k, v in res.gradients().items()}
worst = {}
for name, W in list(res.parameters().items()) + [("input", z0)]:
    analytic = grad_input if name == "input" else grads[name]
    idx = rng.choice(W.size, size=min(15, W.size), replace=False)
    numeric = []
    for i in idx:
        old = W.flat[i]
        W.flat[i] = old + 1e-5
        up = loss()
        W.flat[i] = old - 1e-5
        down = loss()
        W.flat[i] = old
        numeric.append((up - down) / 2e-5)
    numeric = np.array(numeric)
    worst[name] = float(np.max(np.abs(analytic.flat[idx] - numeric)) / np.abs(numeric).max())
    print(f"{name:22s} relative error {worst[name]:.1e}")
assert max(worst.values()) < 1e-6, worst

# %% [markdown]
# **Why skips help a spiking network.** Each LIF layer fires only where its input is strong
# enough, so activity can fade layer after layer; the skip hands the block's input spikes
# to the second membrane directly, so a block can pass its input through even when its first
# layer is quiet, and gradients get a path around two derivatives $a'$ that may be zero.
# Measured with an identity block whose first conv is switched off ($W_a = 0$):

# %%
block = ResidualBlock(4, 4, stride=1, skip="identity", name="block1")
quiet = Network([block, Flatten(name="flatten"), Output(4 * 8 * 8, 3, name="output")],
                input_shape=(4, 8, 8), backend=backend, init_gain=2.0, seed=6)
quiet.parameters()["block1.conv_a.weight"][...] = 0
quiet.forward(rng.random((B, 4, 8, 8)), T, train=True, rng_key=(7,))
rates = quiet.spike_rates()
print("rates with W_a = 0:", {k: round(v, 3) for k, v in rates.items()})
assert rates["block1.lif_a"] == 0 and rates["block1.lif_b"] > 0.05
_, e = mse_loss(quiet.layers[-1].output(), np.zeros(B, dtype=np.int64))
g = quiet.backward(e)
assert np.abs(g).sum() > 0 and np.all(quiet.gradients()["block1.conv_a.weight"] == 0)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(list(rates), list(rates.values()))
ax.set_ylabel("spikes / neuron / step")
ax.set_title("identity residual block with $W_a = 0$:\nthe input passes via the skip")
fig.tight_layout()
fig.savefig(FIGURES / "07_residual_rates.png", dpi=100)

# %% [markdown]
# **Summary.** Dropout masks are drawn once per iteration and held for all $T$ steps (and
# reused by the backward); residual blocks add $S x_t$ into the second membrane, and their
# backward is the sum of both paths. Next: training a whole network (tutorial 8).
