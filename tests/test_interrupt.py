"""SIGINT and SIGTERM during ``python -m minisnn.train``: a resumable mid-epoch checkpoint, the
resume command, metrics.json "interrupted", exit 130/143, and a resumed run bitwise equal to an
uninterrupted one. Subprocesses on a tiny synthetic MNIST (a few seconds each)."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minisnn import checkpoint as C
from test_train import TINY, _env, driver_cmd, finished_run, last_json, run_cli, run_driver, synthetic_mnist

ARGS = ["--epochs", 2, "--limit-train", 80, "--limit-test", 16, "--val-split", 0.2, "--dropout", 0.2,
        "--momentum", 0.9, "--lr", 0.003, "--seed", 3, *TINY]          # 4 batches per epoch


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return synthetic_mnist(tmp_path_factory, 96, 32, seed=1)


@pytest.fixture(scope="module")
def straight(mnist, tmp_path_factory):
    return finished_run(tmp_path_factory, "straight", ["--data-dir", mnist, *ARGS])


def assert_same_run(a, b):
    ca, cb = C.load(a / "checkpoint.h5"), C.load(b / "checkpoint.h5")
    assert ca.epoch == cb.epoch == 2 and ca.optimizer["steps"] == cb.optimizer["steps"]
    for key in ca.weights:
        assert np.array_equal(ca.weights[key], cb.weights[key]), key
        assert np.array_equal(ca.optimizer["buffers"]["momentum"][key], cb.optimizer["buffers"]["momentum"][key])
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for ra, rb in zip(ma["epochs"], mb["epochs"], strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_accuracy", "spike_rates"):
            assert ra[key] == rb[key], key


@pytest.mark.parametrize("signum,epoch,batch,resume_from", [
    (signal.SIGINT, 0, 1, "interrupted.h5"),   # mid-epoch
    (signal.SIGTERM, 1, 3, ""),                # after the last batch, before the evaluation; resumed by folder,
])                                             # which holds the epoch-1 checkpoint.h5 too: interrupted.h5 wins
def test_signal_saves_a_checkpoint_that_resumes_bitwise(mnist, straight, tmp_path, signum, epoch, batch, resume_from):
    out = tmp_path / "run"
    hook = (f"def hook(net, epoch, batch):\n    if (epoch, batch) == ({epoch}, {batch}):\n"
            f"        os.kill(os.getpid(), {int(signum)})")
    proc = run_driver(hook, ["--data-dir", mnist, "--out", out, *ARGS], tmp_path)
    assert proc.returncode == 128 + signum, proc.stderr
    saved = out / "interrupted.h5"
    assert str(saved) in proc.stderr and f"python -m minisnn.train --resume {saved}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"
    assert last_json(proc.stdout)["status"] == "interrupted"
    assert C.run_state(C.load(saved))[2]["batches"] == batch + 1
    fresh = run_cli(["--data-dir", mnist, "--out", out, *ARGS], tmp_path)      # a new run would overwrite it
    assert fresh.returncode == 2 and f"--resume {saved}" in fresh.stderr

    assert (out / "checkpoint.h5").exists() == (epoch == 1)
    resumed = run_cli(["--resume", out / resume_from, "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert not saved.exists()                       # superseded by the epoch's checkpoint
    assert json.loads((out / "metrics.json").read_text())["resumed_from"] == str(saved)
    assert_same_run(straight, out)


def test_resume_from_a_folder_without_checkpoint_names_the_problem(tmp_path):
    (tmp_path / "run").mkdir()
    proc = run_cli(["--resume", tmp_path / "run"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "neither of interrupted.h5, checkpoint.h5" in proc.stderr and "--out" in proc.stderr


def test_sigint_from_outside_while_training(mnist, tmp_path):
    out = tmp_path / "run"
    hook = "def hook(net, epoch, batch):\n    print('step', flush=True)\n    time.sleep(0.2)"
    proc = subprocess.Popen(driver_cmd(hook, ["--data-dir", mnist, "--out", out, *ARGS]), cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.stdout.readline().strip() != "step":
            assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert C.load(out / "interrupted.h5").epoch == 0
    assert json.loads((out / "metrics.json").read_text())["wall_seconds"] > 0


def test_interrupt_before_training_is_one_line(mnist, tmp_path):
    code = ("import os, signal, sys\nfrom minisnn import train\nimport minisnn.data.pipeline as P\n"
            "def load(*a, **k):\n    os.kill(os.getpid(), signal.SIGINT)\n"
            "P.load_run_data = load\nsys.exit(train.main(sys.argv[1:]))\n")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", code, "--data-dir", str(mnist), "--out", str(out), *map(str, ARGS)],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130
    assert "before training started" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see NumPy being loaded")
@pytest.mark.parametrize("delay", [0, 0.003, 0.01, 0.03])
def test_sigint_while_the_command_starts_is_one_line(mnist, tmp_path, delay):
    """Ctrl-C while ``python -m minisnn.train`` still loads NumPy (from the moment its extension
    module is mapped, through the imports that follow): one line and status 130, no import
    traceback (an exception raised inside an extension's import would become an ImportError)."""
    proc = subprocess.Popen([sys.executable, "-m", "minisnn.train", "--data-dir", mnist, "--out", tmp_path / "run",
                             *map(str, ARGS)], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        maps = Path(f"/proc/{proc.pid}/maps")
        while proc.poll() is None and "_multiarray_umath" not in maps.read_text():
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("minisnn.train: "), stderr


# Ctrl-C while a checkpoint is evaluated: one line, status 130, no folder left behind
INTERRUPT_SECOND_FORWARD = """
import os, signal, sys
from minisnn import analyze, network, train
forward, calls = network.Network.forward, []
def interrupted(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGINT)
    return forward(self, *args, **kwargs)
network.Network.forward = interrupted
sys.exit({module}.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("module", ["train", "analyze"])
def test_sigint_during_evaluation_is_one_line_and_leaves_no_folder(straight, mnist, tmp_path, module):
    out = tmp_path / "eval"
    args = (["--eval-only", straight / "checkpoint.h5", "--threads", 2, "--eval-batch-size", 4] if module == "train"
            else [straight / "checkpoint.h5", "--batch-size", 4, "--data-dir", mnist])
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_SECOND_FORWARD.format(module=module), *map(str, args),
                           "--out", str(out), "--quiet"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr       # one line
    assert "Traceback" not in proc.stderr and "nothing to resume" not in proc.stderr
    assert not out.exists()


def test_sigint_while_a_run_of_0_epochs_tests_its_start_saves_nothing_and_says_so(mnist, tmp_path):
    out = tmp_path / "start"
    args = ["--model", "lenet5", "--dataset", "mnist", "--data-dir", mnist, "--width", 0.25, "--epochs", 0,
            "--limit-test", 16, "--eval-batch-size", 4, "--threads", 1]
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_SECOND_FORWARD.format(module="train"), *map(str, args),
                           "--out", str(out), "--quiet"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "minisnn.train: SIGINT received; aborted; nothing was saved", proc.stderr
    assert not (out / "checkpoint.h5").exists()
    assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"


def test_a_runner_closed_from_its_own_worker_does_not_wait_for_itself():
    """The last reference to a network can go away in one of its worker threads."""
    from minisnn.runner import Runner
    runner = Runner(workers=2)
    runner.submit(lambda spikes, rows: None, np.zeros((1, 4)))
    runner.wait()
    runner._executor.submit(runner.close).result()      # raised "cannot join current thread"
