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
# # Tutorial 3 - The forward pass of a convolutional SNN (eqs 3.3-3.5)
#
# A convolutional SNN (section 3.2.1) stacks: Poisson input - convolution + LIF - spiking
# average pooling - ... - fully connected + LIF - a non-spiking output layer. We check each
# piece of minisnn against a plain re-implementation, then the whole forward pass against
# a step-by-step loop written from the equations.
#
# **You will learn** the whole forward pass of a convolutional SNN: convolution by im2col,
# spiking average pooling, the non-spiking output layer, and minisnn's chunked execution.
#
# **You need** tutorials 1-2; what a convolution and average pooling do in an ordinary CNN.
#
# *Sources:* the thesis "Training Spiking Neural Networks" (P. Tsoukas, University of
# Thessaly, 2023), sections 3.2.1 and 3.3 (eqs 3.3-3.5), which restates C. Lee, S. S. Sarwar, P. Panda, G. Srinivasan and
# K. Roy, "Enabling spike-based backpropagation for training deep neural network
# architectures", *Front. Neurosci.* 14:119, 2020, https://doi.org/10.3389/fnins.2020.00119.
# The equations are collected in `docs/algorithm.md`.
#
# Run it as a script (`python tutorials/03_forward_pass.py`; `MINISNN_FAST=1` makes it
# smaller) or as a
# notebook (`jupytext --to notebook tutorials/03_forward_pass.py`, see `tutorials/README.md`).

# %%
import os
import sys
from pathlib import Path

import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minisnn import (LIF, Backend, Conv2d, Flatten, Network, Output, SpikingAvgPool,
                     poisson_encode)
from minisnn import ops
from minisnn.encoding import FrameInput

FAST = os.environ.get("MINISNN_FAST", "0") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = HERE / "figures"
FIGURES.mkdir(exist_ok=True)
backend = Backend("cpu", "float64")
xp = backend.xp
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Convolution
#
# A conv layer's input current at step $t$ is a convolution of the incoming spike maps,
# $I^{l}_t = W^l * s^{l-1}_t$ (eq 3.2 with shared weights). minisnn keeps feature maps
# channels-last, $(N, H, W, C)$, and computes the convolution as one matrix product of an
# *im2col* patch matrix with the reshaped weights, over all $T \cdot B$ images of a chunk.
# The definition, for output pixel $(i, j)$ and channel $o$, with zero padding $P$ and stride $S$:
#
# $$ (W * x)_{n,i,j,o} = \sum_{c}\sum_{d_y, d_x} W_{o,c,d_y,d_x}\; x^{\text{pad}}_{n,\,S i + d_y,\, S j + d_x,\, c}.$$


# %%
def conv_loop(x, w, stride, padding):
    """The definition above, as plain loops (slow, obviously right)."""
    n, h, wd, c = x.shape
    c_out, _, k, _ = w.shape
    xpad = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    ho = (h + 2 * padding - k) // stride + 1
    wo = (wd + 2 * padding - k) // stride + 1
    out = np.zeros((n, ho, wo, c_out))
    for i in range(ho):
        for j in range(wo):
            patch = xpad[:, stride * i:stride * i + k, stride * j:stride * j + k, :]  # (n,k,k,c)
            out[:, i, j, :] = np.einsum("nyxc,ocyx->no", patch, w)
    return out


for (k, stride, padding) in [(5, 1, 2), (3, 2, 1), (3, 1, 0), (1, 2, 0)]:
    x = (rng.random((2, 9, 9, 3)) < 0.3).astype(np.float64)
    w = rng.standard_normal((4, 3, k, k))
    fast, slow = ops.conv2d(np, x, w, stride, padding), conv_loop(x, w, stride, padding)
    err = np.abs(fast - slow).max()
    print(f"k={k} stride={stride} padding={padding}: output {fast.shape[1:]}, max |diff| = {err:.1e}")
    assert fast.shape == slow.shape and err < 1e-12

