"""``python -m minisnn.train`` end to end: outputs, exact resume after SIGKILL, eval-only, and every
failure path (GPU unavailable, dataset missing offline, NaN loss, bad checkpoints).

Runs the CLI in subprocesses, as a user would. Tiny settings keep the file near a minute on 2
cores. Most tests use a synthetic MNIST written in the real IDX format (so they run without the
real data); the end-to-end learning test uses the real MNIST and skips when it is absent.
"""
import csv
import datetime
import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from minisnn import checkpoint as C
from test_checkpoint import reseal

REPO = Path(__file__).resolve().parents[1]
TINY = ["--width", "0.25", "--timesteps", "8", "--batch-size", "16", "--quiet"]


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args, cwd, timeout=240, **env):
    return subprocess.run([sys.executable, "-m", "minisnn.train", *map(str, args)], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=timeout)


#: Runs ``minisnn.train.main`` with a callback ``hook(net, epoch, batch)`` defined by HOOK
#: (Python source, run after every optimiser step): the test's way into the training loop.
DRIVER = """
import os, signal, sys, time
import numpy as np
from minisnn import train
{hook}
sys.exit(train.main(sys.argv[1:], callbacks=[hook]))
"""


def driver_cmd(hook, args):
    return [sys.executable, "-c", DRIVER.format(hook=hook), *map(str, args)]


