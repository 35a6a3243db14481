"""Hybrid training: an ANN converted into the spiking model (minisnn.hybrid), the trainable reset by
subtraction and direct input, and ``--init-from ANN_CHECKPOINT`` on the command line."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from minisnn import ann, hybrid, models
from minisnn.backend import Backend
from minisnn.encoding import DirectInput, PoissonEncoder
from minisnn.gradients import UnsupportedGradient
from minisnn.layers import LIF, SpikingAvgPool
from tests.test_ann import trained_bars_ann
from tests.test_train import REPO, _env, error_line, fake_mnist, last_json, run_cli  # noqa: F401 (fixture)


# ------------------------------------------------------------------------------------------
# the neurons: reset by subtraction through the aggregated backward
# ------------------------------------------------------------------------------------------

def _counts(reset, leak, currents):
    layer = LIF(1.0, leak, name="lif", reset=reset)
    layer.build(Backend("cpu", "float64"), currents.shape[2:])
    layer.reset(currents.shape[1], training=True, T=currents.shape[0])
    layer.forward(currents.copy())
    return layer.state.count.copy(), layer.derivative()


@pytest.mark.parametrize("leak", [1.0, 0.99])
def test_subtract_reset_spike_count_follows_the_backward_derivative(leak):
    """Finite differences of the spike count itself: scaling each neuron's input currents by
    1 +- h changes net = sum_t I_t by +-h net, and (a(net + h net) - a(net - h net)) / (2 h net)
    is the slope the backward assumes, a'(net) = (1 + ln(lambda) f / a) / V_th (eqs 3.16, 3.22).
    With reset by subtraction a(T) V_th = net - U_T (IF), so the slope matches to ~1 %; the hard
    reset loses the charge above threshold at each spike and its slope is a third lower."""
    rng = np.random.default_rng(0)
    T, n, h = 100, 4000, 0.05
    currents = rng.uniform(0.05, 0.8, (1, 1, n)) * rng.uniform(0, 2, (T, 1, 1))
    net = currents.sum(axis=0)
    slopes = {}
    for reset in ("subtract", "hard"):
        count, derivative = _counts(reset, leak, currents)
        up, _ = _counts(reset, leak, currents * (1 + h))
        down, _ = _counts(reset, leak, currents * (1 - h))
        fired = count > 0
        slopes[reset] = ((up - down) / (2 * h * net))[fired].mean() / derivative[fired].mean()
    assert abs(slopes["subtract"] - 1) < 0.03, slopes
    assert slopes["hard"] < 0.8, slopes


def test_subtract_reset_keeps_the_charge_above_threshold():
    for cls, args in ((LIF, (1.0, 1.0)), (SpikingAvgPool, (0.25,))):
        counts = {}
        for reset in ("hard", "subtract"):
            layer = cls(*args, name="n", reset=reset)
            shape = (2, 2, 1) if cls is SpikingAvgPool else (1,)
            layer.build(Backend("cpu", "float64"), shape)
            layer.reset(1, T=10)
            x = np.full((10, 1) + shape, 0.75 if cls is LIF else 0.1875)     # 7.5 thresholds of charge
            counts[reset] = float(layer.forward(x).sum())
        assert counts == {"hard": 5.0, "subtract": 7.0}, (cls, counts)
    with pytest.raises(ValueError, match="reset must be"):
        LIF(reset="zero")


def test_gradient_through_time_refuses_reset_by_subtraction():
    """Refused when the network is built or switched, naming the layers, never run on another graph."""
    with pytest.raises(UnsupportedGradient, match="hard reset.*lif1, pool1"):
        models.build("lenet5", (1, 12, 12), 3, 0.1, Backend("cpu", "float64"), reset="subtract",
                     gradient="through-time")
    net = models.build("lenet5", (1, 12, 12), 3, 0.1, Backend("cpu", "float64"), reset="subtract")
    with pytest.raises(UnsupportedGradient, match="hard reset"):
        net.gradient = "through-time"
    assert net.gradient == "aggregated"


def test_direct_input_trains_on_the_image_as_current():
    """With DirectInput the first layer's input count x(T) (eq 3.3) is T x: dE/dW1 = delta (T x)."""
    net = models.build("lenet5", (1, 12, 12), 3, 0.25, Backend("cpu", "float64"), encoder=DirectInput(),
                       reset="subtract")
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 12, 12))
    out = net.forward(x, 7, train=True)
    np.testing.assert_allclose(net.layers[0].input_count, 7 * x.transpose(0, 2, 3, 1))
    net.backward(out - np.eye(3)[[0, 2]])
    assert all(np.isfinite(g).all() and np.abs(g).sum() > 0 for g in net.gradients().values())


