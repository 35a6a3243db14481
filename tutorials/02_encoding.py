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
# # Tutorial 2 - Rate coding the input (sections 4.1.3 and 4.1.5)
#
# An SNN consumes spikes, so each image becomes a spike train of $T$ steps. The thesis uses
# **Poisson rate coding**: at every step and every pixel draw $u \sim U(0,1)$ and emit
#
# $$s_t = \operatorname{sign}(x)\,[\,c\,|x| > u\,],$$
#
# a spike of the pixel's sign with probability $p = \min(1, c|x|)$. Standardised colour
# images have negative values, hence *bipolar* spikes $\pm 1$. The scale $c$ is a choice:
# the thesis compares the raw intensity ($c = 1$, minisnn's default); the authors' MNIST code
# compares $|x|/2$ ($c = 1/2$). This tutorial measures how well $T$ steps carry $x$.
#
# **You will learn** how an image becomes a Poisson spike train, how its error falls with T,
# and how much of a pixel T steps really carry.
#
# **You need** tutorial 1's spikes; basic probability (Bernoulli trials, variance).
#
# *Sources:* the thesis "Training Spiking Neural Networks" (P. Tsoukas, University of
# Thessaly, 2023), sections 4.1.3 and 4.1.5, which restates C. Lee, S. S. Sarwar, P. Panda, G. Srinivasan and
# K. Roy, "Enabling spike-based backpropagation for training deep neural network
# architectures", *Front. Neurosci.* 14:119, 2020, https://doi.org/10.3389/fnins.2020.00119.
# The equations are collected in `docs/algorithm.md`.
#
# Run it as a script (`python tutorials/02_encoding.py`; `MINISNN_FAST=1` makes it smaller)
# or as a
# notebook (`jupytext --to notebook tutorials/02_encoding.py`, see `tutorials/README.md`).

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

from minisnn import Backend, PoissonEncoder, poisson_encode

FAST = os.environ.get("MINISNN_FAST", "0") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = HERE / "figures"
FIGURES.mkdir(exist_ok=True)
backend = Backend("cpu", "float64")
xp = backend.xp

# %% [markdown]
# ## 1. Bipolar spikes and their mean
#
# With $p = |x| \le 1$, $\mathbb E[s_t] = \operatorname{sign}(x)\,|x| = x$: the spike train is an
# unbiased code of the value, and the count $\sum_t s_t$ over $T$ steps estimates $T x$.

# %%
x = xp.asarray([[-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 0.9, 1.0]])
T = 2000 if FAST else 20000
spikes = poisson_encode(xp, x, T, backend.rng(0, "demo"))
print("spike values:", np.unique(spikes))
rates = spikes.mean(axis=0)[0]
for value, rate in zip(x[0], rates):
    print(f"x = {value:+.2f}   mean spike = {rate:+.3f}")
assert set(np.unique(spikes)) <= {-1.0, 0.0, 1.0}
assert np.all(np.abs(rates - x[0]) < 4 * np.sqrt(0.25 / T) + 1e-12), "encoding is biased"
assert spikes[:, 0, 3].sum() == 0 and np.all(spikes[:, 0, 0] == -1) and np.all(spikes[:, 0, 7] == 1)

# The scale c: the authors' MNIST choice halves every rate.
half = PoissonEncoder(scale=0.5)
half_rates = half.encode(xp, half.prepare(xp, x), T, backend.rng(1, "demo")).mean(axis=0)[0]
assert np.all(np.abs(half_rates - 0.5 * x[0]) < 4 * np.sqrt(0.25 / T))
print("scale 0.5 rates:", np.round(half_rates, 3))

# %% [markdown]
# ## 2. The estimate's error shrinks like $1/\sqrt{T}$
#
# The count of a pixel with firing probability $p$ is Binomial$(T, p)$, so the rate estimate
# $\hat p = \frac1T\sum_t |s_t|$ has
#
# $$\operatorname{SE}(\hat p) = \sqrt{\frac{p(1-p)}{T}} \le \frac{1}{2\sqrt T}.$$
#
# Quadrupling $T$ halves the error. We measure it over many independent trains.

# %%
Ts = np.array([5, 10, 20, 50, 100, 200, 500] + ([] if FAST else [1000, 2000]))
p = 0.5
trials = 2000 if FAST else 20000
measured = []
for steps in Ts:
    train = poisson_encode(xp, xp.full((trials,), p), int(steps), backend.rng(2, "se", int(steps)))
    measured.append(float(backend.to_host(train.mean(axis=0)).std()))
measured = np.array(measured)
theory = np.sqrt(p * (1 - p) / Ts)
slope = np.polyfit(np.log(Ts), np.log(measured), 1)[0]
for steps, m, th in zip(Ts, measured, theory):
    print(f"T = {steps:5d}: SE measured {m:.4f}, theory {th:.4f}")
