"""Pure array functions: convolution through im2col, its two transposes, average pooling.

Layout: minisnn keeps feature maps channels-last, ``(N, H, W, C)``, inside the network. Then an
im2col patch matrix times the weight matrix gives the output already in ``(N, H', W', C_out)``
order, with no transposes on the hot path. Weights keep the usual ``(C_out, C_in, k, k)`` shape.

Read :func:`conv2d_reference` (``im2col(x) @ W``) and its two adjoints first: they are the
convolution. :func:`conv2d`, which the layers run, computes the same product in cache-sized
blocks (the "fast path" section below; tests check it equals the reference).

Every function takes the array module ``xp`` first, so the same code runs on NumPy and CuPy.
"""
from __future__ import annotations

import numpy as np


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def flush_subnormals(weight):
    """Set the entries of ``weight`` smaller than the smallest normal float to zero, in place.
    Weight decay shrinks the weights of silent units geometrically; once subnormal, they make
    every matrix product that holds them several times slower (a trained VGG7: 2.7x) while
    adding nothing to it."""
    weight[abs(weight) < np.finfo(weight.dtype).tiny] = 0


def pad_hw(xp, x, padding):
    """Zero-pad the two spatial axes of an ``(N, H, W, C)`` array."""
    if padding == 0:
        return x
    return xp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))


# ------------------------------------------------------------------------------------------
# Reference: the convolution as one matrix product, and its two adjoints
# ------------------------------------------------------------------------------------------

def im2col(xp, x, kernel, stride, padding):
    """Patch matrix of ``x`` (N, H, W, C): shape ``(N * H' * W', k * k * C)``, rows in output order."""
    n, h, w, c = x.shape
    ho = conv_output_size(h, kernel, stride, padding)
    wo = conv_output_size(w, kernel, stride, padding)
    xpad = xp.ascontiguousarray(pad_hw(xp, x, padding))
    sn, sh, sw, sc = xpad.strides
    windows = xp.lib.stride_tricks.as_strided(
        xpad, shape=(n, ho, wo, kernel, kernel, c),
        strides=(sn, sh * stride, sw * stride, sh, sw, sc))
    return windows.reshape(n * ho * wo, kernel * kernel * c)


def col2im(xp, cols, input_shape, kernel, stride, padding):
    """Adjoint of :func:`im2col`: sum every patch entry back onto the pixel it was copied from."""
    n, h, w, c = input_shape
    ho = conv_output_size(h, kernel, stride, padding)
    wo = conv_output_size(w, kernel, stride, padding)
    cols = cols.reshape(n, ho, wo, kernel, kernel, c)
    out = xp.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=cols.dtype)
    for dy in range(kernel):
        for dx in range(kernel):
            out[:, dy:dy + stride * ho:stride, dx:dx + stride * wo:stride, :] += cols[:, :, :, dy, dx, :]
    return out[:, padding:padding + h, padding:padding + w, :]


def weight_matrix(weight):
    """(C_out, C_in, k, k) -> (k * k * C_in, C_out), the im2col-ordered weight matrix."""
    c_out = weight.shape[0]
    return weight.transpose(2, 3, 1, 0).reshape(-1, c_out)


def conv2d_reference(xp, x, weight, stride, padding):
    """Convolution of ``x`` (N, H, W, C_in) with ``weight`` (C_out, C_in, k, k), no bias:
    the patch matrix times the weight matrix, (N * H' * W', k * k * C_in) @ (k * k * C_in, C_out)."""
    n, h, w, _ = x.shape
    c_out, _, k, _ = weight.shape
    ho, wo = conv_output_size(h, k, stride, padding), conv_output_size(w, k, stride, padding)
    return (im2col(xp, x, k, stride, padding) @ weight_matrix(weight)).reshape(n, ho, wo, c_out)


def conv2d_backward_input(xp, delta, weight, input_shape, stride, padding, block_bytes=2 << 20):
    """dE/dx of :func:`conv2d_reference` given dE/dout ``delta`` (N, H', W', C_out): a transposed
    convolution, ``col2im(delta @ W^T)``, computed in blocks of the batch whose patch matrix holds
    at most ``block_bytes`` (one reused buffer: memory stays flat in N, e.g. T * B rows)."""
    n, h, w, c = input_shape
    c_out, _, k, _ = weight.shape
    rows = delta.shape[1] * delta.shape[2]
    wmat_t = weight_matrix(weight).T                                 # (C_out, k*k*C_in)
    step = _block(n, rows * wmat_t.shape[1] * delta.itemsize, block_bytes)
    dcols = xp.empty((step * rows, wmat_t.shape[1]), dtype=delta.dtype)
    out = xp.empty(input_shape, dtype=delta.dtype)
    for i in range(0, n, step):
        m = min(step, n - i)
        xp.matmul(delta[i:i + m].reshape(-1, c_out), wmat_t, out=dcols[:m * rows])
        out[i:i + m] = col2im(xp, dcols[:m * rows], (m, h, w, c), k, stride, padding)
    return out


def conv2d_backward_weight(xp, x, delta, kernel_shape, stride, padding, block_bytes=2 << 20):
    """dE/dW of :func:`conv2d_reference`: the correlation of the input ``x`` with ``delta``,
    ``im2col(x)^T @ delta``, summed over blocks of the batch as in :func:`conv2d`."""
    c_out, c_in, k, _ = kernel_shape
    grad = xp.zeros((k * k * c_in, c_out), dtype=x.dtype)
    for i, m, patches in _patch_blocks(xp, x, k, stride, padding, block_bytes):
        grad += patches.T @ delta[i:i + m].reshape(-1, c_out)        # (k*k*C_in, C_out)
    return grad.reshape(k, k, c_in, c_out).transpose(3, 2, 0, 1)


