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
# # Tutorial 8 - Training LeNet5 on MNIST, end to end
#
# Everything from tutorials 1-7, through the library's public API:
# `minisnn.data.load` reads the IDX files, `BatchIterator` makes seeded mini-batches,
# `minisnn.models.build("lenet5", ...)` builds table 4.2's network
# (conv 5x5 20 - pool - conv 5x5 50 - pool - fc 200 - output 10), and the loop is the five
# lines of every training step: forward, loss, backward, update.
#
# **Data.** The MNIST files are found by the same rule as everywhere in minisnn:
# `$MINISNN_DATA`, else minisnn's default folder (see the README, "Data"). When they are
# absent the tutorial says so loudly and trains on a *synthetic* stand-in (ten noisy
# prototype images), so it still runs top to bottom; its accuracy then says nothing about
# MNIST.
#
# **Size.** `MINISNN_FAST=1` trains a half-width LeNet5 with $T = 20$ on 1,024 images for
# one pass (well under a minute); the default trains the full-width network with the
# thesis' $T = 50$ on 6,000 images for two epochs (tens of minutes on a CPU). A command-line
# run of the same kind: `python -m minisnn.train --model lenet5 --data-dir <mnist folder>
# --limit-train 6000 --limit-test 2000 --epochs 2`; the thesis' result (99.5 %) needs 150
# epochs on all 60,000 images.
#
# **You will learn** how to train LeNet5 on MNIST with the library's public API: data,
# batches, model, loss, backward, update, schedule.
#
# **You need** tutorials 1-7 (or the README's library example); about half a minute in fast
# mode.
#
# *Sources:* the thesis "Training Spiking Neural Networks" (P. Tsoukas, University of
# Thessaly, 2023), chapter 4 (tables 4.2, 4.5), which restates C. Lee, S. S. Sarwar, P. Panda, G. Srinivasan and
# K. Roy, "Enabling spike-based backpropagation for training deep neural network
# architectures", *Front. Neurosci.* 14:119, 2020, https://doi.org/10.3389/fnins.2020.00119.
# The equations are collected in `docs/algorithm.md`.
#
# Run it as a script (`python tutorials/08_train_lenet5.py`; `MINISNN_FAST=1` makes it
# smaller) or as a
# notebook (`jupytext --to notebook tutorials/08_train_lenet5.py`, see `tutorials/README.md`).

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

from minisnn import SGD, Backend, MultiStepLR, correct, models, mse_loss
from minisnn.data import BatchIterator, DatasetError, load, subset

FAST = os.environ.get("MINISNN_FAST", "0") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = HERE / "figures"
FIGURES.mkdir(exist_ok=True)

WIDTH, T, N_TRAIN, N_TEST, EPOCHS, BATCH = (0.5, 20, 1024, 512, 1, 32) if FAST else (1.0, 50, 6000, 2000, 2, 64)
LR = 0.003   # the command line's LeNet5 default, for E = 1/2 sum e^2 summed over the batch
backend = Backend("cpu", "float32")
xp = backend.xp

# %% [markdown]
# ## 1. Data

# %%
try:
    train_x, train_y = load("mnist", "train")       # $MINISNN_DATA, else minisnn's default folder
    test_x, test_y = load("mnist", "test")
    SOURCE = "MNIST"
except DatasetError as exc:
    print(f"{'=' * 78}\nMNIST NOT FOUND - training on a SYNTHETIC task instead (ten noisy 28x28 "
          f"prototypes); the accuracy below says nothing about MNIST\n{exc}\n{'=' * 78}")
    rng = np.random.default_rng(0)
    prototypes = rng.random((10, 28, 28)) < 0.15


    def synthetic(n, seed):
        r = np.random.default_rng(seed)
        labels = r.integers(0, 10, n)
        flips = r.random((n, 28, 28)) < 0.05
        images = (prototypes[labels] ^ flips) * r.uniform(0.6, 1.0, (n, 1, 1))
        return (images[:, None] * 255).astype(np.uint8), labels.astype(np.int64)

    (train_x, train_y), (test_x, test_y) = synthetic(N_TRAIN, 1), synthetic(N_TEST, 2)
    SOURCE = "synthetic"

train_x, train_y = subset(train_x, train_y, N_TRAIN, seed=0)
test_x, test_y = subset(test_x, test_y, N_TEST, seed=0)
print(f"{SOURCE}: {len(train_y)} training and {len(test_y)} test images, {train_x.shape[1:]} uint8")
train_batches = BatchIterator(train_x, train_y, BATCH, backend, shuffle=True, seed=0)
test_batches = BatchIterator(test_x, test_y, 256, backend, shuffle=False)

