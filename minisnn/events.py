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

For a convolution, event (n, y, x, c) reaches through kernel tap (dy, dx) the output pixel whose
window holds (y, x) at that tap. Writing the output into a frame enlarged by k - 1 pixels ("halo"),
every event reaches a valid frame row through every tap, so the sparse patch matrix of the chunk
(rows: output pixels, columns: (tap, channel) as in ``ops.weight_matrix``) is built from the event
list by two broadcast additions, with no boundary tests; the frame is cropped afterwards.
Strided convolutions keep only the taps that land on the stride grid.

Which path is faster depends on the input's density (fraction of non-zero inputs) and on the
layer: :func:`prefers_events` compares the measured density with a calibrated break-even
(``benchmarks/calibrate_events.py`` measures it on the machine at hand).
"""
from __future__ import annotations

from .ops import conv_output_size, weight_matrix

EXECUTION_MODES = ("auto", "dense", "event")

#: Break-even input density of the event path, per device: the event path is used when the
#: fraction of non-zero inputs is below ``scale * c_out / (c_out + half)`` (sparse products pay
#: a fixed cost per event, which a wide output row amortises). Measured with
#: ``python benchmarks/calibrate_events.py`` (2-core Xeon, NumPy 2.4 + SciPy 1.17, one thread
#: per product; see benchmarks/README.md). The GPU values are an estimate until measured there.
BREAK_EVEN = {"cpu": dict(scale=0.12, half=64.0), "gpu": dict(scale=0.05, half=64.0)}


def check_execution(mode):
    if mode not in EXECUTION_MODES:
        raise ValueError(f"execution must be one of {', '.join(EXECUTION_MODES)}, got {mode!r}")
    return mode


def sparse_module(xp):
    """``scipy.sparse`` for NumPy, ``cupyx.scipy.sparse`` for CuPy (the strict test twin has its own)."""
    name = getattr(xp, "__name__", "")
    if name.startswith("cupy"):
        import cupyx.scipy.sparse
        return cupyx.scipy.sparse
    if name.startswith("strict_xp"):
        from .testing import strict_sparse
        return strict_sparse
    import scipy.sparse
    return scipy.sparse


def density(xp, x):
    """Fraction of non-zero entries of ``x`` (a Python float)."""
    return float(xp.count_nonzero(x)) / max(x.size, 1)


def break_even(xp, c_out):
    """Input density below which the event path is expected to be faster."""
    b = BREAK_EVEN["gpu" if getattr(xp, "__name__", "").startswith("cupy") else "cpu"]
    return b["scale"] * c_out / (c_out + b["half"])


def prefers_events(mode, xp, x, c_out):
    """Decide the path of one product: forced by ``mode``, or by measured density under 'auto'."""
    if mode != "auto":
        return mode == "event"
    return density(xp, x) < break_even(xp, c_out)


def linear(xp, x, weight_t):
    """``x @ weight_t`` for a mostly-zero ``x`` (M, in); ``weight_t`` is (in, out)."""
    sparse = sparse_module(xp)
    return xp.ascontiguousarray(sparse.csr_matrix(x) @ weight_t)


def conv2d(xp, x, weight, stride, padding):
    """Event-driven twin of :func:`minisnn.ops.conv2d`: ``x`` (N, H, W, C_in) -> (N, H', W', C_out)."""
    n, h, w, c = x.shape
    c_out, _, k, _ = weight.shape
    ho, wo = conv_output_size(h, k, stride, padding), conv_output_size(w, k, stride, padding)
    # The frame: stride-1 output positions shifted by k - 1 - padding, so that oy >= 0 always.
    shift = k - 1 - padding
    fh, fw = h + k - 1, w + k - 1
    if shift < 0:
        raise ValueError(f"event-driven convolution needs padding <= kernel - 1, got {padding} for k={k}")
    flat = xp.flatnonzero(x)                           # events, in (n, y, x, c) order
    values = x.reshape(-1)[flat]
    channel = (flat % c).astype(xp.int32)
    pixel = flat // c                                  # n * H * W + y * W + x
    col, row = pixel % w, (pixel // w) % h
    base = (((pixel // (h * w)) * fh + row) * fw + col).astype(xp.int32)  # frame row of tap (k-1, k-1)
    taps = xp.arange(k * k, dtype=xp.int32)
    dy, dx = taps // k, taps % k
    # Tap (dy, dx) of an event at (y, x) reaches frame pixel (y + k-1-dy, x + k-1-dx).
    rows = base[None, :] + ((k - 1 - dy) * fw + (k - 1 - dx))[:, None]
    cols = (taps * c)[:, None] + channel[None, :]
    data = xp.broadcast_to(values, rows.shape)
    if stride > 1:
        # keep the taps whose frame position minus ``shift`` lies on the stride grid
        fy = row[None, :] + (k - 1 - dy)[:, None] - shift
        fx = col[None, :] + (k - 1 - dx)[:, None] - shift
        on_grid = (fy % stride == 0) & (fx % stride == 0)
        rows, cols, data = rows[on_grid], cols[on_grid], data[on_grid]
    sparse = sparse_module(xp)
    # Tap-major order keeps each row's columns increasing, so the CSR needs no sorting.
    patches = sparse.coo_matrix((data.reshape(-1), (rows.reshape(-1), cols.reshape(-1))),
                                shape=(n * fh * fw, k * k * c)).tocsr()
    frame = (patches @ weight_matrix(weight)).reshape(n, fh, fw, c_out)
    end_y, end_x = shift + (ho - 1) * stride + 1, shift + (wo - 1) * stride + 1
    return xp.ascontiguousarray(frame[:, shift:end_y:stride, shift:end_x:stride])