# %% [markdown]
# ## 2. Spiking average pooling (section 3.2.1, figure 3.3)
#
# A pooling neuron averages a $2\times2$ window of spikes with weights $1/4$ and integrates
# it with an IF neuron (no leak) of threshold $\theta = 0.75$, hard reset to 0:
#
# $$P_t = P'_{t-1} + \tfrac14 \textstyle\sum_{\text{window}} s_t, \qquad q_t = [P_t > \theta], \qquad P'_t = P_t (1 - q_t).$$
#
# If $k$ of the four inputs fire at every step, each step adds $k/4$ and the neuron fires at
# the first $n$ with $n k/4 > 0.75$, so its period is $\lfloor 3/k \rfloor + 1$:
# $k = 1 \to 4$, $k = 2 \to 2$, $k = 3 \to 2$ ($0.75$ is **not** above $0.75$), $k = 4 \to 1$.
# In general $P$ counts quarters: after $m$ input spikes since the last reset $P = m/4$, and
# $m/4 > 0.75 \iff m \ge 4$. So the pool neuron fires once **at least four** input spikes
# have arrived (below threshold the potential carries over, nothing is lost), and whatever
# exceeds four at that step is discarded by the hard reset (the $k = 3$ case loses 2 of 6).

# %%
pool = SpikingAvgPool(threshold=0.75, name="pool")
pool.build(backend, (2, 2, 1))
T = 12
windows = np.zeros((T, 4, 2, 2, 1))               # batch of 4 windows: k = 1, 2, 3, 4 active
for k in range(1, 5):
    windows[:, k - 1].reshape(T, 4)[:, :k] = 1