# %% [markdown]
# ## 2. The network and the optimiser
#
# Initialisation $W \sim \mathcal N(0, \sqrt{2/\text{fan-in}})$ (section 4.1.1), no biases;
# plain SGD with weight decay $5\cdot10^{-4}$ (as the authors' code; eq 3.26 plus L2).

# %%
net = models.build("lenet5", (1, 28, 28), 10, WIDTH, backend, seed=0)
print(net.summary())
opt = SGD(net.parameters(), lr=LR, weight_decay=5e-4)
schedule = MultiStepLR(opt, milestones=[max(1, EPOCHS - 1)] if EPOCHS > 1 else [], gamma=0.2)


def evaluate(epoch):
    hits = 0
    for b, (x, y) in enumerate(test_batches.epoch(0)):
        out = net.forward(x, T, train=False, rng_key=(1, "test", epoch, b))
        hits += int(correct(out, y))
    return hits / test_batches.num_samples


# %% [markdown]
# ## 3. The training loop
#
# Per mini-batch: Poisson-encode and run $T$ steps (`forward`, which keeps the counts and
# traces), $e = \text{output} - y$ (`mse_loss`), the one-pass backward (`backward`), the update
# (`step`). `rng_key` makes each batch's spike trains reproducible.

# %%
history = {"batch_loss": [], "batch_acc": [], "test_acc": [evaluate(-1)]}
print(f"test accuracy before training: {history['test_acc'][0]:.3f}")
start = time.perf_counter()
for epoch in range(EPOCHS):
    schedule.set_epoch(epoch)
    for b, (x, y) in enumerate(train_batches.epoch(epoch)):
        out = net.forward(x, T, train=True, rng_key=(0, "train", epoch, b))
        loss, error = mse_loss(out, y)
        net.backward(error)
        opt.step(net.gradients())
        history["batch_loss"].append(float(loss) / len(y))
        history["batch_acc"].append(int(correct(out, y)) / len(y))
        if b % 10 == 0:
            print(f"epoch {epoch + 1} batch {b:3d}: loss/sample {history['batch_loss'][-1]:.4f}, "
                  f"batch accuracy {history['batch_acc'][-1]:.2f}, rates "
                  + " ".join(f"{k} {v:.3f}" for k, v in net.spike_rates().items()))
    history["test_acc"].append(evaluate(epoch))
    print(f"epoch {epoch + 1}: test accuracy {history['test_acc'][-1]:.3f} "
          f"({time.perf_counter() - start:.0f} s)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
k = 5
smooth = np.convolve(history["batch_loss"], np.ones(k) / k, mode="valid")
axes[0].plot(history["batch_loss"], alpha=0.3, label="per batch")
axes[0].plot(np.arange(k - 1, len(history["batch_loss"])), smooth, label=f"mean of {k}")
axes[0].set_xlabel("batch")
axes[0].set_ylabel("loss per sample")
axes[0].legend()
axes[1].plot(range(EPOCHS + 1), history["test_acc"], "o-")
axes[1].set_xticks(range(EPOCHS + 1))                  # whole epochs; 0 = before training
axes[1].set_xlabel("epochs trained")
axes[1].set_ylabel("test accuracy")
axes[1].set_ylim(0, 1)
fig.suptitle(f"LeNet5 (width {WIDTH}), T = {T}, {SOURCE}, {N_TRAIN} training images")
fig.tight_layout()
fig.savefig(FIGURES / "08_training.png", dpi=100)

# %% [markdown]
# ## 4. What the run must show
#
# Learning, clearly above chance (10 %) on held-out images, and a falling loss. (These are
# loose bounds for a tiny run; the full thesis setup reaches 99.5 %.)

# %%
first, last = np.mean(history["batch_loss"][:5]), np.mean(history["batch_loss"][-5:])
print(f"loss/sample {first:.3f} -> {last:.3f}; test accuracy {history['test_acc'][0]:.3f} -> {history['test_acc'][-1]:.3f}")
assert last < first
assert history["test_acc"][-1] > (0.35 if FAST else 0.8), history["test_acc"]
assert all(0 < r < 0.5 for r in net.spike_rates().values())

# %% [markdown]
# **Summary.** `load` -> `BatchIterator` -> `models.build` -> (`forward`, `mse_loss`,
# `backward`, `SGD.step`) is the whole training program. Tutorial 9 looks at what the
# network's neurons do while it learns: how sparse their spikes are.