# ------------------------------------------------------------------------------------------
# conversion
# ------------------------------------------------------------------------------------------

def test_weight_factors_by_hand():
    """lenet5: conv1 lambda_in / l1, conv2 l1 theta / l2 (a spiking pool's spike stands for theta
    of its input), fc1 l2 theta / l3, output l3 g; Poisson with scale 0.5 has lambda_in = 2."""
    net = models.build("lenet5", (1, 12, 12), 3, 0.25, encoder=PoissonEncoder(0.5))
    scales = {"lif1": 2.0, "lif2": 3.0, "lif_fc1": 5.0}
    factors, used = hybrid.weight_factors(net, scales, T=20)
    g = 20 * 0.01 / (1 - 0.99 ** 20)
    expected = {"conv1.weight": 2 / 2.0, "conv2.weight": 2.0 * 0.75 / 3.0, "fc1.weight": 3.0 * 0.75 / 5.0,
                "output.weight": 5.0 * g}
    assert factors.keys() == expected.keys() and used == scales
    for key, value in expected.items():
        assert np.isclose(factors[key], value), (key, factors[key], value)


def test_weight_factors_residual_blocks():
    """A 1x1 skip convolution takes lambda_in / lambda_b; a parameter-free skip keeps the block at
    its input's scale (lambda_b = lambda_in), which is exact."""
    net = models.build("resnet11", (3, 16, 16), 3, 0.05, encoder=DirectInput())
    scales = {layer.name: 1.0 + i for i, layer in enumerate(net.neuron_layers())}
    factors, used = hybrid.weight_factors(net, scales, T=10)
    after_pool = scales["lif1"] * 0.75                                               # conv1, then a pool
    assert np.isclose(factors["block1.skip.weight"], after_pool / scales["block1.lif_b"])
    assert used["block4.lif_b"] == used["block3.lif_b"] != scales["block4.lif_b"]        # subsample skip
    assert np.isclose(factors["block4.conv_b.weight"], scales["block4.lif_a"] / scales["block3.lif_b"])
    assert set(factors) == set(net.parameters())


@pytest.mark.parametrize("reset,entry", [("subtract", "direct"), ("subtract", "poisson")])
def test_conversion_starts_the_spiking_network_near_the_ann(reset, entry):
    """A LeNet5 ANN trained on bars, converted into the spiking model: within 5 points of the ANN at
    T=50 on the same images. All lambdas 100x too large (hardly a spike) would give chance."""
    net, train_x, test_x, test_y, ann_acc = trained_bars_ann()
    snn = models.build("lenet5", (1, 12, 12), 2, 0.25, reset=reset,
                       encoder=DirectInput() if entry == "direct" else PoissonEncoder(1.0))
    record = hybrid.convert(net, snn, train_x, 99.9, T=50)
    assert set(record["scales"]) == {"lif1", "lif2", "lif_fc1"}
    snn_acc = ann.evaluate_snn(snn, test_x, test_y, T=50)
    assert ann_acc >= 0.95 and snn_acc >= ann_acc - 0.05, (ann_acc, snn_acc)
    broken = {k: 100 * v for k, v in record["scales"].items()}
    hybrid.load_converted(net, snn, broken, T=50)
    assert ann.evaluate_snn(snn, test_x, test_y, T=50) < 0.7


