"""The ANN baseline (ReLU, AvgPool, exact gradient) and ANN-to-SNN conversion (minisnn.ann)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minisnn import ann
from minisnn.backend import Backend
from tests.gradcheck import check_whole_chain, numerical_gradient, relative_error, sample_indices

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name,shape", [("lenet5", (1, 28, 28)), ("vgg7", (3, 32, 32))])
def test_build_defaults_input_shape_like_the_snn(name, shape):
    from minisnn import models
    assert ann.build(name, width=0.05).input_shape == models.build(name, width=0.05).input_shape == shape


def test_relu_and_avgpool_forward_backward_by_hand():
    backend = Backend("cpu", "float64")
    relu = ann.ReLU(name="r")
    relu.build(backend, (2, 2, 1))
    relu.reset(1, True)
    x = np.array([[[[1.5], [-2.0]], [[0.0], [3.0]]]])[None]          # (T=1, B=1, 2, 2, 1)
    np.testing.assert_array_equal(relu.forward(x.copy())[0, 0, :, :, 0], [[1.5, 0], [0, 3]])
    np.testing.assert_array_equal(relu.backward(np.ones((1, 2, 2, 1)))[0, :, :, 0], [[1, 0], [0, 1]])
    pool = ann.AvgPool(name="p")
    assert pool.build(backend, (4, 4, 1)) == (2, 2, 1)
    pool.reset(1, True)
    y = np.arange(16.0).reshape(1, 1, 4, 4, 1)
    # top-left window 0, 1, 4, 5 -> 2.5; top-right 2, 3, 6, 7 -> 4.5
    np.testing.assert_array_equal(pool.forward(y)[0, 0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(pool.backward(np.ones((1, 2, 2, 1))), np.full((1, 4, 4, 1), 0.25))


@pytest.mark.parametrize("name,shape", [("lenet5", (1, 12, 12)), ("resnet7", (3, 8, 8))])
def test_ann_gradient_is_exact_by_finite_differences(name, shape):
    """The whole ANN's hand-written gradient (no linearisation) against centred differences."""
    net = ann.build(name, shape, num_classes=3, width=0.1, backend=Backend("cpu", "float64"), dropout=0.0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2,) + shape)
    labels = np.array([0, 2])

    def loss():
        out = ann.forward(net, x, train=True)
        e = out - np.eye(3)[labels]
        return 0.5 * float((e * e).sum())

    out = ann.forward(net, x, train=True)
    net.backward(out - np.eye(3)[labels])
    analytic = {k: v.copy() for k, v in net.gradients().items()}
    assert set(analytic) == set(net.parameters())
    for key, weight in net.parameters().items():
        idx = sample_indices(rng, weight.size, 6)
        err = relative_error(analytic[key].reshape(-1)[idx], numerical_gradient(loss, weight, idx))
        assert err < 1e-5, (key, err)


def test_ann_linearised_whole_chain():
    net = ann.build("lenet5", (1, 12, 12), num_classes=4, width=0.1, backend=Backend("cpu", "float64"))
    errors = check_whole_chain(net, batch=2, T=1)
    assert max(errors.values()) < 1e-5, errors


def trained_bars_ann():
    """A quarter-width LeNet5 ANN trained on 400 bar images: (net, train images, test images,
    test labels, its test accuracy)."""
    rng = np.random.default_rng(0)
    train_x, train_y = _bars(400, rng)
    test_x, test_y = _bars(200, rng)
    net = ann.build("lenet5", (1, 12, 12), num_classes=2, width=0.25, seed=1)
    ann.train(net, train_x, train_y, epochs=4, batch_size=32, lr=0.002, seed=0)
    return net, train_x, test_x, test_y, ann.evaluate(net, test_x, test_y)


def _bars(n, rng, size=12):
    """2 classes: a horizontal (0) or vertical (1) bar of width 2 at a random place."""
    x = np.zeros((n, 1, size, size), np.float32)
    y = rng.integers(0, 2, n)
    for i in range(n):
        p = rng.integers(1, size - 3)
        lo, hi = rng.integers(0, 3), rng.integers(size - 3, size + 1)
        if y[i] == 0:
            x[i, 0, p:p + 2, lo:hi] = rng.uniform(0.6, 1.0)
        else:
            x[i, 0, lo:hi, p:p + 2] = rng.uniform(0.6, 1.0)
    return x, y


