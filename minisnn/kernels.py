"""Compiled CPU kernels (numba): the event-driven products and the neuron recursion as plain loops.

The fast path beside the readable NumPy references (:mod:`minisnn.events` builds a sparse matrix
and lets SciPy multiply it; :func:`minisnn.neurons.integrate_and_fire` runs four array passes per
step). The loops here say the same thing directly - for each spike, add its weights - and
compile to machine code, so their cost follows the spikes without SciPy's per-event overhead.
They equal the references up to float rounding (the event products sum in another order) or
bitwise (the neuron recursion). Tests: ``tests/test_kernels.py``.

numba is optional (``pip install "minisnn[fast]"``): without it this module fails to import and
minisnn uses the references. The kernels are compiled for float32 and float64 when this module is
first imported (a few seconds once; numba caches the machine code on disk, so later processes
load it in well under a second): :data:`COMPILE_SECONDS` says how long that took. ``nogil``: the
runner's worker threads run them in parallel, one slice of the batch each.
"""
from __future__ import annotations

import time

import numba
import numpy as np

_start = time.perf_counter()
_FLOAT_TYPES = (numba.float32, numba.float64)


def _compiled(signatures):
    """numba.njit with eager compilation of ``signatures`` (one per float type), cached on disk."""
    return numba.njit([signatures(f) for f in _FLOAT_TYPES], nogil=True, cache=True)


def _readable(dtype, ndim):
    """A C-contiguous array the kernel only reads: writable and read-only arrays (an image batch
    given as a read-only view) are both accepted."""
    return numba.types.Array(dtype, ndim, "C", readonly=True)


@_compiled(lambda f: numba.void(_readable(f, 4), _readable(f, 4), numba.int64, numba.int64, f[:, :, :, ::1]))
def conv2d_events(x, weight, stride, padding, out):
    """out[n, oy, ox, :] = sum over the input spikes (n, y, x, c) in the window of (oy, ox) of
    x[n, y, x, c] * weight[dy, dx, c, :] (eq 3.2), with (dy, dx) = (y, x) - (s oy, s ox) + p.

    ``x`` (N, H, W, C_in), ``weight`` (k, k, C_in, C_out), ``out`` (N, H', W', C_out), all
    C-contiguous. Per image, first the list of events of each input pixel (its non-zero
    channels), then each output pixel gathers the weight rows of the events in its window."""
    images, height, width, c_in = x.shape
    k, c_out = weight.shape[0], weight.shape[3]
    first = np.empty(height * width + 1, np.int64)       # pixel p's events: first[p]:first[p + 1]
    channel = np.empty(height * width * c_in, np.int64)
    value = np.empty(height * width * c_in, x.dtype)
    current = np.empty(c_out, x.dtype)
    for n in range(images):
        events = 0
        for y in range(height):
            for x_ in range(width):
                first[y * width + x_] = events
                for c in range(c_in):
                    if x[n, y, x_, c] != 0:
                        channel[events], value[events] = c, x[n, y, x_, c]
                        events += 1
        first[height * width] = events
        for oy in range(out.shape[1]):
            for ox in range(out.shape[2]):
                current[:] = 0
                for dy in range(k):
                    y = oy * stride - padding + dy
                    if 0 <= y < height:
                        for dx in range(k):
                            x_ = ox * stride - padding + dx
                            if 0 <= x_ < width:
                                pixel = y * width + x_
                                for e in range(first[pixel], first[pixel + 1]):   # for each spike...
                                    c, v = channel[e], value[e]
                                    for j in range(c_out):                        # ...add its weights
                                        current[j] += v * weight[dy, dx, c, j]
                out[n, oy, ox, :] = current


@_compiled(lambda f: numba.void(_readable(f, 2), _readable(f, 2), f[:, ::1]))
def linear_events(x, weight_t, out):
    """out[m, :] = sum over the spikes i of row m of x[m, i] * weight_t[i, :] (eq 3.2).
    ``x`` (M, in), ``weight_t`` (in, out) = W^T, ``out`` (M, out)."""
    for m in range(x.shape[0]):
        out[m, :] = 0
        for i in range(x.shape[1]):
            v = x[m, i]
            if v != 0:
                for j in range(weight_t.shape[1]):
                    out[m, j] += v * weight_t[i, j]


@_compiled(lambda f: numba.void(f[:, ::1], f[::1], f[::1], f, f))
def integrate_and_fire(currents, potential, count, threshold, leak):
    """LIF with hard reset over a chunk, in place, one pass (eqs 3.1-3.2, 3.4): per neuron and step,

        U_t = lambda U'_{t-1} + I_t,  o_t = [U_t > V_th],  U'_t = U_t (1 - o_t),  a += o_t

    ``currents`` (T_chunk, neurons) becomes the spikes o_t. The same float operations in the same
    order as :func:`minisnn.neurons.integrate_and_fire` (``leak`` = 1: no multiplication), so
    the spikes, potentials and counts are bitwise those of the NumPy reference."""
    steps, neurons = currents.shape
    zero = threshold - threshold                         # 0 of the float type
    for t in range(steps):                               # step-major, branch-free: it vectorises
        for i in range(neurons):
            v = potential[i]
            if leak != 1:
                v *= leak
            v += currents[t, i]
            below = zero + (v <= threshold)              # 1 - o_t
            v *= below                                   # hard reset, U * 0 as the reference
            potential[i] = v
            currents[t, i] = 1 - below
            count[i] += 1 - below


COMPILE_SECONDS = time.perf_counter() - _start