def test_output_calibration_fits_the_outputs_to_the_ann():
    """After calibrate_output the least-squares factor between the spiking outputs and the ANN's is
    1 (the fit is done), the outputs are closer to the ANN's than the conversion leaves them, and
    the predictions are unchanged (a positive factor keeps the ranking)."""
    net, train_x, test_x, test_y, _ = trained_bars_ann()
    snn = models.build("lenet5", (1, 12, 12), 2, 0.25, reset="subtract", encoder=DirectInput())
    hybrid.convert(net, snn, train_x, 99.9, T=8)
    a, before = ann.forward(net, test_x), snn.forward(test_x, 8)
    record = hybrid.calibrate_output(net, snn, train_x[:100], T=8)
    after = snn.forward(test_x, 8)
    assert record["images"] == 100 and record["factor"] > 1.2, record   # T=8 is short: outputs too small
    np.testing.assert_allclose(after, before * record["factor"], rtol=1e-5, atol=1e-7)
    assert ((after - a) ** 2).sum() < 0.8 * ((before - a) ** 2).sum()
    assert abs(hybrid.calibrate_output(net, snn, train_x[:100], T=8)["factor"] - 1) < 1e-6
    assert (after.argmax(1) == before.argmax(1)).all()
    hybrid.load_converted(net, snn, {name: 1e4 for name in ("lif1", "lif2", "lif_fc1")}, T=8)     # silent
    with pytest.raises(hybrid.ConversionError, match="no spike reached the output layer"):
        hybrid.calibrate_output(net, snn, train_x[:100], T=8)
    hybrid.load_converted(net, snn, {name: 1.0 for name in ("lif1", "lif2", "lif_fc1")}, T=8)
    snn.load_parameters({k: (-v if k.startswith("output.") else v) for k, v in snn.parameters().items()})  # flipped
    with pytest.raises(hybrid.ConversionError, match="run against the ANN's"):
        hybrid.calibrate_output(net, snn, train_x[:100], T=8)


# ------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------

