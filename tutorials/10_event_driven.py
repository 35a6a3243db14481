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
# # Tutorial 10 - Event-driven products: paying only for spikes
#
# A convolution's input current (eq 3.2) is $I_t = W * s_t$. Computed densely, im2col turns
# $s_t$ into a patch matrix and one matrix product multiplies every patch entry, spike or not.
# But $s_t$ is mostly zeros: hidden layers fire at 1-10 % per step. Event-driven execution
# visits only the spikes: each event adds its weight column into the neurons it reaches,
#
# $$ I_t[j] = \sum_{i:\, s_t[i] \neq 0} W[j, i]\, s_t[i], $$
#
# one synaptic operation (SOP) per event and target, as neuromorphic hardware does. Here we
# build that product by hand, check it against the dense one, and measure where it pays.
#
# **You will learn** how the sparse twin of im2col is built from a list of events, that it
# gives the same currents as the dense convolution, that the same product is a plain loop -
# for each spike, add its weights - which a compiler makes fast, and how the break-even
# density between the event path and the dense one depends on the layer and the kernel.
#
# **You need** tutorial 3 (the im2col convolution) and the idea of a sparse matrix (CSR).
#
# *Sources:* the thesis "Training Spiking Neural Networks" (P. Tsoukas, University of
# Thessaly, 2023), sections 3.1 and 4.2, which restates C. Lee, S. S. Sarwar, P. Panda,
# G. Srinivasan and K. Roy, "Enabling spike-based backpropagation for training deep neural
# network architectures", *Front. Neurosci.* 14:119, 2020,
# https://doi.org/10.3389/fnins.2020.00119. The equations are collected in `docs/algorithm.md`.
#
# Run it as a script (`python tutorials/10_event_driven.py`; `MINISNN_FAST=1` makes it smaller)
# or as a notebook (`jupytext --to notebook tutorials/10_event_driven.py`, see `tutorials/README.md`).

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse

from minisnn import events, ops
from minisnn.backend import blas_threads

compiled = events.compiled_kernels(np)          # minisnn.kernels (numba), or None without numba