pool.reset(4, training=True)
out = pool.forward(windows.copy())[:, :, 0, 0, 0]  # (T, 4)
for k in range(1, 5):
    fired = np.flatnonzero(out[:, k - 1]) + 1
    print(f"k = {k} active inputs: fires at steps {fired.tolist()}")
    assert np.array_equal(fired, np.arange(1, T + 1)[np.arange(1, T + 1) % (3 // k + 1) == 0])

# %% [markdown]
# The same with Poisson inputs, drawn as in the thesis' figure 3.3. One detail of the
# implementation: `SpikingAvgPool` integrates the window's spike **count** against
# $4\theta = 3$ instead of the average against $\theta$ (the same spikes, one division fewer),
# so its stored potential is in spike-count units. Dividing it by 4 gives back $P'_t$ of the
# equation above, which is what we plot against $\theta = 0.75$.

# %%
T = 40
inputs = (rng.random((T, 1, 2, 2, 1)) < 0.25).astype(np.float64)
pool.reset(1, training=True)
potential, spikes = [], []
for t in range(T):                                 # one step at a time, to read P'_t
    s = pool.forward(inputs[t:t + 1].copy())
    spikes.append(s[0, 0, 0, 0, 0])
    potential.append(pool.state.potential[0, 0, 0, 0] / 4)    # count units -> P'_t
by_hand, p, p_before, p_after = [], 0.0, [], []
for t in range(T):
    p += inputs[t].mean()                          # P_t
    p_before.append(p)
    by_hand.append(float(p > 0.75))
    p = 0.0 if p > 0.75 else p                     # P'_t
    p_after.append(p)
assert np.array_equal(spikes, by_hand)
assert np.allclose(potential, p_after), "the plotted potential is not P'_t"
assert all((q > 0.75) == bool(o) for q, o in zip(p_before, spikes))   # spike <=> P_t above theta
fig, axes = plt.subplots(3, 1, figsize=(8, 4.5), sharex=True, gridspec_kw={"height_ratios": [1.2, 2, 0.6]})
axes[0].eventplot([np.flatnonzero(inputs[:, 0].reshape(T, 4)[:, i]) for i in range(4)], colors="k")
axes[0].set_ylabel("4 inputs")
axes[1].plot(range(T), p_before, "o", ms=3, color="C0", label="$P_t$ (before reset)")
axes[1].step(range(T), potential, where="post", color="C0", alpha=0.6, label="$P'_t$ (after reset)")
axes[1].axhline(0.75, color="C3", ls="--", label=r"$\theta = 0.75$")
axes[1].legend(loc="upper right")
axes[2].eventplot([np.flatnonzero(spikes)], colors="C3")
axes[2].set_ylabel("output")
axes[2].set_xlabel("time step")
fig.suptitle("Spiking 2x2 average pooling (cf. figure 3.3)")
fig.tight_layout()
fig.savefig(FIGURES / "03_pooling.png", dpi=100)

# %% [markdown]
# ## 3. The output layer (eq 3.5)
#
# The last layer never fires: its membrane integrates the weighted spikes of layer $L-1$
# with the same leak, and the network's output is the final potential per step,
#
# $$U^L_t = \lambda U^L_{t-1} + W^L s^{L-1}_t, \qquad \text{output} = \frac{U^L(T)}{T}
#   = \frac1T W^L \sum_{t=1}^{T} \lambda^{T-t} s^{L-1}_t.$$
#
# The right-hand form is what minisnn computes: since $W^L$ is linear, it keeps one leaky sum
# of the input spikes and multiplies by $W^L$ once at the end.

# %%
n_in, n_out, T, B = 6, 3, 30, 2
head = Network([Output(n_in, n_out, leak=0.99, name="output")], input_shape=(n_in,), backend=backend,
               encoder=FrameInput())                # the input is already a spike train
frames = (rng.random((T, B, n_in)) < 0.4).astype(np.float64)
out = head.forward(frames, train=False)
u = np.zeros((B, n_out))
W = head.parameters()["output.weight"]
for t in range(T):
    u = 0.99 * u + frames[t] @ W.T
print("output =", np.round(out, 4).tolist())
assert np.allclose(out, u / T, atol=1e-12)

# %% [markdown]
# ## 4. The whole forward pass, step by step
#
# Now a small network: conv $3\times3$ (4 channels) - LIF - pool - flatten - output, on
# $8 \times 8$ Poisson-coded images. minisnn runs it *layer at a time over chunks of steps*:
# each layer takes the spike train of the layer below for `time_chunk` steps at once. Because
# there is no feedback between layers, this is the same computation as the natural
# *step at a time* loop below, which we write directly from the equations.

# %%
T, B = 25 if FAST else 60, 3
net = Network([Conv2d(1, 4, 3, stride=1, padding=1, name="conv1"), LIF(1.0, 0.99, name="lif1"),
               SpikingAvgPool(0.75, name="pool1"), Flatten(name="flatten"),
               Output(4 * 4 * 4, 5, leak=0.99, name="output")],
              input_shape=(1, 8, 8), backend=backend, encoder=FrameInput(), init_gain=6.0, time_chunk=7, seed=1)
print(net.summary())
images = rng.random((B, 1, 8, 8))
spike_train = poisson_encode(xp, images, T, backend.rng(0, "input"))    # (T, B, 1, 8, 8)
output = net.forward(spike_train, train=True)

params = net.parameters()
w1, wL = params["conv1.weight"], params["output.weight"]
U1 = np.zeros((B, 8, 8, 4))
P = np.zeros((B, 4, 4, 4))
UL = np.zeros((B, 5))
count1, count_pool = np.zeros_like(U1), np.zeros_like(P)
for t in range(T):
    s0 = spike_train[t].transpose(0, 2, 3, 1)                          # to channels-last
    U1 = 0.99 * U1 + conv_loop(s0, w1, 1, 1)                           # eqs 3.1-3.2
    s1 = (U1 > 1.0).astype(float)
    U1 = U1 * (1 - s1)
    P = P + s1.reshape(B, 4, 2, 4, 2, 4).mean(axis=(2, 4))             # 2x2 average
    s2 = (P > 0.75).astype(float)
    P = P * (1 - s2)
    UL = 0.99 * UL + s2.reshape(B, -1) @ wL.T                          # eq 3.5
    count1 += s1
    count_pool += s2
rates = net.spike_rates()
print("spike rates:", {k: round(v, 4) for k, v in rates.items()})
assert np.array_equal(net.layers[1].spike_count, count1)
assert np.array_equal(net.layers[2].spike_count, count_pool)
assert np.allclose(output, UL / T, atol=1e-12)
assert 0 < rates["lif1"] < 1 and 0 < rates["pool1"] < 1
print("chunked layer-at-a-time forward == step-by-step loop: output", np.round(output[0], 4))

# %%
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
axes[0].imshow(images[0, 0], cmap="gray")
axes[0].set_title("input image")
axes[1].imshow(count1[0].sum(axis=-1) / T, cmap="viridis")
axes[1].set_title("conv1 LIF rate (sum over channels)")
axes[2].bar(range(5), output[0])
axes[2].set_title("output $U^L(T)/T$")
fig.tight_layout()
fig.savefig(FIGURES / "03_forward.png", dpi=100)

# %% [markdown]
# **Summary.** Convolution is im2col + one matrix product; pooling is an IF neuron on a
# $2\times2$ average with threshold $0.75$; the output is the leaky membrane of a non-firing
# layer divided by $T$. Next: what the output is compared with, and the first derivatives
# (tutorial 4).
