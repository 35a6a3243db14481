"""Event-driven products: the cost of a layer follows the spikes it receives.

A spiking layer's input is mostly zeros (hidden layers fire at 1-10 % per step), yet a dense
matrix product pays for every silent input. The event-driven product touches only the inputs
that spiked: each event adds its weight column into the neurons it reaches,

    I_t[j] = sum_i W[j, i] s_t[i] = sum over events i (s_t[i] != 0) of W[j, i] s_t[i]   (eq 3.2)

so the work is one synaptic operation (SOP) per event and target, as on neuromorphic hardware.
Here it is written with sparse matrices (``scipy.sparse`` on the CPU, ``cupyx.scipy.sparse`` on
the GPU): the events of a chunk become a compressed sparse row (CSR) matrix and one sparse x dense
product computes every current. The results equal the dense products up to float rounding (the
sums run in another order).

For a convolution, event (n, y, x, c) reaches through kernel tap (dy, dx) the output pixel
((y + p - dy) / s, (x + p - dx) / s) when that lies inside the map (and on the stride grid). The
events of a chunk thus give the sparse patch matrix (rows: output pixels, columns: (tap, channel)
as in ``ops.weight_matrix``): the sparse twin of im2col, built from the event list tap by tap.

Two kernels run the CPU product: a compiled loop (``minisnn.kernels``, numba; for each spike,
add its weights) when numba is installed (``pip install "minisnn[fast]"``), else SciPy's CSR x
dense product, the readable reference the compiled loop is tested against. :func:`event_kernel`
says which one runs; ``MINISNN_NUMBA=0`` in the environment forces the reference.

Which path is faster depends on the input's density (fraction of non-zero inputs), on the layer
and on the kernel: :func:`prefers_events` compares the measured density of a layer's input with
a calibrated break-even (``benchmarks/calibrate_events.py`` measures it on the machine at hand).
The density is counted on the whole batch, so the choice does not depend on how the batch is
split over worker threads.
"""
from __future__ import annotations

import os

from .ops import conv_output_size, weight_matrix

EXECUTION_MODES = ("auto", "dense", "event")

#: Break-even input density of the event path, per kernel: the event path is used when the
#: fraction of non-zero inputs is below ``scale * c_out / (c_out + half)`` (an event costs a
#: fixed overhead, which a wide output row amortises). Fitted by
#: ``python benchmarks/calibrate_events.py`` on a 2-core AMD EPYC with nothing else running (NumPy
#: 2.4 / OpenBLAS, SciPy 1.17, numba 0.68, one thread per product; table in docs/results.md): the
#: compiled loop breaks even at 16 % for 50 output channels, 18 % for 64, 22 % for 128, 25 % for
#: 256; SciPy's product at 4.4 %, 5.2 %, 6.9 %, 8.2 %. The GPU values are an estimate until that
#: script has run on a GPU.
BREAK_EVEN = {"numba": dict(scale=0.293, half=40.0), "scipy": dict(scale=0.103, half=64.0),
              "cupyx": dict(scale=0.05, half=64.0)}

#: Whether the compiled kernels may run (``MINISNN_NUMBA=0`` forces the NumPy/SciPy references).
USE_NUMBA = os.environ.get("MINISNN_NUMBA", "1") != "0"
_kernels = []          # [the minisnn.kernels module, or None and why not], filled on first use


def check_execution(mode):
    if mode not in EXECUTION_MODES:
        raise ValueError(f"execution must be one of {', '.join(EXECUTION_MODES)}, got {mode!r}")
    return mode


def _on_gpu(xp):
    return getattr(xp, "__name__", "").startswith("cupy")


def compiled_kernels(xp):
    """The numba kernels (:mod:`minisnn.kernels`, compiled on the first call) when they can run
    ``xp``'s arrays, else None: on CuPy, without numba, or with ``MINISNN_NUMBA=0``."""
    if not USE_NUMBA or getattr(xp, "__name__", "") != "numpy":
        return None
    if not _kernels:
        try:
            from . import kernels
            _kernels[:] = [kernels, None]
        except ImportError as exc:                       # numba absent (or not importable)
            _kernels[:] = [None, f"{type(exc).__name__}: {exc}"]
    return _kernels[0]


def event_kernel(xp):
    """The kernel of the event-driven products on ``xp``: "numba", "scipy" or "cupyx"."""
    if _on_gpu(xp):
        return "cupyx"
    return "numba" if compiled_kernels(xp) is not None else "scipy"


def describe_kernel(xp):
    """One line for a run's log: the event-driven kernel and, for numba, its one-time compile cost."""
    kernel = event_kernel(xp)
    if kernel == "numba":
        return f"event-driven products: numba kernels (compiled or loaded in {_kernels[0].COMPILE_SECONDS:.1f} s)"
    if kernel == "scipy":
        why = "MINISNN_NUMBA=0" if not USE_NUMBA else (_kernels[1] if _kernels and _kernels[1] else "not NumPy arrays")
        return f"event-driven products: scipy.sparse ({why}; pip install \"minisnn[fast]\" for the compiled kernels)"
    return "event-driven products: cupyx.scipy.sparse"


def sparse_module(xp):
    """``scipy.sparse`` for NumPy, ``cupyx.scipy.sparse`` for CuPy; an array module may bring its own
    as ``xp.sparse_module`` (:data:`minisnn.testing.strict_xp` does)."""
    own = getattr(xp, "sparse_module", None)
    if own is not None:
        return own
    if _on_gpu(xp):
        import cupyx.scipy.sparse
        return cupyx.scipy.sparse
    import scipy.sparse
    return scipy.sparse


