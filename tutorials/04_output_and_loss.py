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
# # Tutorial 4 - Output, error and loss (eqs 3.5, 3.7-3.11)
#
# Training needs a number to minimise and its derivative with respect to the network's
# output. Then - the first step of back-propagation - the derivative of the output with
# respect to the last layer's *net input*. Everything here is checked numerically.
#
# **You will learn** the error, the loss and their derivatives, and why the output layer's
# gradient is e/T.
#
# **You need** tutorial 3's output layer; the chain rule.
#
# *Sources:* the thesis "Training Spiking Neural Networks" (P. Tsoukas, University of
# Thessaly, 2023), eqs 3.5 and 3.7-3.11, which restates C. Lee, S. S. Sarwar, P. Panda, G. Srinivasan and
# K. Roy, "Enabling spike-based backpropagation for training deep neural network
# architectures", *Front. Neurosci.* 14:119, 2020, https://doi.org/10.3389/fnins.2020.00119.
# The equations are collected in `docs/algorithm.md`.
#
# Run it as a script (`python tutorials/04_output_and_loss.py`; `MINISNN_FAST=1` makes it
# smaller) or as a
# notebook (`jupytext --to notebook tutorials/04_output_and_loss.py`, see `tutorials/README.md`).

# %%
import os
import sys
from pathlib import Path

import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minisnn import LIF, Backend, Linear, Network, Output, mse_loss
from minisnn.linearised import Linearised
from minisnn.loss import one_hot

FAST = os.environ.get("MINISNN_FAST", "0") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = HERE / "figures"
FIGURES.mkdir(exist_ok=True)
backend = Backend("cpu", "float64")
xp = backend.xp
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Error and loss (eqs 3.7-3.9)
#
# With the label as a one-hot vector $y$, the output error and the squared-error loss are
#
# $$e_j = \text{output}_j - y_j \quad(3.7), \qquad E = \tfrac12 \sum_j e_j^2 \quad(3.8),
#   \qquad \frac{\partial E}{\partial\, \text{output}_j} = e_j \quad(3.9).$$
#
# The factor $\tfrac12$ is there to cancel the 2 of the square. minisnn sums $E$ over the
# batch, as the authors' code does (their `MSELoss(size_average=False)` has no $\tfrac12$,
# so their learning rate $\eta$ corresponds to $2\eta$ here).

# %%
B, K = 4, 10
output = rng.normal(0.1, 0.3, (B, K))
labels = rng.integers(0, K, B)
E, e = mse_loss(output, labels)
assert np.allclose(e, output - one_hot(xp, labels, K, output.dtype))
assert np.isclose(float(E), 0.5 * np.sum(e ** 2))

h = 1e-6
numerical = np.zeros_like(output)
for idx in np.ndindex(output.shape):                      # centred differences, every entry
    plus, minus = output.copy(), output.copy()
    plus[idx] += h
    minus[idx] -= h
    numerical[idx] = (float(mse_loss(plus, labels)[0]) - float(mse_loss(minus, labels)[0])) / (2 * h)
err = np.abs(numerical - e).max()
print(f"E = {float(E):.4f}; max |dE/dout (finite differences) - e| = {err:.1e}")
assert err < 1e-8

# %% [markdown]
# ## 2. The output potential and the net input (eq 3.10)
#
# Define the net input of the output layer as the weighted sum of the accumulated input
# spike counts $x(T) = \sum_t s^{L-1}_t$ (eq 3.3):
#
# $$\text{net}^L(T) = W^L x(T).$$
#
# Without leak the output potential is exactly $U^L(T) = W^L \sum_t s_t = \text{net}^L(T)$.
# With leak (tutorial 3) $U^L(T) = W^L \sum_t \lambda^{T-t} s_t$: recent spikes count fully,
# early ones are discounted. The thesis treats the difference as noise, $V^L(T) \approx
# \text{net}^L(T)$ (3.10). How good is that? For input spikes at a steady rate $r$,
# $\sum_t \lambda^{T-t} s_t \approx r (1-\lambda^T)/(1-\lambda)$ while $x(T) \approx rT$, so
#
# $$U^L(T) \approx \kappa\, \text{net}^L(T), \qquad \kappa = \frac{1-\lambda^T}{T(1-\lambda)}
#   \quad (\kappa = 0.79 \text{ at } T = 50,\ 0.63 \text{ at } T = 100, \lambda = 0.99).$$
#
# So (3.10) holds up to a constant factor that does not depend on the sample - it only
# rescales the gradient, i.e. the learning rate. We measure it on a random network.

# %%
T = 50
B = 200 if FAST else 1000
net = Network([Linear(40, 30, name="fc1"), LIF(1.0, 0.99, name="lif1"), Output(30, 10, 0.99, name="output")],
              input_shape=(40,), backend=backend, init_gain=4.0, seed=3)