def test_conversion_keeps_accuracy_at_large_T():
    """Train a small ANN on bars; converted (99.9 percentile, reset by subtraction, Poisson input)
    at T=100 its accuracy stays within 5 points of the ANN's. With a clearly broken normalisation
    (all lambdas 100x too large: almost no spikes) it would fall to chance."""
    net, train_x, test_x, test_y, ann_acc = trained_bars_ann()
    assert ann_acc >= 0.95
    snn, scales = ann.convert(net, train_x, percentile=99.9)
    assert set(scales) == {"lif1", "lif2", "lif_fc1"} and all(v > 0 for v in scales.values())
    snn_acc = ann.evaluate_snn(snn, test_x, test_y, T=100)
    assert snn_acc >= ann_acc - 0.05, (ann_acc, snn_acc)
    # the ANN's weights were not touched by the conversion
    assert np.isclose(ann.evaluate(net, test_x, test_y), ann_acc)


def test_if_subtract_keeps_residual_charge():
    backend = Backend("cpu", "float64")
    sub, zero = ann.IFSubtract(1.0, "subtract", name="s"), ann.IFSubtract(1.0, "zero", name="z")
    for layer in (sub, zero):
        layer.build(backend, (1,))
        layer.reset(1, False)
    current = np.full((10, 1, 1), 0.75)                 # 7.5 units of charge: 7 spikes
    assert sub.forward(current.copy()).sum() == 7
    assert zero.forward(current.copy()).sum() == 5      # hard reset: fires every 2nd step


def _tiny_checkpoint(path):
    from minisnn import checkpoint, models
    net = models.build("lenet5", (1, 28, 28), width=0.1, seed=0)
    weights = {k: np.asarray(v) for k, v in net.parameters().items()}
    ckpt = checkpoint.Checkpoint(
        epoch=0, weights=weights,
        optimizer={"type": "sgd", "lr": 0.01, "steps": 0, "hyper": {}, "buffers": {}},
        scheduler={"base_lr": 0.01, "milestones": [], "gamma": 0.2, "epoch": 0},
        config={"model": "lenet5", "dataset": "mnist", "width": 0.1, "timesteps": 5,
                "encoding_scale": 1.0}, rng={"seed": 0})
    checkpoint.save(path, ckpt)


def test_analyze_cli_prints_final_json_line(tmp_path, shared_data):
    ckpt = tmp_path / "tiny.h5"
    _tiny_checkpoint(ckpt)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "minisnn.analyze", str(ckpt), "--data-dir", str(shared_data),
                           "--limit", "16", "--out", str(out), "--sweep", "--sweep-steps", "3,5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["T"] == 5 and last["samples"] == 16 and last["model"] == "lenet5"
    for key in ("sops", "macs", "energy_snn_j", "energy_ann_j", "spike_rate", "layers", "sweep"):
        assert key in last, key
    assert [s["T"] for s in last["sweep"]] == [3, 5]
    conv1 = next(r for r in last["layers"] if r["name"] == "conv1")
    assert set(conv1) >= {"spike_rate", "sops", "macs"}
    assert conv1["macs"] == 28 * 28 * 2 * 1 * 25            # width 0.1: 20 -> 2 channels
    assert np.isclose(last["energy_ann_j"], 4.6e-12 * last["macs"])
    for name in ("analysis.json", "rates.png", "operations.png", "sweep.png"):
        assert (out / name).is_file(), name


def test_direct_input_feeds_the_image_at_every_step():
    from minisnn import DirectInput
    images = np.random.default_rng(0).normal(size=(3, 1, 4, 4))
    chunks = list(DirectInput().chunks(np, images, 5, 2, rng=None))
    assert [c.shape[0] for c in chunks] == [2, 2, 1]
    assert all(np.array_equal(step, images) for c in chunks for step in c)
    with pytest.raises(ValueError, match="T must be"):
        DirectInput().steps(images, 0)
