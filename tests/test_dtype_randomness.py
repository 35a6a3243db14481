"""float32 and float64 runs with the same seed draw the same random numbers (weights, Poisson
spikes, dropout masks), so a float64 run can check a float32 run's numerics."""
import numpy as np

from minisnn import Backend
from minisnn.models import build
from minisnn.testing import strict_backend


def _nets(make_backend=Backend):
    return [build("lenet5", width=0.25, dropout=0.3, seed=7, backend=make_backend("cpu", dtype))
            for dtype in ("float32", "float64")]


def test_same_initial_weights():
    n32, n64 = _nets()
    for key, w32 in n32.parameters().items():
        w64 = n64.parameters()[key]
        assert w64.dtype == np.float64 and w32.dtype == np.float32
        np.testing.assert_allclose(w64, w32, rtol=1e-6)       # the same draws, scaled in each dtype


def test_same_spikes_and_dropout_masks():
    n32, n64 = _nets()
    x = np.random.default_rng(1).random((4, 1, 28, 28)).astype(np.float32)
    out = []
    for net in (n32, n64):
        net.load_parameters(n32.parameters())          # identical weights, to compare the draws
        net.forward(x.astype(net.backend.dtype), T=8, train=True, rng_key=(3, 4))
        out.append(net)
    layers32, layers64 = out[0].all_layers(), out[1].all_layers()
    for a, b in zip(layers32, layers64):
        if getattr(a, "mask", None) is not None:
            assert np.array_equal(a.mask > 0, b.mask > 0)          # the same units dropped
        if hasattr(a, "input_count") and a.name == "conv1":
            assert np.array_equal(a.input_count.astype(np.float64), b.input_count)   # same Poisson spikes


def test_same_draws_under_strict_rules():
    def make(device, dtype):
        return strict_backend(dtype)
    n32, n64 = _nets(make)
    w32 = n32.backend.to_host(n32.parameters()["conv1.weight"])
    w64 = n64.backend.to_host(n64.parameters()["conv1.weight"])
    np.testing.assert_allclose(w64, w32, rtol=1e-6)