x = rng.random((B, 40))
out = net.forward(x, T, train=True, rng_key=(1,))
U_T = out * T                                            # the final potential U^L(T)
x_T = net.layers[-1].input_count                         # x(T) of the output layer
net_T = x_T @ net.parameters()["output.weight"].T        # net^L(T) = W^L x(T)
kappa = (1 - 0.99 ** T) / (T * (1 - 0.99))
slope = float(np.sum(U_T * net_T) / np.sum(net_T * net_T))
corr = float(np.corrcoef(U_T.ravel(), net_T.ravel())[0, 1])
print(f"U^L(T) vs net^L(T): slope {slope:.3f} (kappa = {kappa:.3f}), correlation {corr:.4f}")
assert abs(slope / kappa - 1) < 0.05 and corr > 0.98

fig, ax = plt.subplots(figsize=(4.5, 4))
ax.plot(net_T.ravel(), U_T.ravel(), ".", ms=2, alpha=0.5)
lims = np.array([net_T.min(), net_T.max()])
ax.plot(lims, lims, "k:", label="$U = $ net")
ax.plot(lims, kappa * lims, "C3-", label=rf"$U = \kappa$ net, $\kappa = {kappa:.2f}$")
ax.set_xlabel(r"net$^L(T) = W^L x(T)$")
ax.set_ylabel("$U^L(T)$")
ax.legend()
fig.tight_layout()
fig.savefig(FIGURES / "04_potential_vs_net.png", dpi=100)

# %% [markdown]
# ## 3. $\partial\,\text{output} / \partial\,\text{net} = 1/T$ (eq 3.11) and $\delta^L = e/T$ (3.23)
#
# With output $= U^L(T)/T \approx \text{net}^L(T)/T$, the derivative is $1/T$ and by the
# chain rule
#
# $$\delta^L \equiv \frac{\partial E}{\partial\,\text{net}^L} = \frac{e}{T}, \qquad
#   \frac{\partial E}{\partial W^L} = \delta^L\, x(T)^{\!\top} \quad (3.23\text{-}3.25).$$
#
# In the linearised network (`minisnn.linearised.Linearised`, the network's own layers with no
# leak and the neurons replaced by fixed gains) output $= \text{net}^L/T$ *exactly*, so the
# layers' backward must match finite differences of $E(W^L)$ to rounding error.

# %%
twin = Linearised(net, {layer.name: rng.uniform(0.5, 1.5, (8,) + layer.out_shape) for layer in net.neuron_layers()})
z0 = rng.uniform(0, 3, (8, 40))
y = rng.integers(0, 10, 8)


def loss():
    return float(mse_loss(twin.forward(z0, T, train=True), y)[0])


o = twin.forward(z0, T, train=True)
_, e = mse_loss(o, y)
twin.backward(e)
analytic = net.gradients()["output.weight"].copy()
assert np.allclose(analytic, (e / T).T @ twin.layers[-1].input_count)   # delta^L x(T)^T
W = net.parameters()["output.weight"]
numeric = np.zeros_like(W)
for idx in np.ndindex(W.shape):
    old = W[idx]
    W[idx] = old + 1e-6
    up = loss()
    W[idx] = old - 1e-6
    down = loss()
    W[idx] = old
    numeric[idx] = (up - down) / 2e-6
rel = np.abs(analytic - numeric).max() / np.abs(numeric).max()
print(f"linearised: dE/dW^L = (e/T) x(T)^T matches finite differences, relative error {rel:.1e}")
assert rel < 1e-6

# %% [markdown]
# In the real (leaky) network the exact derivative of the output with respect to $W^L$ is
# $\frac1T\sum_t \lambda^{T-t} s_t$, whereas (3.23-3.25) use $x(T)/T$. How aligned are the
# two weight gradients? (The authors' code makes the same choice: autograd passes the
# output layer's leak with gradient 1.)

# %%
out = net.forward(x, T, train=True, rng_key=(1,))
_, e = mse_loss(out, rng.integers(0, 10, B))
net.backward(e)
approx = net.gradients()["output.weight"]
leaky_sum = net.layers[-1].leaky_sum                     # sum_t lambda^(T-t) s_t
exact = (e / T).T @ leaky_sum
cos = float(np.sum(approx * exact) / (np.linalg.norm(approx) * np.linalg.norm(exact)))
ratio = float(np.linalg.norm(exact) / np.linalg.norm(approx))
print(f"leaky output layer: cosine(approximate, exact dE/dW^L) = {cos:.5f}, norm ratio {ratio:.3f}")
assert cos > 0.99 and abs(ratio / kappa - 1) < 0.05

# %% [markdown]
# **Summary.** $e = \text{output} - y$ and $\partial E/\partial\,\text{output} = e$ exactly;
# $U^L(T) \approx \kappa\,\text{net}^L(T)$ with a sample-independent $\kappa$, so
# $\delta^L = e/T$ gives the right *direction* (cosine $> 0.99$) with a scale absorbed into
# $\eta$. The hidden layers need $\partial a/\partial\,\text{net}$ of a spiking neuron -
# tutorial 5.