def density(xp, x, sample_stride=7):
    """Fraction of non-zero entries of ``x`` (a Python float), estimated on every
    ``sample_stride``-th entry of large arrays (a prime stride visits every channel)."""
    flat = x.reshape(-1)
    if flat.size > 64 * sample_stride * 1024:
        flat = flat[::sample_stride]
    return float(xp.count_nonzero(flat)) / max(flat.size, 1)


def break_even(xp, c_out):
    """Input density below which the event path is expected to be faster."""
    b = BREAK_EVEN[event_kernel(xp)]
    return b["scale"] * c_out / (c_out + b["half"])


def prefers_events(mode, xp, x, c_out, batch_sum=None):
    """Decide the path of one product: forced by ``mode``, or under 'auto' by the density of the
    input ``x``. ``batch_sum`` (the runner's :meth:`~minisnn.runner.Runner.batch_sum`, when ``x``
    is one worker's slice of the batch) makes it the density of the whole batch, the same for
    every worker. Returns (use events?, density) - density None when ``mode`` forces the path."""
    if mode != "auto":
        return mode == "event", None
    counts = (int(xp.count_nonzero(x)), x.size)
    if batch_sum is not None:
        counts = batch_sum(counts)
    rho = counts[0] / max(counts[1], 1)
    return rho < break_even(xp, c_out), rho


def linear(xp, x, weight_t):
    """``x @ weight_t`` for a mostly-zero ``x`` (M, in); ``weight_t`` is (in, out)."""
    fast = compiled_kernels(xp)
    if fast is not None and x.dtype == weight_t.dtype:
        out = xp.empty((x.shape[0], weight_t.shape[1]), x.dtype)
        fast.linear_events(xp.ascontiguousarray(x), xp.ascontiguousarray(weight_t), out)
        return out
    return linear_sparse(xp, x, weight_t)


def linear_sparse(xp, x, weight_t):
    """:func:`linear` by SciPy's (CuPy's) CSR x dense product, the reference."""
    sparse = sparse_module(xp)
    return xp.ascontiguousarray(sparse.csr_matrix(x) @ weight_t)


def conv2d(xp, x, weight, stride, padding):
    """Event-driven twin of :func:`minisnn.ops.conv2d`: ``x`` (N, H, W, C_in) -> (N, H', W', C_out)."""
    fast = compiled_kernels(xp)
    if fast is not None and x.dtype == weight.dtype:
        n, h, w, _ = x.shape
        k = weight.shape[2]
        out = xp.empty((n, conv_output_size(h, k, stride, padding), conv_output_size(w, k, stride, padding),
                        weight.shape[0]), x.dtype)
        taps = xp.ascontiguousarray(weight.transpose(2, 3, 1, 0))             # (k, k, C_in, C_out)
        fast.conv2d_events(xp.ascontiguousarray(x), taps, stride, padding, out)
        return out
    return conv2d_sparse(xp, x, weight, stride, padding)


def conv2d_sparse(xp, x, weight, stride, padding):
    """:func:`conv2d` by the sparse patch matrix times the weight matrix, the reference."""
    n, h, w, c = x.shape
    c_out, _, k, _ = weight.shape
    ho, wo = conv_output_size(h, k, stride, padding), conv_output_size(w, k, stride, padding)
    flat = xp.flatnonzero(x != 0)                      # the events, in (n, y, x, c) order
    values = x.reshape(-1)[flat]
    channel = (flat % c).astype(xp.int32)
    pixel = (flat // c).astype(xp.int32)               # n * H * W + y * W + x
    col, row, image = pixel % w, (pixel // w) % h, pixel // (h * w)

    def reach(coord, out_size):
        """Per kernel offset d: which events reach an output row (column) through it, and which."""
        valid, index = [], []
        for d in range(k):
            o = coord + (padding - d)                  # = stride * output index
            ok = (o >= 0) & (o < out_size * stride)
            if stride > 1:
                ok &= o % stride == 0
            valid.append(ok)
            index.append(o // stride)
        return valid, index

    valid_y, out_y = reach(row, ho)
    valid_x, out_x = reach(col, wo)
    hits = [[xp.flatnonzero(valid_y[dy] & valid_x[dx]) for dx in range(k)] for dy in range(k)]
    total = sum(int(hit.size) for taps in hits for hit in taps)
    rows, cols = xp.empty(total, xp.int32), xp.empty(total, xp.int32)
    binary = values.size == 0 or bool(values.min() == values.max())   # all events alike: no gathers
    data = xp.empty(total, x.dtype)
    if binary and values.size:
        data[...] = values[0]
    start = 0
    for dy in range(k):
        row_start = (image * ho + out_y[dy]) * wo      # output pixel index without the column
        for dx in range(k):
            hit = hits[dy][dx]
            end = start + hit.size
            xp.add(row_start[hit], out_x[dx][hit], out=rows[start:end])
            xp.add(channel[hit], (dy * k + dx) * c, out=cols[start:end])
            if not binary:
                data[start:end] = values[hit]
            start = end
    # Tap-major order keeps each row's columns increasing, so the CSR conversion needs no sort.
    patches = sparse_module(xp).coo_matrix((data, (rows, cols)), shape=(n * ho * wo, k * k * c)).tocsr()
    return (patches @ weight_matrix(weight)).reshape(n, ho, wo, c_out)
