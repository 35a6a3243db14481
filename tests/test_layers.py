"""Each layer's backward is the exact adjoint of its forward (docs/algorithm.md, check 1).

For a layer with linear map L_W and a frozen gain (its linearised twin, minisnn.linearised),
phi(W, x) = <r, gain * L_W(x)>; the layer's backward fed r must return dphi/dx and store dphi/dW.
Float64, centred differences.
"""
import numpy as np
import pytest

from minisnn import (LIF, Backend, Conv2d, Dropout, Flatten, Linear, ResidualBlock, SpikingAvgPool,
                     Subsample)
from minisnn import ops
from minisnn.layercheck import adjoint_errors
from minisnn.layers import Neurons, Output
from minisnn.linearised import twin_layer

from gradcheck import numerical_gradient, relative_error

BACKEND = Backend("cpu", "float64")
BATCH = 3
TOLERANCE = 1e-6
REPORT = {}


def build(layer, in_shape, rng, gain=None):
    """The layer's linearised twin, its neurons at random gains in (0.5, 1.5) (or ``gain``)."""
    layer.build(BACKEND, in_shape)
    layer.init_parameters(BACKEND.rng(1, "init"), 2.0)
    gains = {sub.name: rng.uniform(0.5, 1.5, (BATCH,) + sub.out_shape) if gain is None
             else np.full((BATCH,) + sub.out_shape, gain)
             for sub in layer.sublayers() if isinstance(sub, Neurons)}
    twin = twin_layer(layer, gains)
    twin.reset(BATCH, training=True, rng=BACKEND.rng(2, "dropout"), T=1)
    return twin


def check_layer(layer, in_shape, name, samples=12):
    """Largest relative error of dphi/dx and dphi/dW (every parameter) against finite differences."""
    rng = np.random.default_rng(0)
    layer = build(layer, in_shape, rng)
    x = rng.uniform(0, 2, (BATCH,) + tuple(in_shape))
    r = rng.standard_normal((BATCH,) + layer.out_shape)
    errors = adjoint_errors(layer, layer, x, r, lambda: BACKEND.rng(2, "dropout"), rng, samples)
    REPORT[name] = max(errors)
    print(f"{name}: largest relative error {max(errors):.2e}")
    assert max(errors) <= TOLERANCE


CONV_CASES = [  # (in_shape HWC, out channels, kernel, stride, padding)
    ((8, 8, 3), 4, 3, 1, 1),
    ((9, 9, 2), 5, 3, 2, 1),
    ((10, 10, 3), 4, 5, 1, 2),
    ((7, 7, 2), 3, 1, 2, 0),
    ((6, 8, 2), 3, 3, 1, 0),
]


@pytest.mark.parametrize("in_shape,out_ch,k,s,p", CONV_CASES)
def test_conv2d_backward_matches_finite_differences(in_shape, out_ch, k, s, p):
    conv = Conv2d(in_shape[2], out_ch, k, s, p, name="conv")
    check_layer(conv, in_shape, f"conv k{k} s{s} p{p}")


def test_conv2d_chunked_im2col_gives_the_same_output():
    rng = np.random.default_rng(3)
    whole = build(Conv2d(3, 4, 3, 1, 1, name="a"), (8, 8, 3), rng)
    pieces = build(Conv2d(3, 4, 3, 1, 1, name="b", block_bytes=70 * 27 * 8), (8, 8, 3), rng)
    pieces.params["weight"][...] = whole.params["weight"]
    x = rng.uniform(0, 1, (2, BATCH, 8, 8, 3))
    np.testing.assert_allclose(whole.forward(x), pieces.forward(x), rtol=1e-12)


def test_linear_backward_matches_finite_differences():
    check_layer(Linear(7, 5, name="fc"), (7,), "linear")


def test_spiking_pool_backward_matches_finite_differences():
    check_layer(SpikingAvgPool(name="pool"), (6, 6, 3), "avgpool 2x2")
    check_layer(SpikingAvgPool(name="pool"), (7, 5, 2), "avgpool 2x2 odd size")


def test_linearised_lif_is_its_gain():
    check_layer(LIF(name="lif"), (4, 4, 2), "lif (gain)")


def test_dropout_backward_matches_finite_differences():
    check_layer(Dropout(0.3, name="drop"), (5, 5, 2), "dropout")


def test_flatten_and_subsample_backward():
    check_layer(Flatten(name="flat"), (3, 4, 2), "flatten")
    check_layer(Subsample(name="sub"), (6, 5, 2), "subsample")


@pytest.mark.parametrize("skip,in_ch,out_ch,stride", [("conv", 2, 3, 2), ("conv", 2, 3, 1),
                                                      ("identity", 3, 3, 1), ("subsample", 3, 3, 2)])
