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
# # Tutorial 1 - The leaky integrate-and-fire neuron (eqs 3.1-3.2)
#
# Every hidden unit of the networks in this series is a *leaky integrate-and-fire* (LIF)
# neuron. This tutorial builds it from its differential equation, simulates it with
# `minisnn.neurons`, and checks the simulation against a closed form for the firing rate.
#
# **You will learn** how an LIF neuron integrates, leaks, fires and resets; why its
# discrete-time recursion is exact; its firing period and the current below which it never
# fires.
#
# **You need** NumPy and a first-year idea of a differential equation; nothing about spiking
# networks.
#
# *Sources:* the thesis "Training Spiking Neural Networks" (P. Tsoukas, University of
# Thessaly, 2023), section 3.1, which restates C. Lee, S. S. Sarwar, P. Panda, G. Srinivasan and
# K. Roy, "Enabling spike-based backpropagation for training deep neural network
# architectures", *Front. Neurosci.* 14:119, 2020, https://doi.org/10.3389/fnins.2020.00119.
# The equations are collected in `docs/algorithm.md`.
#
# Run it as a script (`python tutorials/01_lif_neuron.py`; `MINISNN_FAST=1` makes it
# smaller) or as a
# notebook (`jupytext --to notebook tutorials/01_lif_neuron.py`, see `tutorials/README.md`).

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

from minisnn.neurons import NeuronState, integrate_and_fire

FAST = os.environ.get("MINISNN_FAST", "0") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = HERE / "figures"
FIGURES.mkdir(exist_ok=True)

# %% [markdown]
# ## 1. From the membrane equation to one line of code
#
# The membrane potential $V$ of an LIF neuron relaxes towards its input with time
# constant $\tau_m$ (eq 3.1):
#
# $$\tau_m \frac{dV}{dt} = -V + I(t).$$
#
# The input current is a weighted sum of incoming spike trains, each a sum of Dirac deltas
# at the spike times $t_i^k$ (eq 3.2): $I(t) = \tau_m \sum_i w_i \sum_k \delta(t - t_i^k)$
# (the factor $\tau_m$ is absorbed into the weights). Between input spikes $I = 0$ and the
# solution decays exponentially, $V(t + \Delta t) = e^{-\Delta t/\tau_m} V(t)$; at an input
# spike, integrating the delta makes $V$ jump by $w_i$. With spikes only on a grid of steps
# $\Delta t = 1$, sampling $V$ just after each step gives an **exact** recursion
#
# $$U_t = \lambda\, U'_{t-1} + \sum_i w_i s_{i,t}, \qquad \lambda = e^{-1/\tau_m},$$
#
# where $s_{i,t}\in\{0,1\}$ (or $\pm1$ for bipolar inputs) and $U'$ is the potential after a
# possible reset. The networks use $\lambda = 0.99$, i.e. $\tau_m = -1/\ln 0.99 \approx 99.5$
# steps. The neuron fires when its potential crosses the threshold, and resets **hard** to zero:
#
# $$o_t = [\,U_t > V_{th}\,], \qquad U'_t = U_t\,(1 - o_t).$$
#
# $\lambda = 1$ is the non-leaky integrate-and-fire (IF) neuron used by the pooling layers.
# `minisnn.neurons.integrate_and_fire` implements exactly these three lines; it takes the
# currents of a chunk of steps, shaped `(T, ...)`, and overwrites them with the spikes.

# %%
LEAK, V_TH = 0.99, 1.0
print(f"lambda = {LEAK}  ->  tau_m = -1/ln(lambda) = {-1 / math.log(LEAK):.1f} steps")


