"""The strict array module fails on CPU where code would break under CuPy."""
import numpy as np
import pytest

from minisnn.backend import Backend
from minisnn.testing import StrictArray, strict_backend, strict_xp as xp


def host(a):
    return xp.asnumpy(a)


def test_implicit_conversion_to_numpy_raises():
    a = xp.ones(3)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array(a)
    with pytest.raises(TypeError):
        np.testing.assert_allclose(a, 1.0)


def test_explicit_download_is_allowed():
    a = xp.arange(4)
    assert type(a.get()) is np.ndarray and type(xp.asnumpy(a)) is np.ndarray
    np.testing.assert_array_equal(a.get(), [0, 1, 2, 3])
    assert a.tolist() == [0, 1, 2, 3] and a.item(2) == 2


@pytest.mark.parametrize("mix", [
    lambda a, h: a + h,
    lambda a, h: h + a,
    lambda a, h: a * h,
    lambda a, h: xp.add(a, h),
    lambda a, h: np.add(a, h),
    lambda a, h: xp.exp(h),
    lambda a, h: xp.concatenate([a, h]),
    lambda a, h: np.concatenate([a, h]),
    lambda a, h: xp.dot(a, h),
    lambda a, h: a.dot(h),
    lambda a, h: xp.where(a > 0, a, h),
])
def test_mixing_with_host_arrays_raises(mix):
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        mix(xp.ones(3), np.ones(3))


def test_inplace_mixing_and_host_values_raise():
    a = xp.ones(3)
    with pytest.raises(TypeError):
        a += np.ones(3)
    h = np.ones(3)
    with pytest.raises(TypeError):
        h += a
    with pytest.raises(TypeError):
        xp.multiply(a, 2.0, out=np.empty(3))
    with pytest.raises(TypeError):
        a[:] = np.zeros(3)  # CuPy: "non-scalar numpy.ndarray cannot be used for fill"


def test_ufuncs_refuse_lists():
    with pytest.raises(TypeError, match="list"):
        xp.add(xp.ones(3), [1, 2, 3])


def test_scalars_are_fine():
    a = xp.ones(3, dtype=xp.float32)
    for r in (a + 1, 2.0 * a, a * np.float32(2.0), xp.maximum(a, np.float64(0.5)), a ** 2):
        assert type(r) is StrictArray
    assert (a * np.float32(3.0)).dtype == np.float32
    np.testing.assert_allclose(host(a * np.float32(3.0) - 1), [2.0, 2.0, 2.0])


def test_out_and_inplace_write_into_the_buffer():
    a = xp.asarray(np.array([1.0, 2.0, 3.0]))
    b = xp.asarray(np.array([2.0, 2.0, 2.0]))
    c = xp.empty(3)
    r = xp.multiply(a, b, out=c)
    assert r is c
    np.testing.assert_array_equal(host(c), [2.0, 4.0, 6.0])
    np.multiply(a, a, out=c)
    np.testing.assert_array_equal(host(c), [1.0, 4.0, 9.0])
    s = xp.zeros(3, dtype=bool)
    assert xp.greater(a, 1.5, out=s) is s
    np.testing.assert_array_equal(host(s), [False, True, True])
    before = a
    a += b
    assert a is before
    np.testing.assert_array_equal(host(a), [3.0, 4.0, 5.0])
    v = a[1:]
    v *= 10  # a view writes through to its base
    np.testing.assert_array_equal(host(a), [3.0, 40.0, 50.0])


def test_ufunc_methods():
    acc = xp.zeros(4)
    xp.add.at(acc, xp.asarray(np.array([0, 0, 3])), 1.0)
    xp.add.at(acc, np.array([1]), xp.ones(1))  # CuPy uploads NumPy index arrays
    np.testing.assert_array_equal(host(acc), [2.0, 1.0, 0.0, 1.0])
    sums = xp.add.reduceat(xp.arange(6.0), [0, 2])
    assert type(sums) is StrictArray
    np.testing.assert_array_equal(host(sums), [1.0, 14.0])
    np.testing.assert_array_equal(host(xp.add.reduce(xp.ones((2, 3)), axis=0)), [2, 2, 2])


def test_matmul_and_einsum_stay_strict():
    w = xp.asarray(np.arange(6.0).reshape(2, 3))
    x = xp.asarray(np.ones((3, 4)))
    for r in (w @ x, xp.matmul(w, x), xp.dot(w, x), np.matmul(w, x), xp.einsum("ij,jk->ik", w, x)):
        assert type(r) is StrictArray
        np.testing.assert_array_equal(host(r), np.arange(6.0).reshape(2, 3) @ np.ones((3, 4)))
    total = np.sum(w)  # NumPy functions dispatch, but the result is a 0-d device array
    assert type(total) is StrictArray and total.ndim == 0 and float(total) == 15.0