print(f"log-log slope {slope:.3f} (theory -0.5)")
assert abs(slope + 0.5) < 0.05, slope
assert np.all(np.abs(measured / theory - 1) < 0.1), measured / theory

# %%
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(Ts, measured, "o", label=r"measured SE of $\hat p$ ($p = 0.5$)")
ax.loglog(Ts, theory, "-", label=r"$\sqrt{p(1-p)/T}$")
ax.axhline(1 / 256, color="C3", ls="--", label="8-bit step 1/256")
ax.set_xlabel("time steps $T$")
ax.set_ylabel("standard error")
ax.legend()
fig.tight_layout()
fig.savefig(FIGURES / "02_rate_error.png", dpi=100)

# %% [markdown]
# ## 3. Do 100 steps carry an 8-bit pixel? Honestly: no, and they need not
#
# A count over $T$ steps takes only $T + 1$ values, so $T = 100$ can at best resolve
# $\log_2 101 \approx 6.7$ bits, and the noise is far larger than that resolution: at
# $p = 0.5$ the standard error is $0.05$, **13 times** the 8-bit step $1/256 \approx 0.0039$.
# Pushing the error below half a step, $1/512$, would need $T \ge 0.25 \cdot 512^2 = 65{,}536$
# steps. Per pixel, $T = 100$ carries roughly $\log_2(1/(2 \cdot 0.05)) \approx 3.3$ bits.
#
# Why the networks still work with $T \approx 50$-$100$ (section 4.1.5 reports learning
# from about 35 steps on and a plateau past 70):
#
# 1. **Neurons average over pixels.** A first-layer neuron sums $w_i s_{i,t}$ over its
#    receptive field ($5 \times 5$ in LeNet5); independent noise of $N$ inputs adds in
#    quadrature, so the *relative* error of its net input falls roughly as $1/\sqrt{N T}$.
# 2. **The images are nearly binary.** Most MNIST pixels are 0 or close to 1, where
#    $p(1-p) \approx 0$ and the code is almost noise-free.
#
# Both are measured below.

# %%
se100 = math.sqrt(0.25 / 100)
T_needed = math.ceil(0.25 * 512 ** 2)
print(f"SE at T=100, p=0.5: {se100:.4f} = {se100 * 256:.1f} x (1/256); T for SE < 1/512: {T_needed}")
assert se100 > 1 / 256 and T_needed == 65536

# A weighted sum over N inputs (a neuron's receptive field): relative error vs N at T = 100.
rng = np.random.default_rng(3)
T = 100
rel_errors = {}
for n_inputs in (1, 25, 100, 400):
    values = rng.uniform(0.2, 0.8, n_inputs)
    w = rng.uniform(0.5, 1.5, n_inputs)
    train = poisson_encode(xp, xp.asarray(np.broadcast_to(values, (500, n_inputs))), T,
                           backend.rng(4, "sum", n_inputs))
    net = backend.to_host(train.sum(axis=0)) @ w / T         # 500 estimates of w . x
    rel_errors[n_inputs] = float(net.std() / (w @ values))
    print(f"N = {n_inputs:4d} inputs: relative error of the net input {rel_errors[n_inputs]:.4f}")
assert rel_errors[400] < rel_errors[25] / 3 < rel_errors[1] / 3, rel_errors

# %% [markdown]
# How binary is MNIST? The files are found by the same rule as everywhere in minisnn:
# `$MINISNN_DATA`, else minisnn's default folder (see the README, "Data"). Without them this
# step is skipped, and the tutorial says so.

# %%
try:
    from minisnn.data import DatasetError, load
    images, _ = load("mnist", "test")            # $MINISNN_DATA, else minisnn's default folder
except DatasetError as exc:                      # no data: say so, go on
    print(f"{'=' * 78}\nMNIST NOT FOUND - skipping the MNIST pixel statistics\n{exc}\n{'=' * 78}")
else:
    pix = images[:2000].astype(np.float64) / 255
    var = pix * (1 - pix)
    print(f"MNIST: {np.mean(pix == 0):.1%} pixels are 0, {np.mean(pix > 0.9):.1%} above 0.9;"
          f" mean p(1-p) = {var.mean():.4f} vs 0.25 at p = 0.5")
    assert var.mean() < 0.05

# %% [markdown]
# **Summary.** A Poisson code is unbiased with error $\sqrt{p(1-p)/T}$. A hundred steps do
# not transmit 8 bits per pixel - about 3 - but neurons pool many pixels and MNIST is
# nearly binary, so what reaches the first hidden layer is accurate enough. Next: the
# forward pass of a convolutional SNN (tutorial 3).