def run_driver(hook, args, cwd, timeout=240):
    return subprocess.run(driver_cmd(hook, args), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def last_json(stdout):
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    assert lines, "no output on stdout"
    return json.loads(lines[-1])


def error_line(proc):
    """The first line of the error on stderr (warnings aside)."""
    return error_line_of(proc.stderr)


def error_line_of(stderr):
    errors = [line for line in stderr.splitlines() if line.startswith("minisnn.train: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _write_idx(folder, prefix, images, labels):
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(images), 28, 28) + images.tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes())


def _synthetic(n, rng):
    """Digits 0-9 drawn as a bright 7x7 square at a class-dependent place, plus noise."""
    labels = rng.integers(0, 10, n)
    images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
    for i, c in enumerate(labels):
        r, q = 2 + 7 * (c // 4), 2 + 6 * (c % 4)
        images[i, r:r + 7, q:q + 7] = 230
    return images, labels


def synthetic_mnist(tmp_path_factory, train, test, seed, name="data"):
    """A folder of MNIST IDX files holding ``train`` + ``test`` synthetic digits drawn with ``seed``."""
    folder = tmp_path_factory.mktemp(name) / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    _write_idx(folder, "train", *_synthetic(train, rng))
    _write_idx(folder, "t10k", *_synthetic(test, rng))
    return folder


def finished_run(tmp_path_factory, name, args):
    """The folder of a ``python -m minisnn.train`` run with ``args`` that finished (asserted)."""
    out = tmp_path_factory.mktemp(name) / "run"
    proc = run_cli([*args, "--out", out], out.parent)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    return synthetic_mnist(tmp_path_factory, 400, 100, seed=0)


@pytest.fixture(scope="module")
def trained(fake_mnist, tmp_path_factory):
    """One finished 1-epoch run on the synthetic data: (run folder, completed process)."""
    cwd = tmp_path_factory.mktemp("trained")
    out = cwd / "run"
    proc = run_cli(["--data-dir", fake_mnist, "--epochs", 1, "--limit-train", 128, "--limit-test", 64,
                    "--lr", 0.02, "--out", out, *TINY], cwd)
    assert proc.returncode == 0, proc.stderr
    return out, proc


# ------------------------------------------------------------------------------------------
# the command line itself
# ------------------------------------------------------------------------------------------

def test_help_explains_every_flag(tmp_path):
    proc = run_cli(["--help"], tmp_path)
    assert proc.returncode == 0
    for flag in ("--model", "--dataset", "--device", "--epochs", "--batch-size", "--timesteps", "--lr",
                 "--optimizer", "--milestones", "--weight-decay", "--momentum", "--dropout", "--seed",
                 "--data-dir", "--out", "--limit-train", "--limit-test", "--val-split", "--resume",
                 "--eval-only", "--dtype", "--width", "--encoding-scale", "--time-chunk", "--no-download"):
        assert flag in proc.stdout, flag
    assert list(tmp_path.iterdir()) == []


def test_defaults_follow_model_and_dataset():
    from minisnn.config import resolve as resolve_config
    c = resolve_config({"model": "lenet5"})
    assert (c["dataset"], c["timesteps"], c["batch_size"], c["optimizer"], c["milestones"], c["weight_decay"],
            c["epochs"]) == ("mnist", 50, 64, "sgd", [70, 100, 125], 5e-4, 150)
    c = resolve_config({"model": "vgg9"})
    assert (c["dataset"], c["timesteps"], c["batch_size"], c["augment"]) == ("cifar10", 100, 16, "crop-flip")
    assert resolve_config({"model": "resnet7"})["dataset"] == "svhn"
    c = resolve_config({"model": "lenet5", "dataset": "nmnist"})
    assert (c["optimizer"], c["milestones"]) == ("adam", [40, 80, 120])
    assert resolve_config({"model": "lenet5", "lr": 0.1, "timesteps": 7})["timesteps"] == 7


def test_bad_flag_value_exits_2(tmp_path):
    proc = run_cli(["--batch-size", "0"], tmp_path)
    assert proc.returncode == 2 and "batch-size" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# end to end on real MNIST
# ------------------------------------------------------------------------------------------

def test_end_to_end_real_mnist_learns(shared_data, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(["--data-dir", shared_data / "mnist", "--epochs", 2, "--limit-train", 512, "--limit-test", 128,
                    "--timesteps", 12, "--width", 0.25, "--batch-size", 16, "--lr", 0.02, "--out", out, "--quiet"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc.stdout)
    assert summary["epochs"] == 2 and summary["out"] == str(out)
    assert summary["test_accuracy"] > 0.3, summary           # chance is 0.1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["config"]["model"] == "lenet5" and metrics["config"]["lr"] == 0.02
    assert {"python", "numpy", "minisnn"} <= set(metrics["versions"])
    assert len(metrics["epochs"]) == 2
    for row in metrics["epochs"]:
        assert row["epoch_seconds"] > 0 and row["train_loss"] > 0
        finished = datetime.datetime.fromisoformat(row["finished_utc"])              # the epoch's end, in UTC
        assert finished.utcoffset() == datetime.timedelta(0)
        assert datetime.timedelta(0) <= datetime.datetime.now(datetime.timezone.utc) - finished < datetime.timedelta(hours=1)
        rates = row["spike_rates"]["test"]
        assert set(rates) >= {"lif1", "pool1", "lif2", "pool2", "lif_fc1"}
        assert all(0 <= r <= 1 for r in rates.values())
    assert metrics["test_accuracy"] == summary["test_accuracy"]
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["test_accuracy"]) == pytest.approx(summary["test_accuracy"])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck = C.load(out / "checkpoint.h5")
    assert ck.epoch == 2 and ck.config["model"] == "lenet5"
    assert "epoch 1/2" in proc.stdout and "epoch 2/2" in proc.stdout   # one summary line per epoch


# ------------------------------------------------------------------------------------------
# exact resume after SIGKILL
# ------------------------------------------------------------------------------------------

def test_resume_after_sigkill_is_bitwise_exact(fake_mnist, tmp_path):
    # dropout, momentum and a validation split exercise every piece of state that must survive
    args = ["--data-dir", fake_mnist, "--epochs", 2, "--limit-train", 160, "--limit-test", 32, "--val-split", 0.2,
            "--dropout", 0.2, "--momentum", 0.9, "--lr", 0.01, "--seed", 5, *TINY]
    straight = run_cli([*args, "--out", tmp_path / "a"], tmp_path)
    assert straight.returncode == 0, straight.stderr

    killed_dir = tmp_path / "b"
    pause = "def hook(net, epoch, batch):\n    if epoch == 1:\n        time.sleep(3600)"  # after epoch 1's checkpoint
    proc = subprocess.Popen(driver_cmd(pause, [*args, "--out", killed_dir]), cwd=tmp_path, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while C.peek_epoch(killed_dir / "checkpoint.h5") != 1:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no checkpoint of epoch 1 appeared"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert C.load(killed_dir / "checkpoint.h5").epoch == 1

    resumed = run_cli(["--resume", killed_dir / "checkpoint.h5", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed.stdout)["epochs"] == 2

    a, b = C.load(tmp_path / "a" / "checkpoint.h5"), C.load(killed_dir / "checkpoint.h5")
    assert a.epoch == b.epoch == 2
    assert set(a.weights) == set(b.weights)
    for key in a.weights:
        assert np.array_equal(a.weights[key], b.weights[key]), key
    for buf in a.optimizer["buffers"]:
        for key in a.optimizer["buffers"][buf]:
            assert np.array_equal(a.optimizer["buffers"][buf][key], b.optimizer["buffers"][buf][key])
    assert a.optimizer["steps"] == b.optimizer["steps"]
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((killed_dir / "metrics.json").read_text())
    for ra, rb in zip(ma["epochs"], mb["epochs"], strict=True):
        for key in ("train_loss", "train_accuracy", "val_accuracy", "test_accuracy"):
            assert ra[key] == rb[key], key
        assert list(ra) == list(rb)         # epoch 1 came back from the checkpoint: same key order
    assert (killed_dir / "best.h5").exists()
    finished = [datetime.datetime.fromisoformat(r["finished_utc"]) for r in mb["epochs"]]   # dated across the kill
    assert finished == sorted(finished) and all(t.utcoffset() == datetime.timedelta(0) for t in finished)


def test_resume_cannot_change_the_model(trained, tmp_path):
    out, _ = trained
    proc = run_cli(["--resume", out / "checkpoint.h5", "--model", "vgg9"], tmp_path)
    assert proc.returncode == 2
    assert "mismatch" in error_line(proc) and "vgg9" in error_line(proc)


def test_init_from_starts_a_new_run_from_the_weights_and_resume_keeps_its_record(trained, fake_mnist, tmp_path):
    """--init-from loads the weights only: at a negligible lr the new run's first epoch tests as the
    source did (a random start does not); the schedule counts from epoch 1; the record (path,
    sha256, epoch) is in metrics.json and survives --resume."""
    import hashlib

    out, train_proc = trained
    source = out / "checkpoint.h5"
    common = ["--data-dir", fake_mnist, "--limit-train", 32, "--limit-test", 64, "--lr", 1e-12, *TINY]
    warm = run_cli(["--init-from", source, "--epochs", 1, "--out", tmp_path / "warm", *common], tmp_path)
    cold = run_cli(["--epochs", 1, "--out", tmp_path / "cold", *common], tmp_path)
    assert warm.returncode == 0 and cold.returncode == 0, warm.stderr + cold.stderr
    before = last_json(train_proc.stdout)["test_accuracy"]
    assert last_json(warm.stdout)["test_accuracy"] == before != last_json(cold.stdout)["test_accuracy"]
    metrics = json.loads((tmp_path / "warm" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["epochs"]] == [1] and metrics["epochs"][0]["lr"] == 1e-12
    record = metrics["init_from"]
    assert record["checkpoint"] == str(source.resolve()) == metrics["config"]["init_from"]
    assert record["epoch"] == 1 and record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    resumed = run_cli(["--resume", tmp_path / "warm" / "checkpoint.h5", "--epochs", 2, "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads((tmp_path / "warm" / "metrics.json").read_text())
    assert len(again["epochs"]) == 2 and again["init_from"] == record


@pytest.mark.parametrize("args,expect", [
    (["--width", "0.5"], "width"), (["--model", "vgg7", "--dataset", "mnist"], "vgg7")])
def test_init_from_a_checkpoint_of_another_network_exits_2(trained, fake_mnist, tmp_path, args, expect):
    out, _ = trained
    flags = [a for a in TINY if a not in ("--width", "0.25")]
    proc = run_cli(["--init-from", out / "checkpoint.h5", "--data-dir", fake_mnist, *flags, *args,
                    "--out", tmp_path / "run"], tmp_path)
    assert proc.returncode == 2
    assert "--init-from" in error_line(proc) and expect in error_line(proc)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------
# evaluation only
# ------------------------------------------------------------------------------------------

def test_eval_only_reproduces_the_final_test_accuracy(trained, tmp_path, fake_mnist):
    out, train_proc = trained
    ck_before = (out / "checkpoint.h5").read_bytes()
    proc = run_cli(["--eval-only", out / "checkpoint.h5", "--data-dir", fake_mnist, "--out", tmp_path / "ev",
                    "--limit-test", 64, "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc.stdout)
    assert summary["test_accuracy"] == last_json(train_proc.stdout)["test_accuracy"]
    assert "accuracy" in proc.stdout
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["mode"] == "eval-only" and metrics["test_accuracy"] == summary["test_accuracy"]
    assert (out / "checkpoint.h5").read_bytes() == ck_before      # no training happened


# ------------------------------------------------------------------------------------------
# failure paths
# ------------------------------------------------------------------------------------------

def test_gpu_without_cupy_exits_2_and_writes_nothing(fake_mnist, tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['cupy'] = None  # import cupy fails\n")
    out = tmp_path / "run"
    env = _env()
    proc = subprocess.run([sys.executable, "-m", "minisnn.train", "--device", "gpu", "--data-dir", str(fake_mnist),
                           "--out", str(out), *TINY], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": f"{blocker}{os.pathsep}{env['PYTHONPATH']}"})
    assert proc.returncode == 2
    assert "CuPy" in error_line(proc) and proc.stderr.count("--device cpu") == 1      # the advice once
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["block"]


def test_dataset_missing_offline_exits_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    proc = run_cli(["--data-dir", empty, "--no-download", "--out", out, *TINY], tmp_path)
    assert proc.returncode == 2
    assert str(empty) in error_line(proc)
    # the message keeps its lines: the first after "error:", the others indented below it
    first, *rest = proc.stderr[proc.stderr.index("minisnn.train: error:"):].strip().splitlines()
    assert len(rest) >= 3 and all(line.startswith("  ") for line in rest), proc.stderr
    assert "train-images-idx3-ubyte.gz" in rest[0] and "--data-dir DIR" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("device,index", [("gpu", 0), ("cuda", 0), ("gpu:1", 1), ("CUDA:1", 1)])
def test_every_gpu_name_reaches_the_backend(monkeypatch, capsys, tmp_path, device, index):
    import types
    from minisnn import train
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 0))))       # CuPy without a GPU
    assert train.main(["--device", device, "--out", str(tmp_path / "run"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"minisnn.train: error: GPU {index} asked for, but CuPy found 0"), err
    assert err.endswith("use the CPU (--device cpu)\n") and err.count("cpu") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device", ["tpu", "gpu:x", "cpu:0"])
def test_unknown_device_is_refused(capsys, tmp_path, device):
    from minisnn import train
    assert train.main(["--device", device, "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "--device must be cpu, gpu, cuda, gpu:N or cuda:N" in error_line_of(capsys.readouterr().err)


def test_nan_loss_from_absurd_lr_stops_with_status_3(fake_mnist, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(["--data-dir", fake_mnist, "--epochs", 1, "--limit-train", 256, "--limit-test", 32,
                    "--lr", 1e6, "--out", out, *TINY], tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    line = error_line(proc)
    assert "nan" in line.lower() or "inf" in line.lower()
    assert "lower --lr" in line
    assert json.loads((out / "metrics.json").read_text())["status"].startswith("failed")


def test_nan_weights_keep_the_last_good_checkpoint(fake_mnist, tmp_path):
    out = tmp_path / "run"
    poison = "def hook(net, epoch, batch):\n    if epoch == 1:\n        net.parameters()['fc1.weight'][0, 0] = np.nan"
    proc = run_driver(poison, ["--data-dir", fake_mnist, "--epochs", 2, "--limit-train", 64, "--limit-test", 32,
                               "--out", out, *TINY], tmp_path)
    assert proc.returncode == 3, proc.stderr
    line = error_line(proc)
    assert "last good checkpoint" in line and "weight became NaN or infinite" in line
    ck = C.load(out / "checkpoint.h5")
    assert ck.epoch == 1
    assert all(np.isfinite(w).all() for w in ck.weights.values())
    assert last_json(proc.stdout)["status"] == "failed"


def _truncated(src, dst):
    data = Path(src).read_bytes()
    dst.write_bytes(data[: len(data) // 2])


def _no_marker(src, dst):
    with h5py.File(dst, "w") as h5:
        h5.create_dataset("weights/conv1.weight", data=np.zeros((5, 1, 5, 5), np.float32))


def _random(src, dst):
    dst.write_bytes(np.random.default_rng(1).bytes(4096))


def _misfit(src, dst):
    """A real checkpoint whose stored config asks for a wider network than its weights."""
    dst.write_bytes(Path(src).read_bytes())
    with h5py.File(dst, "r+") as h5:
        config = json.loads(h5.attrs["config"])
        config["width"] = 0.5
        h5.attrs["config"] = json.dumps(config)
    reseal(dst)                                     # a consistent file, only the model differs


@pytest.mark.parametrize("mode", ["--resume", "--eval-only", "--init-from"])
@pytest.mark.parametrize("make,expect", [
    (None, "not found"),
    (_random, "not an HDF5 file"),
    (_truncated, "truncated or corrupt"),
    (_no_marker, "not a minisnn checkpoint"),
    (_misfit, "model mismatch"),
])
def test_bad_checkpoint_exits_2(trained, fake_mnist, tmp_path, mode, make, expect):
    src = trained[0] / "checkpoint.h5"
    bad = tmp_path / "bad.h5"
    if make is not None:
        make(src, bad)
    out = tmp_path / "run"
    fits = ["--width", "0.5"] if mode == "--init-from" else []      # the width _misfit's config claims
    proc = run_cli([mode, bad, "--data-dir", fake_mnist, "--out", out, "--quiet", *fits], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = error_line(proc)
    assert expect in line and str(bad) in line
    assert not out.exists()


# ------------------------------------------------------------------------------------------
# N-MNIST: event frames fed as spike trains
# ------------------------------------------------------------------------------------------

def _nmnist_bin(rng, digit, n=3000):
    """One recording in the 40-bit N-MNIST format; events cluster in a digit-dependent column
    (dense enough that spikes reach the output layer of a width-0.25 LeNet5)."""
    x = np.clip(rng.normal(3 + 3 * digit, 1.5, n), 0, 33).astype(np.int64)
    y = rng.integers(0, 34, n)
    p = rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 300_000, n))
    raw = np.zeros((n, 5), np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


def test_nmnist_frames_train(tmp_path):
    root = tmp_path / "nmnist"
    rng = np.random.default_rng(0)
    for split, per in (("Train", 4), ("Test", 2)):
        for digit in range(10):
            (root / split / str(digit)).mkdir(parents=True)
            for k in range(per):
                (root / split / str(digit) / f"{k:05d}.bin").write_bytes(_nmnist_bin(rng, digit))
    out = tmp_path / "run"
    proc = run_cli(["--dataset", "nmnist", "--data-dir", root, "--epochs", 1, "--out", out, "--width", "0.25",
                    "--timesteps", 6, "--batch-size", 8, "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["optimizer"] == "adam" and metrics["config"]["milestones"] == [40, 80, 120]
    assert metrics["test_samples"] == 20 and metrics["train_samples"] == 40
    assert 0 <= last_json(proc.stdout)["test_accuracy"] <= 1
    assert C.load(out / "checkpoint.h5").optimizer["buffers"].keys() == {"m", "v"}


def test_mean_loss_reduction_is_the_summed_loss_over_batch():
    import numpy as np
    from minisnn.loss import mse_loss
    rng = np.random.default_rng(1)
    out = rng.random((8, 10)).astype(np.float64)
    labels = rng.integers(0, 10, 8)
    e_sum, g_sum = mse_loss(out, labels)
    e_mean, g_mean = mse_loss(out, labels, "mean")
    assert np.isclose(float(e_mean) * 8, float(e_sum))
    assert np.allclose(g_mean * 8, g_sum)
    with pytest.raises(ValueError, match="reduction"):
        mse_loss(out, labels, "max")


def test_fast_preset_steps_as_the_summed_loss_values_it_was_chosen_with():
    """lr 0.0012, weight decay 5e-4 and momentum 0.9 on the summed loss (the validation sweep)
    and the preset's values on the averaged loss move the weights identically."""
    from minisnn import SGD
    from minisnn.config import FAST_PRESET
    batch = FAST_PRESET["batch_size"]
    rng = np.random.default_rng(2)
    start = rng.normal(size=(20, 30))
    summed, averaged = {"w": start.copy()}, {"w": start.copy()}
    by_sum = SGD(summed, lr=0.0012, momentum=0.9, weight_decay=5e-4)
    by_mean = SGD(averaged, lr=FAST_PRESET["lr"], momentum=FAST_PRESET["momentum"],
                  weight_decay=FAST_PRESET["weight_decay"])
    for _ in range(5):
        grad_sum = rng.normal(size=start.shape) * batch        # dE/dW of a batch, summed loss
        by_sum.step({"w": grad_sum})
        by_mean.step({"w": grad_sum / batch})
    assert not np.allclose(summed["w"], start)
    assert np.allclose(averaged["w"], summed["w"], rtol=1e-12, atol=1e-12)


def test_loss_takes_the_array_module_from_the_arrays():
    from minisnn.loss import array_module, correct, mse_loss
    from minisnn.testing import strict_backend, strict_xp
    be = strict_backend("float64")
    out = be.to_device(np.random.default_rng(0).random((4, 10)))
    labels = be.to_device(np.array([1, 2, 3, 4]), dtype=np.int64)
    assert array_module(out) is strict_xp and array_module(np.zeros(2)) is np
    loss, error = mse_loss(out, labels)               # a strict array: no host NumPy mixed in
    assert isinstance(error, strict_xp.ndarray) and 0 <= int(correct(out, labels)) <= 4


# ------------------------------------------------------------------------------------------
# --network ann: the ANN of the same architecture, through the same command
# ------------------------------------------------------------------------------------------

def test_ann_trains_resumes_and_loads_through_the_cli(fake_mnist, tmp_path):
    """An ANN run learns the synthetic digits, its checkpoint comes back as an ANN through
    minisnn.load with the same accuracy, and --eval-only reproduces the run's test accuracy."""
    import minisnn
    from minisnn import ann
    from minisnn.data import load, subset

    out = tmp_path / "ann"
    proc = run_cli(["--network", "ann", "--data-dir", fake_mnist, "--epochs", 2, "--lr", 0.002, "--momentum", 0.9,
                    "--width", 0.25, "--batch-size", 16, "--limit-test", 100, "--out", out, "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc.stdout)
    assert summary["test_accuracy"] > 0.6, summary                  # chance is 0.1
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["network"] == "ann" and config["timesteps"] == 1
    pretrained = minisnn.load(out / "checkpoint.h5", threads=1)
    assert type(pretrained.net.encoder).__name__ == "DirectInput"
    assert all(not isinstance(layer, minisnn.LIF) for layer in pretrained.net.all_layers())
    images, labels = subset(*load("mnist", "test", fake_mnist), 100)
    x = pretrained.net.backend.to_device(pretrained.preprocess(images))
    hits = int(minisnn.correct(ann.forward(pretrained.net, x), labels))
    assert hits / 100 == summary["test_accuracy"]
    ev = run_cli(["--eval-only", out / "checkpoint.h5", "--data-dir", fake_mnist, "--limit-test", 100,
                  "--out", tmp_path / "ev", "--quiet"], tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert last_json(ev.stdout)["test_accuracy"] == summary["test_accuracy"]


@pytest.mark.parametrize("args,expect", [
    (["--network", "ann", "--timesteps", "5"], "--network ann runs one step"),
    (["--network", "ann", "--dataset", "nmnist"], "needs an image dataset"),
    (["--network", "cnn"], "--network"),
])
def test_ann_flags_that_cannot_work_exit_2(tmp_path, args, expect):
    proc = run_cli(args + ["--no-download", "--out", tmp_path / "run"], tmp_path)
    assert proc.returncode == 2
    assert expect in proc.stderr
    assert not (tmp_path / "run").exists()


def test_ann_checkpoint_is_refused_by_analyze_with_a_reason(fake_mnist, tmp_path):
    out = tmp_path / "ann"
    proc = run_cli(["--network", "ann", "--data-dir", fake_mnist, "--epochs", 1, "--limit-train", 32,
                    "--limit-test", 16, "--width", 0.25, "--lr", 0.001, "--out", out, "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    analyze = subprocess.run([sys.executable, "-m", "minisnn.analyze", out / "checkpoint.h5", "--out", tmp_path / "a"],
                             cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert analyze.returncode == 2
    assert "holds an ANN" in analyze.stderr


def test_a_resumed_epochs_progress_bar_counts_only_the_new_images_in_its_rate():
    from minisnn.runs import progress_bar
    bar = progress_bar(100, "epoch 2/3", quiet=False, done=40)
    try:
        assert bar.n == 40 and bar.format_dict["initial"] == 40
    finally:
        bar.close()