def test_residual_block_backward_matches_finite_differences(skip, in_ch, out_ch, stride):
    block = ResidualBlock(in_ch, out_ch, stride, skip=skip, dropout=0.2, name="block")
    check_layer(block, (6, 6, in_ch), f"residual {skip} s{stride}")


def test_output_layer_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    layer = build(Output(6, 4, name="out"), (6,), rng)
    x, T = rng.uniform(0, 3, (BATCH, 6)), 9
    r = rng.standard_normal((BATCH, 4))

    def phi():
        layer.reset(BATCH, training=True, T=T)
        return float(np.sum(r * layer.forward(x[None])))

    phi()
    grad_x = layer.backward(r)
    w = layer.params["weight"]
    err = max(relative_error(grad_x.ravel(), numerical_gradient(phi, x, range(x.size))),
              relative_error(layer.grads["weight"].ravel(), numerical_gradient(phi, w, range(w.size))))
    REPORT["output"] = err
    assert err <= TOLERANCE


def _adjoint_error(layer, in_shape, rng):
    """<r, L(x)> against <L^T r, x> for the layer's linear map."""
    layer = build(layer, in_shape, rng, gain=1.0)
    x = rng.standard_normal((BATCH,) + tuple(in_shape))
    r = rng.standard_normal((BATCH,) + layer.out_shape)
    forward = float(np.sum(r * layer.forward(x[None])[0]))
    backward = float(np.sum(layer.backward(r) * x))
    return abs(forward - backward) / (abs(forward) + abs(backward))


@pytest.mark.parametrize("make,in_shape", [
    (lambda: Conv2d(3, 4, 3, 1, 1, name="c"), (8, 8, 3)),
    (lambda: Conv2d(2, 5, 3, 2, 1, name="c"), (9, 9, 2)),
    (lambda: Conv2d(3, 4, 5, 1, 2, name="c"), (10, 10, 3)),
    (lambda: Linear(7, 5, name="l"), (7,)),
    (lambda: SpikingAvgPool(name="p"), (7, 6, 3)),
    (lambda: Subsample(name="s"), (5, 6, 2)),
    (lambda: ResidualBlock(2, 3, 2, name="r"), (6, 6, 2)),
])
def test_dot_product_adjoint(make, in_shape):
    assert _adjoint_error(make(), in_shape, np.random.default_rng(5)) <= 1e-12


def test_adjoint_test_detects_a_wrong_backward():
    """The adjoint test must be able to fail: a pool whose backward forgets the / 4."""
    class WrongPool(SpikingAvgPool):
        def backward(self, grad):
            return super().backward(grad) * 4

    assert _adjoint_error(WrongPool(name="w"), (6, 6, 2), np.random.default_rng(5)) > 0.1


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("in_shape,out_ch,k,s,p", CONV_CASES + [((9, 9, 1), 3, 5, 1, 2)])
def test_fast_conv2d_equals_the_reference(in_shape, out_ch, k, s, p, dtype, rtol):
    """The cache-blocked convolution (window and slab patches, several blocks) against im2col @ W."""
    rng = np.random.default_rng(7)
    x = (rng.random((5,) + in_shape) < 0.3).astype(dtype)
    w = rng.standard_normal((out_ch, in_shape[2], k, k)).astype(dtype)
    reference = ops.conv2d_reference(np, x, w, s, p)
    for block_bytes in (2 << 20, 1):                    # one block; one sample per block
        np.testing.assert_allclose(ops.conv2d(np, x, w, s, p, block_bytes), reference, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("in_shape,out_ch,k,s,p", CONV_CASES + [((9, 9, 1), 3, 5, 1, 2)])
def test_blocked_conv_adjoints_equal_the_whole_batch_formulas(in_shape, out_ch, k, s, p):
    """dE/dx = col2im(delta W^T) and dE/dW = im2col(x)^T delta, computed block by block (window and
    slab patches), against the same formulas on the whole batch at once."""
    rng = np.random.default_rng(8)
    x = (rng.random((7,) + in_shape) < 0.3).astype(np.float64)
    w = rng.standard_normal((out_ch, in_shape[2], k, k))
    delta = rng.standard_normal(ops.conv2d_reference(np, x, w, s, p).shape)
    dx = ops.col2im(np, delta.reshape(-1, out_ch) @ ops.weight_matrix(w).T, x.shape, k, s, p)
    dw = (ops.im2col(np, x, k, s, p).T @ delta.reshape(-1, out_ch)).reshape(k, k, in_shape[2], out_ch).transpose(3, 2, 0, 1)
    for block_bytes in (2 << 20, 1, 3 * delta[0].nbytes):   # one block; one sample per block; uneven blocks
        np.testing.assert_allclose(ops.conv2d_backward_input(np, delta, w, x.shape, s, p, block_bytes), dx,
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ops.conv2d_backward_weight(np, x, delta, w.shape, s, p, block_bytes), dw,
                                   rtol=1e-12, atol=1e-12)
