"""Output error and loss (eqs 3.7-3.9).

    e_j = output_j - label_j                 (eq 3.7, label one-hot)
    E   = 1/2 sum_b sum_j e_j^2              (eq 3.8, summed over the batch as the authors' code does)
    dE/d output = e                          (eq 3.9)

With ``reduction="mean"`` E and e are divided by the batch size B, so a learning rate carries
across batch sizes: lr_mean = B * lr_sum gives the same update.

The authors' code uses MSELoss(size_average=False), i.e. sum e^2 without the 1/2, whose gradient
is 2e: their learning rate eta corresponds to 2 * eta here.
"""
from __future__ import annotations

import sys

import numpy as np


def array_module(*arrays):
    """The array module the arrays live in: CuPy for CuPy arrays (``cupy.get_array_module``; none can
    exist before CuPy is imported), the one another array type names (``__array_namespace__``:
    the strict test module's arrays), else NumPy."""
    cupy = sys.modules.get("cupy")
    if cupy is not None and cupy.get_array_module(*arrays) is not np:
        return cupy.get_array_module(*arrays)
    for array in arrays:
        if not isinstance(array, np.ndarray) and hasattr(array, "__array_namespace__"):
            return array.__array_namespace__()
    return np


def one_hot(xp, labels, num_classes, dtype):
    out = xp.zeros((labels.shape[0], num_classes), dtype=dtype)
    out[xp.arange(labels.shape[0]), labels] = 1
    return out


def mse_loss(output, labels, reduction="sum"):
    """Return (E, dE/d output): the squared-error loss (a 0-d device array) summed over the
    batch (``reduction="sum"``, eq 3.8) or averaged over it (``"mean"``)."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    xp = array_module(output)
    error = output - one_hot(xp, labels, output.shape[1], output.dtype)    # eq 3.7
    if reduction == "mean":
        error = error / output.shape[0]
        return 0.5 * output.shape[0] * (error * error).sum(), error
    return 0.5 * (error * error).sum(), error                               # eqs 3.8, 3.9


def correct(output, labels):
    """Number of samples whose largest output is the label (a 0-d device array)."""
    return (output.argmax(axis=1) == labels).sum()
