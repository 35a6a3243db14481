"""Whole programs under MINISNN_STRICT_XP=1: the CPU backend then uses minisnn.testing.strict_xp,
which refuses what CuPy refuses, so any implicit device->host conversion or host/device mixing in
the training loop, the data pipeline (colour standardisation, augmentation, event frames),
evaluation or the analysis fails here as it would on a GPU."""
import numpy as np
import pytest

from test_data_formats import write_cifar
from test_train import _nmnist_bin, last_json, run_cli, synthetic_mnist

STRICT = {"MINISNN_STRICT_XP": "1"}
SMALL = ["--epochs", 1, "--width", 0.25, "--timesteps", 6, "--quiet", "--threads", 2]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return synthetic_mnist(tmp_path_factory, 96, 32, seed=1, name="strict")


def test_train_eval_and_analyze_run_under_cupy_rules(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(["--data-dir", mnist_dir, "--out", out, "--val-split", 0.25, "--momentum", 0.9,
                    "--batch-size", 16, *SMALL], tmp_path, **STRICT)
    assert proc.returncode == 0, proc.stderr
    accuracy = last_json(proc.stdout)["test_accuracy"]
    proc = run_cli(["--eval-only", out / "checkpoint.h5", "--data-dir", mnist_dir], tmp_path, **STRICT)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc.stdout)["test_accuracy"] == accuracy
    import subprocess
    import sys

    from test_train import _env
    analysis = subprocess.run([sys.executable, "-m", "minisnn.analyze", str(out / "checkpoint.h5"),
                               "--data-dir", str(mnist_dir), "--limit", "16", "--out", str(tmp_path / "an")],
                              cwd=tmp_path, env=_env(**STRICT), capture_output=True, text=True, timeout=240)
    assert analysis.returncode == 0, analysis.stderr
    assert "energy_snn_j" in last_json(analysis.stdout)


def test_colour_pipeline_runs_under_cupy_rules(tmp_path):
    root = tmp_path / "cifar10"
    root.mkdir()
    write_cifar(root, n_per_batch=8)
    proc = run_cli(["--model", "resnet7", "--dataset", "cifar10", "--data-dir", root, "--batch-size", 8,
                    "--out", tmp_path / "run", *SMALL], tmp_path, **STRICT)
    assert proc.returncode == 0, proc.stderr


def test_event_frames_run_under_cupy_rules(tmp_path):
    root = tmp_path / "nmnist"
    rng = np.random.default_rng(0)
    for split in ("Train", "Test"):
        for digit in range(10):
            (root / split / str(digit)).mkdir(parents=True)
            (root / split / str(digit) / "00000.bin").write_bytes(_nmnist_bin(rng, digit))
    proc = run_cli(["--dataset", "nmnist", "--data-dir", root, "--batch-size", 5, "--out", tmp_path / "run",
                    *SMALL], tmp_path, **STRICT)
    assert proc.returncode == 0, proc.stderr