def _block(n, bytes_per_sample, block_bytes):
    """Samples per block so that a block's patch matrix stays within ``block_bytes``."""
    return max(1, min(n, block_bytes // max(bytes_per_sample, 1)))


# ------------------------------------------------------------------------------------------
# Fast path: the same convolution, cache-blocked (what Conv2d.forward runs)
# ------------------------------------------------------------------------------------------

def conv2d(xp, x, weight, stride, padding, block_bytes=2 << 20):
    """:func:`conv2d_reference`, faster: equal to it up to the rounding of the products.

    The batch is processed in blocks (:func:`_patch_blocks`) whose patch matrix holds at most
    ``block_bytes`` (about a core's L2 cache), so the patches are multiplied while they are
    still in cache.
    """
    n = x.shape[0]
    c_out, _, k, _ = weight.shape
    ho = conv_output_size(x.shape[1], k, stride, padding)
    wo = conv_output_size(x.shape[2], k, stride, padding)
    wmat = weight_matrix(weight)
    out = xp.empty((n, ho, wo, c_out), dtype=x.dtype)
    for i, m, patches in _patch_blocks(xp, x, k, stride, padding, block_bytes):
        xp.matmul(patches, wmat, out=out[i:i + m].reshape(-1, c_out))
    return out


def _patch_blocks(xp, x, k, stride, padding, block_bytes):
    """(first sample, samples, patch matrix (m * H' * W', k * k * C)) for consecutive blocks of
    ``x`` (N, H, W, C). Each block is zero-padded into one reused buffer (its border written
    once) and its patches copied into another, so nothing of the size of the batch is allocated.
    Layers with few input channels (the first layer) build the patch matrix transposed, one
    contiguous image slab per kernel tap, which copies far faster than 1-channel windows."""
    n, h, w, c = x.shape
    ho, wo = conv_output_size(h, k, stride, padding), conv_output_size(w, k, stride, padding)
    step = _block(n, ho * wo * k * k * c * x.itemsize, block_bytes)
    slabs = k * c < 8
    cols = xp.empty((k * k * c, step, ho, wo) if slabs else (step, ho, wo, k, k, c), dtype=x.dtype)
    padded = xp.zeros((step, h + 2 * padding, w + 2 * padding, c), dtype=x.dtype) if padding else None
    for i in range(0, n, step):
        m = min(step, n - i)
        if padded is None:
            block = x[i:i + m]
        else:
            block = padded[:m]
            block[:, padding:padding + h, padding:padding + w] = x[i:i + m]
        if slabs:
            yield i, m, _slab_patches(xp, block, cols[:, :m], k, stride, ho, wo)
        else:
            yield i, m, _window_patches(xp, block, cols[:m], k, stride, ho, wo)


def _window_patches(xp, xpad, cols, k, stride, ho, wo):
    """Patch matrix (m * H' * W', k * k * C) copied from the strided windows of ``xpad``."""
    sn, sh, sw, sc = xpad.strides
    m, c = xpad.shape[0], xpad.shape[3]
    cols[...] = xp.lib.stride_tricks.as_strided(
        xpad, shape=(m, ho, wo, k, k, c), strides=(sn, sh * stride, sw * stride, sh, sw, sc))
    return cols.reshape(m * ho * wo, k * k * c)


def _slab_patches(xp, xpad, cols, k, stride, ho, wo):
    """The same patch matrix built transposed: row (dy, dx, c) is one shifted image slab."""
    c = xpad.shape[3]
    for dy in range(k):
        for dx in range(k):
            for ci in range(c):
                cols[(dy * k + dx) * c + ci] = xpad[:, dy:dy + stride * ho:stride, dx:dx + stride * wo:stride, ci]
    if not cols.flags.c_contiguous:
        cols = xp.ascontiguousarray(cols)
    return cols.reshape(cols.shape[0], -1).T


# ------------------------------------------------------------------------------------------
# Average pooling
# ------------------------------------------------------------------------------------------

def sum_pool2x2(x):
    """2x2, stride-2 sum of (N, H, W, C); an odd last row or column is dropped (floor)."""
    ho, wo = x.shape[1] // 2, x.shape[2] // 2
    out = x[:, 0:2 * ho:2, 0:2 * wo:2] + x[:, 1:2 * ho:2, 0:2 * wo:2]
    out += x[:, 0:2 * ho:2, 1:2 * wo:2]
    out += x[:, 1:2 * ho:2, 1:2 * wo:2]
    return out


def avg_pool2x2(x):
    """2x2, stride-2 average of (N, H, W, C); an odd last row or column is dropped (floor)."""
    out = sum_pool2x2(x)
    out *= 0.25
    return out


def avg_pool2x2_backward(xp, delta, input_shape):
    """Adjoint of :func:`avg_pool2x2`: spread each output's gradient over its window, / 4."""
    n, h, w, c = input_shape
    ho, wo = h // 2, w // 2
    out = xp.empty(input_shape, dtype=delta.dtype)
    quarter = delta * 0.25
    for dy in (0, 1):
        for dx in (0, 1):
            out[:, dy:2 * ho:2, dx:2 * wo:2] = quarter
    out[:, 2 * ho:] = 0                     # an odd last row or column had no output
    out[:, :, 2 * wo:] = 0
    return out