def simulate(currents, leak=LEAK, threshold=V_TH):
    """Run LIF neurons over the time axis 0 of ``currents``; return (potentials, spikes)."""
    currents = np.array(currents, dtype=np.float64)
    state = NeuronState(np, currents.shape[1:], np.float64, keep_trace=True)
    potentials = np.empty_like(currents)
    spikes = np.empty_like(currents)
    for t in range(currents.shape[0]):            # one step per call, to record U_t
        chunk = currents[t:t + 1].copy()
        integrate_and_fire(np, chunk, state, threshold, leak)
        spikes[t] = chunk[0]
        potentials[t] = state.potential           # U'_t, after the reset
    return potentials, spikes, state


# %% [markdown]
# A first check, against the recursion written out by hand:

# %%
rng = np.random.default_rng(0)
T = 100
inputs = rng.random((T, 5)) < 0.1                  # 5 input spike trains, rate 0.1
weights = np.array([0.3, 0.25, 0.2, 0.15, 0.35])
current = (inputs * weights).sum(axis=1, keepdims=True)   # sum_i w_i s_i,t  (eq 3.2)
potential, spikes, _ = simulate(current)

u, by_hand = 0.0, []
for t in range(T):
    u = LEAK * u + current[t, 0]
    fired = u > V_TH
    by_hand.append(fired)
    u = 0.0 if fired else u
assert np.array_equal(spikes[:, 0], np.array(by_hand, dtype=float)), "LIF recursion differs"
print("spikes:", int(spikes.sum()), "in", T, "steps; matches the hand-written recursion")

# %% [markdown]
# ## 2. Membrane potential and spikes (figure 3.1)
#
# Input spikes raise the potential in jumps, the leak pulls it back towards zero, and each
# crossing of $V_{th}$ emits a spike and resets the potential.

# %%
# U_t before the reset is lambda U'_{t-1} + I_t; draw it, then the drop to 0 where it fired.
before = LEAK * np.concatenate([[0.0], potential[:-1, 0]]) + current[:, 0]
tt, uu = [], []
for t in range(T):
    tt.append(t), uu.append(before[t])
    if spikes[t, 0]:
        tt.append(t), uu.append(0.0)
fig, axes = plt.subplots(3, 1, figsize=(8, 5), sharex=True,
                         gridspec_kw={"height_ratios": [1.2, 2, 0.6]})
axes[0].eventplot([np.flatnonzero(inputs[:, i]) for i in range(5)], colors="k", linelengths=0.7)
axes[0].set_ylabel("input")
axes[1].plot(tt, uu, color="C0", label="$U_t$")
axes[1].axhline(V_TH, color="C3", ls="--", label="$V_{th}$")
axes[1].set_ylabel("membrane")
axes[1].legend(loc="upper right")
axes[2].eventplot([np.flatnonzero(spikes[:, 0])], colors="C3")
axes[2].set_ylabel("output")
axes[2].set_xlabel("time step")
fig.suptitle("LIF neuron driven by 5 Poisson inputs, rate 0.1 (cf. thesis figure 3.1)")
fig.tight_layout()
fig.savefig(FIGURES / "01_membrane.png", dpi=100)

# %% [markdown]
# ## 3. Firing rate under a constant current: a closed form
#
# Feed a constant current $I$ per step. Starting from a reset ($U' = 0$), after $n$ steps
# the potential is a geometric series
#
# $$U_n = I\,(1 + \lambda + \dots + \lambda^{n-1}) = I\,\frac{1-\lambda^n}{1-\lambda}.$$
#
# The neuron fires at the first $n$ with $U_n > V_{th}$ and then starts again from zero, so
# its spike train is periodic with period
#
# $$n^*(I) = \min\{\, n \ge 1 : I\,(1-\lambda^n) > (1-\lambda)\,V_{th} \,\}
#          = \left\lfloor \frac{\ln\!\big(1 - (1-\lambda)V_{th}/I\big)}{\ln \lambda} \right\rfloor + 1 ,$$
#
# and over $T$ steps it emits exactly $\lfloor T / n^* \rfloor$ spikes. As $n\to\infty$ the
# potential saturates at $I/(1-\lambda)$: **for $I \le (1-\lambda)\,V_{th}$ the neuron never
# fires**, however long we wait. The IF neuron ($\lambda = 1$) has no such floor: its
# period is $\lfloor V_{th}/I\rfloor + 1$, rate $\approx I / V_{th}$.


