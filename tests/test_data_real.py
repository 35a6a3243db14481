"""The real MNIST and Fashion-MNIST files (skipped when the shared copies are absent)."""
import gzip
import hashlib
import shutil
import time

import numpy as np
import pytest

import minisnn.data as data

# sha256 of the decoded arrays: images uint8 (N,1,28,28) C-order bytes, labels int64 bytes.
DECODED_SHA256 = {
    ("mnist", "train"): ("741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
                         "e474323ac02fc156161b0bbb1f8c9cfeb327a74bcd9f9680a8385269a24f566c"),
    ("mnist", "test"): ("6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
                        "2fd8de6bdb8d11780b4b96dc57847bcfe6953f7c32aa48bfcd8237c3b7847243"),
    ("fashion-mnist", "train"): (
        "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
        "e3245b63f7c40d1c8b652835f19744d970c1613b40ddac6bcfc87b9c46e16a0b"),
    ("fashion-mnist", "test"): (
        "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
        "d51d859896c55775b9e9e219b77ff03bcec1b6ac322f313544dc3f9e7bc94fae"),
}
HISTOGRAMS = {
    ("mnist", "train"): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ("mnist", "test"): [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ("fashion-mnist", "train"): [6000] * 10,
    ("fashion-mnist", "test"): [1000] * 10,
}


@pytest.mark.parametrize("name,split", sorted(DECODED_SHA256))
def test_real_idx(shared_data, name, split):
    x, y = data.load(name, split, root=shared_data)
    n = 60000 if split == "train" else 10000
    assert x.shape == (n, 1, 28, 28) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == HISTOGRAMS[(name, split)]
    img_sha, lab_sha = DECODED_SHA256[(name, split)]
    assert hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest() == img_sha
    assert hashlib.sha256(y.astype("<i8").tobytes()).hexdigest() == lab_sha
    assert data.DATASETS[name].train_count == 60000 and data.DATASETS[name].test_count == 10000


def test_real_full_load(shared_data):
    """Both splits load whole (the time is printed, not asserted: speed belongs to benchmarks)."""
    t0 = time.perf_counter()
    x, y = data.load("mnist", "train", root=shared_data / "mnist")
    x2, y2 = data.load("mnist", "test", root=shared_data / "mnist")
    print(f"\nfull MNIST (train + test) loaded in {time.perf_counter() - t0:.3f} s")
    assert x.shape == (60000, 1, 28, 28) and x2.shape == (10000, 1, 28, 28)
    assert len(y) + len(y2) == 70000


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_verify(shared_data, name):
    report = data.verify(name, root=shared_data)
    files = {k: v for k, v in report.items() if k.endswith(".gz")}
    assert len(files) == 4 and set(files.values()) == {"md5"}
    assert sorted(v for k, v in report.items() if k not in files) == ["counts and label histogram"] * 2


def test_recompressed_gzip_verifies_by_content(shared_data, tmp_path):
    """Debian's dataset-fashion-mnist recompresses the .gz: content sha256 must still pass;
    a plain (decompressed) copy passes too; a changed pixel fails."""
    src = shared_data / "fashion-mnist"
    dst = tmp_path / "fashion-mnist"
    dst.mkdir()
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        content = gzip.decompress((src / f).read_bytes())
        (dst / f).write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (dst / f[:-3]).write_bytes(gzip.decompress((src / f).read_bytes()))
    report = data.verify("fashion-mnist", root=tmp_path)
    assert sorted(v for v in report.values() if v != "counts and label histogram") == ["content-sha256"] * 4
    content = bytearray(gzip.decompress((src / "t10k-images-idx3-ubyte.gz").read_bytes()))
    content[1000] ^= 1
    (dst / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(data.DatasetCorruptError, match="checksum mismatch"):
        data.verify("fashion-mnist", root=tmp_path, split="test")


def test_debian_location_fallback(shared_data, tmp_path, monkeypatch):
    """With the default root lacking fashion-mnist, the system location is used."""
    from minisnn.data import registry
    monkeypatch.setenv("MINISNN_DATA", str(tmp_path / "empty"))
    fake_system = tmp_path / "usr-share-datasets-fashion-mnist"
    shutil.copytree(shared_data / "fashion-mnist", fake_system)
    monkeypatch.setitem(registry.SYSTEM_LOCATIONS, "fashion-mnist", (fake_system,))
    x, y = data.load("fashion-mnist", "test")
    assert len(x) == 10000
    with pytest.raises(data.DatasetNotFoundError):
        data.load("mnist", "test")
