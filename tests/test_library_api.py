"""The library's entry points as a user meets them: Backend arguments, model defaults,
input checks, loading a trained network."""
import sys
import types

import numpy as np
import pytest

from minisnn import Backend, DeviceError


# -- Backend ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", np.float64, np.dtype("float64")])
def test_backend_dtype_as_name_or_numpy_dtype(dtype):
    assert Backend("cpu", dtype).dtype is np.float64


@pytest.mark.parametrize("dtype", ["float16", np.int32, None, "x"])
def test_backend_bad_dtype(dtype):
    with pytest.raises(ValueError, match=r"dtype must be one of \['float32', 'float64'\]"):
        Backend("cpu", dtype)


def _fake_cupy(monkeypatch, count):
    used = []
    cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: count),
        Device=lambda i: types.SimpleNamespace(use=lambda: used.append(i)))
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=cuda))
    return used


@pytest.mark.parametrize("device,index", [("gpu", 0), ("cuda", 0), ("gpu:1", 1), ("cuda:1", 1),
                                          ("CUDA:1", 1)])
def test_backend_gpu_names_and_index(monkeypatch, device, index):
    used = _fake_cupy(monkeypatch, 2)
    backend = Backend(device)
    assert backend.device == "gpu" and backend.gpu_index == index and used == [index]


def test_backend_gpu_index_out_of_range(monkeypatch):
    _fake_cupy(monkeypatch, 2)
    with pytest.raises(DeviceError, match=r"GPU 2 asked for, but CuPy found 2 CUDA device\(s\) \(0 to 1\)"):
        Backend("cuda:2")


@pytest.mark.parametrize("device", ["tpu", "cpu:0", "gpu:x", "cuda:-1"])
def test_backend_bad_device(device):
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'.*'cuda:1'"):
        Backend(device)


def test_backend_without_cupy_names_the_extras(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(DeviceError, match=r"needs CuPy.*minisnn\[gpu-cuda12\].*gpu-cuda11 / "
                                          r"gpu-cuda13.*use the CPU \(device 'cpu'\)$"):
        Backend("gpu")


# -- models ---------------------------------------------------------------------------------------
def test_build_defaults_input_shape_from_the_models_dataset():
    from minisnn.models import build
    assert build("lenet5", width=0.1).input_shape == (1, 28, 28)
    assert build("vgg7", width=0.05).input_shape == (3, 32, 32)


@pytest.mark.parametrize("shape,fix", [((28, 28, 1), r"\(1, 28, 28\)"), ((34, 34, 2), r"\(2, 34, 34\)")])
def test_channels_last_shape_is_a_clear_error(shape, fix):
    from minisnn.models import build
    with pytest.raises(ValueError, match=f"channels first.*looks channels-last: use {fix}"):
        build("lenet5", shape)


def test_too_small_input_is_a_clear_error():
    from minisnn.models import build
    with pytest.raises(ValueError, match=r"too small for this model: pool2 leaves a 0x0"):
        build("lenet5", (1, 2, 2))


# -- images in the wrong scale ---------------------------------------------------------------------
def test_float_images_in_0_255_are_refused():
    from minisnn.data import BatchIterator, to_float
    x = np.random.default_rng(0).integers(0, 256, (4, 1, 6, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="must be in \\[0, 1\\].*up to 2.*divide these by 255"):
        to_float(x)
    with pytest.raises(ValueError, match="divide these by 255"):
        next(iter(BatchIterator(x, np.zeros(4), 4, Backend("cpu")).epoch(0)))
    assert to_float(x / 255).max() <= 1                       # [0, 1] passes
    assert to_float(x / 64 - 2).min() < 0                     # signed (standardised) passes


def test_network_forward_refuses_float_images_in_0_255():
    from minisnn import poisson_encode
    from minisnn.models import build
    from minisnn.testing import strict_backend
    x = np.random.default_rng(0).integers(0, 256, (2, 1, 28, 28)).astype(np.float32)
    net = build("lenet5", width=0.1)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*up to 2.*divide these by 255"):
        net.forward(x, 2)
    assert net.forward(x / 255, 2).shape == (2, 10)           # [0, 1] passes
    assert net.forward(x / 64 - 2, 2).shape == (2, 10)        # signed (standardised) passes
    be = strict_backend()                                     # device arrays, as on CuPy
    with pytest.raises(ValueError, match="divide these by 255"):
        poisson_encode(be.xp, be.to_device(x), 2, be.rng(0))


# -- minisnn.load ----------------------------------------------------------------------------------
def _save_run(path, dataset="mnist", extra=None):
    from minisnn import checkpoint
    from minisnn.models import build
    config = {"model": "lenet5", "dataset": dataset, "width": 0.1, "timesteps": 4, "dtype": "float64",
              "seed": 3, "dropout": 0.0, "time_chunk": 2, "encoding_scale": 1.0}
    net = build("lenet5", (1, 28, 28) if dataset == "mnist" else (3, 32, 32), width=0.1, seed=9,
                backend=Backend("cpu", "float64"))
    weights = {k: np.asarray(v) for k, v in net.parameters().items()}
    checkpoint.save(path, checkpoint.Checkpoint(
        epoch=2, weights=weights, optimizer={"type": "sgd", "lr": 0.1, "steps": 0},
        scheduler={"base_lr": 0.1, "milestones": [], "gamma": 0.2, "epoch": 2},
        config=config, rng={}, extra=extra or {}))
    return net


def test_load_returns_a_ready_network(tmp_path):
    import minisnn
    ref = _save_run(tmp_path / "c.h5")
    model = minisnn.load(tmp_path / "c.h5")
    assert model.T == 4 and model.dataset == "mnist" and model.epoch == 2
    assert model.net.input_shape == (1, 28, 28) and model.net.backend.dtype is np.float64
    for k, v in ref.parameters().items():
        np.testing.assert_array_equal(model.net.parameters()[k], v)
    images = np.random.default_rng(1).integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    scores = model.scores(images, batch_size=2)
    assert scores.shape == (5, 10)
    np.testing.assert_array_equal(model.predict(images, batch_size=2), scores.argmax(1))
    # the same preprocessing and draws as the network fed by hand
    x = Backend("cpu", "float64").to_device(images[:2] / 255.0)
    np.testing.assert_allclose(scores[:2], ref.forward(x, 4, rng_key=(0, "predict", 0)))
    assert 0.0 <= model.accuracy(images, np.zeros(5)) <= 1.0
    assert minisnn.load(tmp_path / "c.h5", dtype="float32").net.backend.dtype is np.float32


def test_load_standardises_colour_inputs(tmp_path):
    import minisnn
    _save_run(tmp_path / "c.h5", "cifar10", extra={"standardize": {"mean": [0.5] * 3, "std": [0.25] * 3}})
    model = minisnn.load(tmp_path / "c.h5")
    images = np.full((1, 3, 32, 32), 255, np.uint8)
    np.testing.assert_allclose(model.preprocess(images), 2.0)


def test_load_bad_file(tmp_path):
    import minisnn
    from minisnn.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="not found"):
        minisnn.load(tmp_path / "none.h5")