# %%
def period(current, leak=LEAK, threshold=V_TH):
    """n*(I) from the geometric series; inf where the neuron never fires."""
    current = np.asarray(current, dtype=np.float64)
    if leak == 1.0:
        return np.floor(threshold / current) + 1
    c = (1 - leak) * threshold / current
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.floor(np.log1p(-c) / math.log(leak)) + 1
    return np.where(c < 1, n, np.inf)


T = 200 if FAST else 1000
currents = np.linspace(0.001, 0.2, 300 if FAST else 1200)
closed = {}
simulated = {}
for leak in (LEAK, 1.0):
    _, s, state = simulate(np.broadcast_to(currents, (T, currents.size)), leak=leak)
    simulated[leak] = state.count
    closed[leak] = np.floor(T / period(currents, leak))

# Exact means exact: every count must match, except for a current that sits on a period
# boundary to within rounding (there the last comparison could go either way in floating point).
for leak in closed:
    boundary = period(currents * (1 - 1e-9), leak) != period(currents * (1 + 1e-9), leak)
    mismatch = (simulated[leak] != closed[leak]) & ~boundary
    name = "LIF" if leak == LEAK else "IF"
    equal = int(np.sum(simulated[leak] == closed[leak]))
    print(f"{name}: spike counts equal to floor(T / n*) for {equal} of {currents.size} currents "
          f"(the others, if any, sit on a period boundary: {int(boundary.sum())} such currents)")
    assert not mismatch.any(), currents[mismatch]
floor = (1 - LEAK) * V_TH
silent = currents <= floor
assert np.all(simulated[LEAK][silent] == 0), "an LIF neuron fired below (1 - lambda) V_th"
print(f"no LIF spikes for I <= (1 - lambda) V_th = {floor:.3f}: {int(silent.sum())} currents checked")

# %% [markdown]
# The rate-current curve. The rate is $1/n^*$, a staircase: with a hard reset the
# overshoot above $V_{th}$ is thrown away at every spike, so even the IF neuron is linear,
# $a/T \approx I / V_{th}$ (the approximation eq 3.15 will use), only while $I \ll V_{th}$
# (we plot that range). The leak shifts the LIF curve right and
# bends it below the IF line. That gap is what the *leak compensation* of tutorial 5 tries to
# account for.

# %%
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(currents, simulated[1.0] / T, ".", ms=3, color="C1", label="IF, simulated")
ax.plot(currents, closed[1.0] / T, "-", lw=1, color="C1", alpha=0.6, label="IF, closed form")
ax.plot(currents, simulated[LEAK] / T, ".", ms=3, color="C0", label="LIF, simulated")
ax.plot(currents, closed[LEAK] / T, "-", lw=1, color="C0", alpha=0.6, label="LIF, closed form")
ax.axvline(floor, color="gray", ls=":", label=r"$(1-\lambda)V_{th}$")
ax.set_xlabel("constant input current $I$ per step")
ax.set_ylabel("firing rate (spikes / step)")
ax.legend()
fig.tight_layout()
fig.savefig(FIGURES / "01_rate_current.png", dpi=100)

# The leak costs input: at the same current the LIF neuron never fires more than the IF one.
assert np.all(simulated[LEAK] <= simulated[1.0])
print("figures written to", FIGURES)

# %% [markdown]
# **Summary.** $U_t = \lambda U'_{t-1} + \sum_i w_i s_{i,t}$, fire when $U_t > V_{th}$,
# reset to 0. Under a constant current the neuron is periodic with the period above, and it is
# silent below $I = (1-\lambda)V_{th}$. Next: where the input spikes come from (tutorial 2).
