"""The CuPy path on a real device: skipped where CuPy or a CUDA device is missing.

The same network on the CPU and on the GPU, fed the same spike frames (so no random numbers
differ between the two), must give the same outputs, gradients and updated weights.
"""
import numpy as np
import pytest

from minisnn import SGD, Backend, DeviceError, mse_loss
from minisnn.encoding import FrameInput
from minisnn.models import build

try:
    GPU = Backend("gpu", "float64")
except DeviceError as exc:
    GPU = None
    REASON = str(exc)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(GPU is None, reason=f"no GPU: {REASON if GPU is None else ''}")]


@pytest.mark.parametrize("name,shape", [("lenet5", (1, 28, 28)), ("resnet11", (3, 32, 32)), ("vgg7", (3, 32, 32))])
def test_gpu_matches_cpu_forward_backward_and_update(name, shape):
    rng = np.random.default_rng(0)
    frames = (rng.random((6, 3) + shape) < 0.3).astype(np.float64)
    labels = rng.integers(0, 10, 3)
    results = []
    for backend in (Backend("cpu", "float64"), GPU):
        net = build(name, shape, width=0.25, backend=backend, dropout=0.0, seed=3, encoder=FrameInput())
        opt = SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x, y = backend.to_device(frames), backend.to_device(labels)
        out = net.forward(x, train=True)
        _, error = mse_loss(out, y)
        grad_input = net.backward(error)
        opt.step(net.gradients())
        results.append((backend.to_host(out), backend.to_host(grad_input),
                        {k: backend.to_host(v) for k, v in net.parameters().items()}))
    (cpu_out, cpu_gin, cpu_w), (gpu_out, gpu_gin, gpu_w) = results
    np.testing.assert_allclose(gpu_out, cpu_out, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gpu_gin, cpu_gin, rtol=1e-9, atol=1e-12)
    for key in cpu_w:
        np.testing.assert_allclose(gpu_w[key], cpu_w[key], rtol=1e-9, atol=1e-12, err_msg=key)


def test_gpu_poisson_training_step_runs_in_float32():
    backend = Backend("gpu", "float32")
    net = build("vgg9", (3, 32, 32), width=0.25, backend=backend)
    opt = SGD(net.parameters(), lr=0.005)
    x = backend.to_device(np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32))
    y = backend.to_device(np.arange(4))
    out = net.forward(x, 20, train=True, rng_key=(0, 0))
    loss, error = mse_loss(out, y)
    net.backward(error)
    opt.step(net.gradients())
    assert np.isfinite(float(loss))
    assert all(rate >= 0 for rate in net.spike_rates().values())
