"""Where datasets are looked for, what a missing dataset's message says, and dataset identity."""
import hashlib
import shutil
import socket
from pathlib import Path

import pytest

import minisnn.data as data
from minisnn.data import registry, storage
from test_data_formats import write_cifar, write_mnist


# -- the default root -----------------------------------------------------------------------
def test_root_rule_env_then_checkout_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINISNN_DATA", str(tmp_path / "env"))
    assert data.default_data_root() == tmp_path / "env"
    monkeypatch.delenv("MINISNN_DATA")
    # this test runs from a source checkout: its datasets/ folder
    assert data.default_data_root() == Path(__file__).resolve().parents[1] / "datasets"
    # an installed package: the per-user cache, never inside the environment
    monkeypatch.setattr(registry, "_checkout_root", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_data_root() == tmp_path / "xdg" / "minisnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_data_root() == tmp_path / "home" / ".cache" / "minisnn"


def test_installed_package_is_not_a_checkout(tmp_path, monkeypatch):
    fake = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (fake / "minisnn" / "data").mkdir(parents=True)
    (fake / "setup.cfg").write_text("")       # even a stray setup.cfg there does not count
    monkeypatch.setattr(registry, "__file__", str(fake / "minisnn" / "data" / "registry.py"))
    assert registry._checkout_root() is None


# -- torchvision's layout ---------------------------------------------------------------------
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST/raw"),
                                         ("fashion-mnist", "FashionMNIST/raw")])
def test_torchvision_layout(tmp_path, name, folder):
    images, _ = write_mnist(tmp_path / folder, "test", seed=1, gz=False)
    x, _ = data.load(name, "test", root=tmp_path)
    assert (x[:, 0] == images).all()
    x, _ = data.load(name, "test", root=tmp_path / folder.split("/")[0])   # .../MNIST
    assert (x[:, 0] == images).all()


def test_torchvision_cifar_under_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINISNN_DATA", str(tmp_path))
    batches = write_cifar(tmp_path)                  # <root>/cifar-10-batches-py/
    x, y = data.load("cifar10", "test")
    assert (x == batches["test_batch"][0]).all()


# -- the missing-dataset message ----------------------------------------------------------------
def test_missing_message_lists_every_file_and_three_ways(tmp_path, monkeypatch):
    monkeypatch.delenv("MINISNN_DATA", raising=False)
    write_mnist(tmp_path / "mnist", "train")         # train present, test missing
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load("mnist", "test", root=tmp_path / "nowhere")
    msg = str(info.value)
    lines = msg.splitlines()
    assert len(lines) <= 6 and max(map(len, lines)) < 250
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert f in msg                              # train AND test files, in one message
    assert str(tmp_path / "nowhere") in msg and "MNIST/raw/" in msg
    assert "--data-dir DIR" in msg and "root=DIR" in msg and "$MINISNN_DATA, or its mnist/ subfolder (not set)" in msg
    assert str(data.builtin_data_root() / "mnist") in msg
    assert "download(" not in msg                    # no Python calls that fail offline too
    # only the missing split is named when the other one is there
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load("mnist", "test", root=tmp_path)
    assert "(test split)" in str(info.value) and "train-images" not in str(info.value)


def test_offline_download_leaves_nothing_behind(tmp_path, monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    s.close()
    root = tmp_path / "new" / "root"
    monkeypatch.setenv("MINISNN_DATA", str(root))
    with pytest.raises(data.DownloadError) as info:
        data.ensure_available("mnist", None, download=True, split="train", mirrors=[dead],
                              progress=False)
    msg = str(info.value)
    assert msg.startswith("could not download train-images-idx3-ubyte.gz into ")
    assert "t10k-labels-idx1-ubyte.gz" in msg and f"now {root}: put them in {root / 'mnist'}/" in msg
    assert len(msg.splitlines()) <= 7
    assert list(tmp_path.iterdir()) == []            # no empty folders left


# -- dataset identity -----------------------------------------------------------------------------
def _publish(monkeypatch, folder, name):
    """Pretend the files in ``folder`` are the published files of ``name``."""
    known = {}
    for p in folder.iterdir():
        known[hashlib.md5(p.read_bytes()).hexdigest()] = (name, p.name)
    monkeypatch.setattr(storage, "_published_idx_files", lambda: known)


def test_files_of_another_dataset_are_refused(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mnist", "test")
    _publish(monkeypatch, tmp_path / "mnist", "mnist")
    data.load("mnist", "test", root=tmp_path / "mnist")
    with pytest.raises(data.DatasetCorruptError, match="this is MNIST's t10k-images-idx3-ubyte.gz"
                       ".*not Fashion-MNIST's.*point the data folder at the Fashion-MNIST files"):
        data.load("fashion-mnist", "test", root=tmp_path / "mnist")


def test_swapped_split_files_are_refused(tmp_path, monkeypatch):
    write_mnist(tmp_path / "a", "test")
    _publish(monkeypatch, tmp_path / "a", "mnist")
    (tmp_path / "b").mkdir()
    for src, dst in (("t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"),
                     ("t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz")):
        shutil.copy(tmp_path / "a" / src, tmp_path / "b" / dst)
    with pytest.raises(data.DatasetCorruptError, match="t10k-images.*not MNIST's train-images"):
        data.load("mnist", "train", root=tmp_path / "b")


def test_unknown_files_are_read(tmp_path):
    images, _ = write_mnist(tmp_path, "test", seed=5)        # matches no published file
    x, _ = data.load("fashion-mnist", "test", root=tmp_path)
    assert (x[:, 0] == images).all()


def test_real_mnist_given_as_fashion_mnist(shared_data):
    with pytest.raises(data.DatasetCorruptError, match="MNIST's .* not Fashion-MNIST's"):
        data.load("fashion-mnist", "test", root=shared_data / "mnist")
    with pytest.raises(data.DatasetCorruptError, match="Fashion-MNIST's .* not MNIST's"):
        data.verify("mnist", root=shared_data / "fashion-mnist", split="test")


# -- the same through the command line ---------------------------------------------------------
def _cli(*args, **env):
    import os
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "minisnn.train", *map(str, args)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **env))


def test_cli_refuses_mnist_files_as_fashion_mnist(shared_data, tmp_path):
    proc = _cli("--dataset", "fashion-mnist", "--data-dir", shared_data / "mnist", "--no-download",
                "--epochs", "1", "--out", tmp_path / "run")
    assert proc.returncode == 2, proc.stderr
    assert "this is MNIST's" in proc.stderr and "not Fashion-MNIST's" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_cli_missing_data_names_every_file_and_the_three_ways(tmp_path):
    proc = _cli("--model", "lenet5", "--no-download", "--epochs", "1", "--out", tmp_path / "run",
                MINISNN_DATA=str(tmp_path / "data"))
    assert proc.returncode == 2, proc.stderr
    for needed in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "--data-dir DIR",
                   f"now {tmp_path / 'data'}", str(data.builtin_data_root() / "mnist")):
        assert needed in proc.stderr, needed
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()