TINY = ["--width", "0.25", "--batch-size", "16", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def ann_run(fake_mnist, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("ann")
    proc = run_cli(["--network", "ann", "--data-dir", fake_mnist, "--epochs", 2, "--limit-train", 256,
                    "--limit-test", 64, "--lr", 0.01, "--momentum", 0.9, "--out", cwd / "ann", *TINY], cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / "ann" / "checkpoint.h5", last_json(proc.stdout)["test_accuracy"]


HYBRID = ["--timesteps", 10, "--limit-train", 64, "--limit-test", 64, "--convert-images", 100,
          "--reset", "subtract", "--input", "direct", *TINY]


def test_hybrid_run_records_its_ann_and_resumes_exactly(ann_run, fake_mnist, tmp_path):
    source, ann_acc = ann_run
    common = ["--init-from", source, "--data-dir", fake_mnist, *HYBRID]
    straight = run_cli([*common, "--epochs", 2, "--out", tmp_path / "straight"], tmp_path)
    first = run_cli([*common, "--epochs", 1, "--out", tmp_path / "split"], tmp_path)
    assert straight.returncode == 0 and first.returncode == 0, straight.stderr + first.stderr
    assert "converted the ANN" in first.stdout
    metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    record = metrics["init_from"]
    assert record["network"] == "ann" and record["checkpoint"] == str(source.resolve())
    assert record["test_accuracy"] == ann_acc
    conversion = record["conversion"]
    assert {k: conversion[k] for k in ("percentile", "images", "reset", "input", "timesteps")} == \
        {"percentile": 99.9, "images": 64, "reset": "subtract", "input": "direct", "timesteps": 10}
    assert set(conversion["scales"]) == {"lif1", "lif2", "lif_fc1"}
    assert metrics["config"]["reset"] == "subtract" and metrics["config"]["input"] == "direct"
    with h5py.File(tmp_path / "split" / "checkpoint.h5", "r") as h5:
        assert json.loads(h5.attrs["extra"])["init_from"] == record
    resumed = run_cli(["--resume", tmp_path / "split" / "checkpoint.h5", "--epochs", 2, "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((tmp_path / "split" / "metrics.json").read_text())["init_from"] == record
    with h5py.File(tmp_path / "straight" / "checkpoint.h5", "r") as a, \
            h5py.File(tmp_path / "split" / "checkpoint.h5", "r") as b:
        for name in a["weights"]:
            np.testing.assert_array_equal(a["weights"][name][()], b["weights"][name][()], err_msg=name)
    assert last_json(resumed.stdout)["test_accuracy"] == last_json(straight.stdout)["test_accuracy"]


def test_a_run_of_0_epochs_tests_and_saves_the_converted_start(ann_run, fake_mnist, tmp_path):
    """--epochs 0 evaluates the converted network (near the ANN) and saves it as epoch 0; resumed
    for one epoch it ends where one epoch from the ANN ends."""
    source, ann_acc = ann_run
    common = ["--init-from", source, "--data-dir", fake_mnist, *HYBRID, "--timesteps", 30]
    proc = run_cli([*common, "--epochs", 0, "--out", tmp_path / "start"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    start = json.loads((tmp_path / "start" / "metrics.json").read_text())
    assert start["epochs"] == [] and start["test_accuracy"] == start["start"]["test_accuracy"]
    assert start["wall_seconds"] > 0
    assert last_json(proc.stdout)["test_accuracy"] == start["test_accuracy"] >= ann_acc - 0.1, (ann_acc, proc.stdout)
    with h5py.File(tmp_path / "start" / "checkpoint.h5", "r") as h5:
        assert h5.attrs["epoch"] == 0
    resumed = run_cli(["--resume", tmp_path / "start", "--epochs", 1, "--quiet"], tmp_path)
    straight = run_cli([*common, "--epochs", 1, "--out", tmp_path / "straight"], tmp_path)
    assert resumed.returncode == 0 and straight.returncode == 0, resumed.stderr + straight.stderr
    after = json.loads((tmp_path / "start" / "metrics.json").read_text())
    assert after["start"] == start["start"] and len(after["epochs"]) == 1     # the start's record carried on
    assert "start" not in json.loads((tmp_path / "straight" / "metrics.json").read_text())
    with h5py.File(tmp_path / "straight" / "checkpoint.h5", "r") as a, \
            h5py.File(tmp_path / "start" / "checkpoint.h5", "r") as b:
        for name in a["weights"]:
            np.testing.assert_array_equal(a["weights"][name][()], b["weights"][name][()], err_msg=name)


@pytest.mark.parametrize("args,expect", [
    (["--width", "0.5"], "width"),
    (["--gradient", "through-time"], "--reset hard"),
    (["--network", "ann"], "--reset"),
    (["--encoding-scale", "0.5"], "--encoding-scale"),
])
def test_hybrid_bad_combinations_exit_2(ann_run, fake_mnist, tmp_path, args, expect):
    flags = [a for a in HYBRID if a not in ("--width", "0.25")] + ([] if "--width" in args else ["--width", "0.25"])
    proc = run_cli(["--init-from", ann_run[0], "--data-dir", fake_mnist, *flags, *args,
                    "--out", tmp_path / "run"], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expect in error_line(proc)
    assert not (tmp_path / "run").exists()


def test_calibrated_output_is_recorded_and_keeps_the_predictions(ann_run, fake_mnist, tmp_path):
    """--calibrate-output N: the factor and N in the conversion's record; the converted network's
    test accuracy is the uncalibrated one's (a positive factor on the output keeps the argmax)."""
    common = ["--init-from", ann_run[0], "--data-dir", fake_mnist, *HYBRID, "--epochs", 0]
    plain = run_cli([*common, "--out", tmp_path / "plain"], tmp_path)
    fitted = run_cli([*common, "--calibrate-output", 32, "--out", tmp_path / "fitted"], tmp_path)
    assert plain.returncode == 0 and fitted.returncode == 0, plain.stderr + fitted.stderr
    record = json.loads((tmp_path / "fitted" / "metrics.json").read_text())["init_from"]["conversion"]
    assert record["output_calibration"]["images"] == 32 and record["output_calibration"]["factor"] > 0
    assert "output_calibration" not in json.loads((tmp_path / "plain" / "metrics.json").read_text())["init_from"]["conversion"]
    assert last_json(fitted.stdout)["test_accuracy"] == last_json(plain.stdout)["test_accuracy"]
    assert last_json(fitted.stdout)["test_loss"] != last_json(plain.stdout)["test_loss"]


def test_conversion_flags_need_an_ann_source(ann_run, fake_mnist, tmp_path):
    alone = run_cli(["--data-dir", fake_mnist, "--convert-percentile", 99, *TINY, "--out", tmp_path / "a"], tmp_path)
    assert alone.returncode == 2 and "--init-from" in error_line(alone)
    fit_alone = run_cli(["--data-dir", fake_mnist, "--calibrate-output", 10, *TINY, "--out", tmp_path / "c"], tmp_path)
    assert fit_alone.returncode == 2 and "--calibrate-output" in error_line(fit_alone)
    ann_into_ann = run_cli(["--network", "ann", "--init-from", ann_run[0], "--data-dir", fake_mnist,
                            "--convert-images", 10, *TINY, "--out", tmp_path / "b"], tmp_path)
    assert ann_into_ann.returncode == 2 and "--convert-images" in error_line(ann_into_ann)


# ------------------------------------------------------------------------------------------
# the experiment script, on real MNIST
# ------------------------------------------------------------------------------------------

def test_experiment_script_on_a_tiny_mnist_ann(shared_data, tmp_path):
    """A LeNet5 ANN trained for one epoch on 2,000 MNIST images; experiments/hybrid.py converts it:
    reset by subtraction at T=50 tests within a few points of the ANN on the same images."""
    train = run_cli(["--network", "ann", "--data-dir", shared_data / "mnist", "--width", "0.5", "--epochs", 1,
                     "--limit-train", 2000, "--limit-test", 100, "--lr", 0.003, "--momentum", 0.9, "--quiet",
                     "--threads", "1", "--out", tmp_path / "ann"], tmp_path)
    assert train.returncode == 0, train.stderr
    out = tmp_path / "hybrid.json"
    args = [REPO / "experiments" / "hybrid.py", tmp_path / "ann" / "checkpoint.h5", "--data-dir", shared_data / "mnist",
            "--limit", 200, "--timesteps", "20,50", "--convert-images", 300, "--out", out]
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["test_images"] == 200 and result["ann_test_accuracy"] > 0.8
    rows = {(r["reset"], r["input"]): r["accuracy"] for r in result["converted"]}
    assert set(rows) == {(r, i) for r in ("hard", "subtract") for i in ("poisson", "direct")}
    assert all(set(acc) == {"20", "50"} for acc in rows.values())
    for entry in ("poisson", "direct"):
        assert rows["subtract", entry]["50"] >= result["ann_test_accuracy"] - 0.04, result

    # the start of a hybrid run measured on the validation split that run would hold out
    args = [*args[:2], "--data-dir", shared_data / "mnist", "--limit-train", 1000, "--val-split", 0.2, "--limit", 0,
            "--timesteps", 50, "--resets", "subtract", "--inputs", "direct", "--convert-images", 300, "--out", out]
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["split"] == "val" and result["val_images"] == 200 and "test_images" not in result
    assert result["ann_val_accuracy"] > 0.8 and result["converted"][0]["accuracy"]["50"] > 0.7, result