FAST = os.environ.get("MINISNN_FAST", "0") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = HERE / "figures"
FIGURES.mkdir(exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Events reach output pixels through kernel taps
#
# Feature maps are channels-last, $(N, H, W, C)$. An input event at pixel $(y, x)$, channel
# $c$ reaches, through tap $(d_y, d_x)$ of a $k \times k$ kernel with stride $s$ and padding
# $p$, the output pixel
#
# $$ o_y = (y + p - d_y) / s, \qquad o_x = (x + p - d_x) / s $$
#
# when that lies inside the output map (and, for $s > 1$, is an integer). In the patch matrix
# of im2col, that is the entry (row = output pixel, column = (tap, channel)). Building the
# patch matrix from the events, tap by tap, gives its **sparse twin**: same rows, same columns,
# only the non-zero entries stored.

# %%
def sparse_patches(x, k, stride, padding):
    """The im2col patch matrix of x (N, H, W, C) as a CSR matrix, built from the events."""
    n, h, w, c = x.shape
    ho, wo = ops.conv_output_size(h, k, stride, padding), ops.conv_output_size(w, k, stride, padding)
    image, y, x_, channel = np.nonzero(x)                 # the event list
    value = x[image, y, x_, channel]
    rows, cols, data = [], [], []
    for dy in range(k):
        for dx in range(k):
            oy, ox = y + padding - dy, x_ + padding - dx
            ok = (oy >= 0) & (oy < ho * stride) & (ox >= 0) & (ox < wo * stride) & (oy % stride == 0) & (ox % stride == 0)
            rows.append((image[ok] * ho + oy[ok] // stride) * wo + ox[ok] // stride)
            cols.append((dy * k + dx) * c + channel[ok])
            data.append(value[ok])
    shape = (n * ho * wo, k * k * c)
    return scipy.sparse.coo_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape).tocsr()


x = (rng.random((2, 6, 6, 3)) < 0.1).astype(np.float64)           # 10 % of inputs spike
weight = rng.standard_normal((4, 3, 3, 3))
patches = sparse_patches(x, 3, 1, 1)
dense_patches = ops.im2col(np, x, 3, 1, 1)
assert np.array_equal(patches.toarray(), dense_patches)           # the same matrix, stored sparsely
print(f"patch matrix {dense_patches.shape}: {patches.nnz} non-zeros of {dense_patches.size} "
      f"({100 * patches.nnz / dense_patches.size:.1f} %)")

# %% [markdown]
# ## 2. The same currents
#
# Multiplying the sparse patch matrix by the weight matrix gives the convolution. The dense
# path (`ops.conv2d`) and minisnn's event path (`events.conv2d`, the same construction with
# fewer passes) agree with it up to float rounding (sums in another order), also for strided
# convolutions.

# %%
for k, stride, padding in [(3, 1, 1), (3, 2, 1), (5, 1, 2), (1, 2, 0)]:
    x = (rng.random((3, 9, 9, 4)) < 0.15) * rng.choice([1.0, -1.0], (3, 9, 9, 4))
    weight = rng.standard_normal((5, 4, k, k))
    dense = ops.conv2d(np, x, weight, stride, padding)
    by_hand = (sparse_patches(x, k, stride, padding) @ ops.weight_matrix(weight)).reshape(dense.shape)
    library = events.conv2d(np, x, weight, stride, padding)
    assert np.allclose(by_hand, dense, atol=1e-12) and np.allclose(library, dense, atol=1e-12)
    print(f"k={k} stride={stride} padding={padding}: max |event - dense| = {np.abs(library - dense).max():.1e}")

# %% [markdown]
# ## 3. The same product as a plain loop
#
# Behind the matrices, the event-driven convolution is one loop: **for each spike, add its
# weights** into the outputs it reaches. Written for one output pixel at a time (it gathers
# the spikes of its window, so each output is written once):

# %%
def conv_by_loop(x, weight, stride, padding):
    """The event-driven convolution as plain Python loops (eq 3.2)."""
    n, h, w, c_in = x.shape
    c_out, _, k, _ = weight.shape
    ho, wo = ops.conv_output_size(h, k, stride, padding), ops.conv_output_size(w, k, stride, padding)
    out = np.zeros((n, ho, wo, c_out))
    for image, y, x_, c in zip(*np.nonzero(x)):                  # for each spike...
        for dy in range(k):
            for dx in range(k):
                oy, ox = y + padding - dy, x_ + padding - dx       # the output it reaches via tap (dy, dx)
                if oy % stride == 0 and ox % stride == 0 and 0 <= oy // stride < ho and 0 <= ox // stride < wo:
                    out[image, oy // stride, ox // stride] += x[image, y, x_, c] * weight[:, c, dy, dx]  # ...add its weights
    return out


x = (rng.random((2, 7, 7, 3)) < 0.2) * rng.choice([1.0, -1.0], (2, 7, 7, 3))
weight = rng.standard_normal((4, 3, 3, 3))
assert np.allclose(conv_by_loop(x, weight, 2, 1), ops.conv2d(np, x, weight, 2, 1), atol=1e-12)

# %% [markdown]
# In Python each `+=` costs a microsecond of interpreter work, so this loop is only for
# reading. `minisnn.kernels.conv2d_events` is the same loop compiled by numba (`pip install
# "minisnn[fast]"`): per image it first lists each input pixel's spikes, then each output pixel
# adds the weight rows of the spikes in its window into a local current vector - a vectorised
# add of C_out numbers per spike and tap. `events.conv2d` runs it when numba is installed, and
# SciPy's sparse product otherwise; both give the dense currents up to float rounding.

# %%
print(f"event kernel in use: {events.event_kernel(np)}")
if compiled is not None:
    library = events.conv2d(np, x, weight, 2, 1)
    print(f"compiled loop: max |event - dense| = {np.abs(library - ops.conv2d(np, x, weight, 2, 1)).max():.1e}"
          f" (compiled or loaded once per process in {compiled.COMPILE_SECONDS:.1f} s)")

# %% [markdown]
# ## 4. Where the event path pays
#
# Dense work is fixed: $N H' W' \cdot k^2 C_{in} \cdot C_{out}$ multiply-adds, done by BLAS
# at tens of GFLOP/s per core. Event work is $\text{events} \cdot k^2 \cdot C_{out}$ SOPs.
# SciPy's sparse product runs them an order of magnitude slower per operation than BLAS (its
# inner loop is scalar, and building the sparse matrix costs index work per event); the
# compiled loop vectorises the add over the output channels and needs no matrix. So each wins
# only below a **break-even density**, the compiled loop at a far higher one. We time the three
# on one thread for a VGG-like layer.

# %%
n, size, c_in, c_out = (40, 16, 64, 128) if FAST else (160, 16, 128, 128)
densities = [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32]
weight = rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32)


def cpu_seconds(fn, reps=3):
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


timings = {"dense (im2col @ W)": [], "event, SciPy (CSR @ W)": []}
if compiled is not None:
    timings["event, compiled loop"] = []
with blas_threads(1):
    for rho in densities:
        x = (rng.random((n, size, size, c_in)) < rho).astype(np.float32)
        timings["dense (im2col @ W)"].append(cpu_seconds(lambda: ops.conv2d(np, x, weight, 1, 1)))
        timings["event, SciPy (CSR @ W)"].append(cpu_seconds(lambda: events.conv2d_sparse(np, x, weight, 1, 1)))
        if compiled is not None:
            timings["event, compiled loop"].append(cpu_seconds(lambda: events.conv2d(np, x, weight, 1, 1)))
dense_s = timings["dense (im2col @ W)"]
for i, rho in enumerate(densities):
    print(f"density {100 * rho:5.1f} %: " + ", ".join(f"{name} {1e3 * t[i]:6.1f} ms" for name, t in timings.items()))

# The dense product does not care about the spikes; the event products grow with them.
assert max(dense_s) / min(dense_s) < 3
assert timings["event, SciPy (CSR @ W)"][-1] > 4 * timings["event, SciPy (CSR @ W)"][0]

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for (name, t), marker in zip(timings.items(), "sod"):
    ax.plot([100 * d for d in densities], [1e3 * v for v in t], marker + "-", label=name)
ax.axvline(100 * events.break_even(np, c_out), color="grey", ls=":",
           label=f"minisnn's break-even for {events.event_kernel(np)} (auto)")
ax.set_xscale("log")
ax.set_xlabel("input density (% of inputs spiking per step)")
ax.set_ylabel("CPU ms per chunk")
ax.set_title(f"3x3 conv {c_in}->{c_out}, {size}x{size}, {n} images, one thread")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "10_break_even.png", dpi=110)

# %% [markdown]
# ## 5. Choosing per layer and per chunk
#
# `Network(execution="auto")` (the default; `--execution` on the command line) measures the
# density of each layer's input chunk and takes the event path below
# `events.break_even(xp, c_out)`, a rule fitted per kernel by `benchmarks/calibrate_events.py`
# on the machine at hand: wider layers amortise the per-event bookkeeping better, so their
# break-even is higher. Measured on a 2-core Xeon (one thread): SciPy's product breaks even
# at 3.4-7.7 % input density, the compiled loop at about 11-25 % (docs/results.md has the
# table). The density is counted on the whole batch, even when worker threads run slices of
# it, so every worker takes the same path and the result does not depend on their number.
# `"dense"` and `"event"` force a path, for teaching and benchmarking. The backward pass is
# unchanged: it runs once per iteration on accumulated counts.
#
# What this buys on a whole network depends on its rates: the first layers of VGG9 fire at
# 6-25 % per step; with SciPy they stay dense, with the compiled loop most of them run
# event-driven too. `benchmarks/bench_events.py` measures the whole training step, also on a
# trained checkpoint with real images (`--checkpoint`), whose rates random inputs do not show.

# %%
for c in (16, 64, 128, 256, 512):
    rules = {kernel: events.BREAK_EVEN[kernel] for kernel in ("scipy", "numba")}
    print(f"C_out = {c:3d}: event path below " + ", ".join(
        f"{100 * r['scale'] * c / (c + r['half']):.1f} % ({kernel})" for kernel, r in rules.items()))