def test_indexing_iteration_and_scalars():
    a = xp.asarray(np.arange(6.0).reshape(2, 3))
    assert len(a) == 2 and [type(r) for r in a] == [StrictArray, StrictArray]
    e = a[1, 2]
    assert type(e) is StrictArray and e.ndim == 0
    assert float(e) == 5.0 and int(e) == 5 and bool(a[0, 1]) and f"{e:.1f}" == "5.0"
    np.testing.assert_array_equal(host(a[:, xp.asarray(np.array([0, 2]))]), [[0, 2], [3, 5]])
    a[0] = xp.zeros(3)
    a[1, 0] = 9.0
    np.testing.assert_array_equal(host(a), [[0, 0, 0], [9, 4, 5]])
    assert isinstance(a, xp.ndarray) and not isinstance(a, np.ndarray)


def test_stride_tricks_and_linalg():
    x = xp.arange(5.0)
    win = xp.lib.stride_tricks.as_strided(x, shape=(3, 3), strides=(x.strides[0],) * 2)
    assert type(win) is StrictArray
    np.testing.assert_array_equal(host(win), [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(host(xp.lib.stride_tricks.sliding_window_view(x, 3)), host(win))
    assert float(xp.linalg.norm(xp.asarray(np.array([3.0, 4.0])))) == 5.0


def test_rng_reproducible_strict_and_cupy_shaped():
    be = strict_backend()
    u1 = be.rng(7, "encode", 3).random((2, 3), dtype=np.float32)
    u2 = be.rng(7, "encode", 3).random((2, 3), dtype=np.float32)
    assert type(u1) is StrictArray and u1.dtype == np.float32
    np.testing.assert_array_equal(host(u1), host(u2))
    g = xp.random.default_rng(0)
    for r in (g.standard_normal(3), g.uniform(0, 1, 3), g.integers(0, 5, 3), g.binomial(1, 0.5, 3),
              g.random()):
        assert type(r) is StrictArray
    with pytest.raises(AttributeError, match="normal"):
        g.normal(0.0, 1.0, 3)  # cupy.random.Generator has no normal()
    with pytest.raises(AttributeError):
        g.permutation(5)
    with pytest.raises(TypeError):
        g.binomial(1, np.float32(0.5))  # CuPy wants a Python float or a device array


def test_backend_crossings():
    be = Backend("cpu", "float32", xp=xp)
    d = be.to_device(np.arange(3), dtype=np.float32)
    assert type(d) is StrictArray and d.dtype == np.float32
    h = be.to_host(d * 2)
    assert type(h) is np.ndarray
    np.testing.assert_array_equal(h, [0, 2, 4])


def test_host_io_is_refused():
    for name in ("frombuffer", "fromfile", "loadtxt", "genfromtxt"):
        with pytest.raises(AttributeError, match=name):
            getattr(xp, name)
    assert xp.float32 is np.float32 and xp.newaxis is None and xp.pi == np.pi


def _leaky_iaf(xp, current, threshold=1.0, decay=0.9):
    """A toy LIF layer, written correctly against ``xp``."""
    v = xp.zeros(current.shape[1:], dtype=current.dtype)
    spikes = xp.empty(current.shape, dtype=current.dtype)
    for t in range(current.shape[0]):
        v *= decay
        v += current[t]
        spikes[t] = v >= threshold
        v[spikes[t] > 0] = 0.0
    return spikes


def _leaky_iaf_stray_np(xp, current, threshold=1.0, decay=0.9):
    """The same layer with a stray ``np.`` call: works on NumPy, breaks on CuPy."""
    v = np.zeros(current.shape[1:], dtype=current.dtype)
    spikes = xp.empty(current.shape, dtype=current.dtype)
    for t in range(current.shape[0]):
        v = v * decay + current[t]
        spikes[t] = v >= threshold
        v[spikes[t] > 0] = 0.0
    return spikes


def test_toy_layer_correct_passes_and_stray_np_fails():
    current = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    expected = _leaky_iaf(np, current)
    np.testing.assert_array_equal(_leaky_iaf_stray_np(np, current), expected)  # plain NumPy: fine
    be = strict_backend()
    got = _leaky_iaf(be.xp, be.to_device(current))
    np.testing.assert_array_equal(be.to_host(got), expected)
    with pytest.raises(TypeError):
        _leaky_iaf_stray_np(be.xp, be.to_device(current))
