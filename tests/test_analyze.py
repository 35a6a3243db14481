"""``python -m minisnn.analyze``: help, output folder, progress, errors and exit codes, and the
inputs preprocessed with the standardisation the checkpoint stores."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minisnn import analyze
from minisnn.data import Standardize, channel_stats, load
from test_data_formats import write_cifar, write_mnist, write_nmnist

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", 0.25, "--epochs", 1, "--timesteps", 8, "--threads", 1, "--quiet"]


def _train(tmp, *args):
    proc = subprocess.run([sys.executable, "-m", "minisnn.train", *map(str, args), *map(str, TINY)],
                          cwd=tmp, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return tmp / "run" / "checkpoint.h5"


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """A one-epoch LeNet5 checkpoint.h5 on a small fake MNIST, and its data folder."""
    tmp = tmp_path_factory.mktemp("mnist_run")
    write_mnist(tmp / "mnist", "train", n=40)
    write_mnist(tmp / "mnist", "test", n=20, seed=1)
    ckpt = _train(tmp, "--data-dir", tmp / "mnist", "--limit-train", 16, "--out", tmp / "run")
    return ckpt, tmp / "mnist"


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    """A ResNet7 checkpoint trained on 8 of the 30 fake CIFAR-10 training images."""
    tmp = tmp_path_factory.mktemp("cifar_run")
    write_cifar(tmp / "cifar10", n_per_batch=6)
    ckpt = _train(tmp, "--model", "resnet7", "--dataset", "cifar10", "--data-dir", tmp / "cifar10",
                  "--limit-train", 8, "--batch-size", 8, "--out", tmp / "run")
    return ckpt, tmp / "cifar10"


def _run(capsys, *args):
    status = analyze.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


# -- help ------------------------------------------------------------------------------------

def test_help_is_plain_text_with_every_default(capsys):
    assert analyze.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "``" not in text and "::" not in text and ":func:" not in text
    assert "checkpoint.h5" in text and "last.h5" not in text
    for code in ("0  done", "2  bad input", "5  cannot write", "130  interrupted", "143  terminated"):
        assert code in text, code
    for action in analyze.parser()._actions:
        if action.dest != "help":
            assert action.help, action.dest
            if action.option_strings:
                assert "default" in action.help, action.dest


# -- output folder and progress --------------------------------------------------------------

def test_default_output_is_a_new_folder_next_to_the_checkpoint():
    from datetime import datetime
    a = analyze.default_out("runs/x/checkpoint.h5", datetime(2025, 1, 2, 3, 4, 5))
    b = analyze.default_out("runs/x/checkpoint.h5", datetime(2025, 1, 2, 3, 4, 6))
    assert a == Path("runs/x/analyze-checkpoint-20250102-030405") and a != b
    assert analyze.default_out("init:lenet5:mnist", datetime(2025, 1, 2, 3, 4, 5)) == \
        Path("runs/analyze-init-lenet5-mnist-20250102-030405")


def test_sweep_reports_progress_and_writes_next_to_checkpoint(mnist_run, capsys):
    ckpt, data_dir = mnist_run
    status, out, err = _run(capsys, ckpt, "--data-dir", data_dir, "--limit", 8, "--batch-size", 4,
                            "--sweep", "--sweep-steps", "2,8", "--no-plots")
    assert status == 0, err
    assert "T=8:" in err and "sweep 1/2 T=2:" in err      # progress bars (T=8 is measured once)
    assert "sweep 1/2 T=   2: accuracy" in out and "sweep 2/2 T=   8: accuracy" in out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["T"] == 8 and report["samples"] == 8 and [s["T"] for s in report["sweep"]] == [2, 8]
    written = [p for p in ckpt.parent.iterdir() if p.name.startswith("analyze-checkpoint-")]
    assert len(written) == 1 and (written[0] / "analysis.json").is_file()


def test_figures_are_the_library_ones(mnist_run, tmp_path, capsys, monkeypatch):
    """operations.png on a linear scale with the values on the bars, sweep.png on the full
    0-100 % scale with error bars (minisnn.plotting), next to rates.png."""
    from minisnn import plotting
    saved = {}
    original = plotting._save
    monkeypatch.setattr(plotting, "_save", lambda fig, path: saved.setdefault(Path(path).name, fig)
                        and original(fig, path))
    ckpt, data_dir = mnist_run
    status, _, err = _run(capsys, ckpt, "--data-dir", data_dir, "--limit", 8, "--sweep", "--sweep-steps", "2,3",
                          "--out", tmp_path / "an", "--quiet")
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "an").iterdir()) == ["analysis.json", "operations.png", "rates.png",
                                                                   "sweep.png"]
    ops = saved["operations.png"].axes[0]
    assert ops.get_yscale() == "linear" and ops.texts and "energy SNN" in ops.get_title()
    acc = saved["sweep.png"].axes[0]
    assert acc.get_ylim() == (0, 100) and "8 images" in acc.get_ylabel()


# -- the bug: standardisation ----------------------------------------------------------------

def test_colour_inputs_use_the_checkpoints_standardisation(cifar_run, tmp_path, capsys):
    """The run trained on 8 images stored their statistics; analyze must use those, not the
    statistics of the whole training set."""
    from minisnn.checkpoint import load as load_checkpoint
    ckpt, data_dir = cifar_run
    stored = load_checkpoint(ckpt).extra["standardize"]
    full = channel_stats(load("cifar10", "train", data_dir)[0])
    assert not np.allclose(stored["mean"], full[0])          # the two really differ

    status, out, err = _run(capsys, ckpt, "--data-dir", data_dir, "--limit", 0, "--quiet",
                            "--no-plots", "--out", tmp_path / "an")
    assert status == 0, err
    got = json.loads((tmp_path / "an" / "analysis.json").read_text())

    net, info = analyze.load_network(str(ckpt))
    images, labels = load("cifar10", "test", data_dir)
    for stats, same in ((stored, True), ({"mean": full[0], "std": full[1]}, False)):
        expected = analyze.analyse(net, info, images, labels, info["T"],
                                   transform=Standardize(stats["mean"], stats["std"]))
        assert (got["spike_rate"] == expected["spike_rate"]) is same


def test_colour_checkpoint_without_statistics_is_refused(cifar_run, tmp_path, capsys):
    from minisnn import checkpoint
    ckpt, data_dir = cifar_run
    content = checkpoint.load(ckpt)
    content.extra = {}
    checkpoint.save(tmp_path / "old.h5", content)
    status, _, err = _run(capsys, tmp_path / "old.h5", "--data-dir", data_dir, "--quiet")
    assert status == 2 and "stores no input standardisation" in err


def test_event_data_is_binned_per_t(tmp_path, capsys):
    write_nmnist(tmp_path / "nmnist", "Test", per_digit=1)
    status, out, err = _run(capsys, "init:lenet5:nmnist", "--data-dir", tmp_path / "nmnist",
                            "--limit", 4, "-T", 3, "--sweep", "--sweep-steps", "2", "--quiet",
                            "--no-plots", "--out", tmp_path / "an")
    assert status == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["T"] == 3 and report["samples"] == 4 and report["sweep"][0]["T"] == 2


# -- errors and exit codes -------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["{missing}"], "checkpoint file not found"),
    (["{junk}"], "not an HDF5 file"),
    (["{folder}"], "not a regular file"),
    (["init:"], "init:<model>"),
    (["init:nosuchnet"], "unknown model 'nosuchnet'"),
    (["init:lenet5:nosuchdata"], "unknown dataset"),
    (["{ckpt}", "--split", "extra"], "no split 'extra'"),
    (["{ckpt}", "--data-dir", "{folder}"], "MNIST not found"),
])
def test_bad_input_one_line_exit_2(mnist_run, tmp_path, capsys, args, message):
    ckpt, data_dir = mnist_run
    (tmp_path / "junk.h5").write_bytes(np.random.default_rng(0).bytes(300))
    names = {"missing": tmp_path / "none.h5", "junk": tmp_path / "junk.h5",
             "folder": tmp_path, "ckpt": ckpt}
    args = [a.format(**names) for a in args]
    status, out, err = _run(capsys, *args, "--quiet")
    assert status == 2
    first, *rest = err.splitlines()
    assert first.startswith("minisnn.analyze: error: ") and message in first, err
    assert all(line.startswith("  ") for line in rest), err     # a long message keeps its lines


def test_missing_data_message_keeps_its_lines(mnist_run, tmp_path, capsys):
    status, _, err = _run(capsys, mnist_run[0], "--data-dir", tmp_path, "--quiet")
    first, *rest = err.splitlines()
    assert status == 2 and "MNIST not found" in first and len(rest) >= 3, err
    assert "train-images-idx3-ubyte.gz" in rest[0] and any("--data-dir DIR" in line for line in rest)


@pytest.mark.parametrize("device", ["gpu", "cuda:1"])
def test_every_gpu_name_reaches_the_backend(monkeypatch, capsys, device):
    import types
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 0))))       # CuPy without a GPU
    status, _, err = _run(capsys, "init:lenet5", "--device", device, "--quiet")
    assert status == 2 and err.startswith("minisnn.analyze: error: GPU ")
    assert err.endswith("use the CPU (--device cpu)\n") and err.count("cpu") == 1, err


@pytest.mark.parametrize("flags", [["--limit", "-1"], ["--sweep-steps", "a,b"], ["--sweep-steps", ","],
                                   ["-T", "0"], ["--batch-size", "0"], ["--device", "tpu"],
                                   ["--no-such-flag"]])
def test_bad_flags_exit_2(capsys, flags):
    status, _, err = _run(capsys, "init:lenet5", *flags)
    assert status == 2 and "error:" in err and "Traceback" not in err


def test_unwritable_output_exits_5(mnist_run, tmp_path, capsys):
    ckpt, data_dir = mnist_run
    (tmp_path / "file").write_bytes(b"")
    status, _, err = _run(capsys, ckpt, "--data-dir", data_dir, "--out", tmp_path / "file" / "an",
                          "--quiet")
    assert status == 5 and err.count("\n") == 1
    assert err.startswith(f"minisnn.analyze: error: cannot write the analysis to {tmp_path}")


def test_exit_codes_match_train():
    from minisnn import train
    assert (analyze.EXIT_BAD_INPUT, analyze.EXIT_OUTPUT) == (train.EXIT_BAD_INPUT, train.EXIT_OUTPUT)


@pytest.mark.parametrize("signal_name, status, word", [("SIGINT", 130, "interrupted"),
                                                       ("SIGTERM", 143, "terminated")])
def test_signals_exit_130_and_143(mnist_run, capsys, monkeypatch, signal_name, status, word):
    import os
    import signal

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), getattr(signal, signal_name))
    monkeypatch.setattr(analyze, "analyse", signalled)
    before = signal.getsignal(signal.SIGTERM)
    ckpt, data_dir = mnist_run
    got, _, err = _run(capsys, ckpt, "--data-dir", data_dir, "--quiet", "--no-plots")
    assert got == status and word in err
    assert signal.getsignal(signal.SIGTERM) is before       # the handler is given back


def test_cli_corrupt_checkpoint_no_traceback(tmp_path):
    path = tmp_path / "checkpoint.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))       # the signature, then nothing
    proc = subprocess.run([sys.executable, "-m", "minisnn.analyze", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"minisnn.analyze: error: {path}")
