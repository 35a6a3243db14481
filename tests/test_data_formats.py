"""Readers of every format on files written here in the exact published layouts."""
import gzip
import os
import pickle
import struct
import subprocess
import sys
import threading
import tracemalloc
import zlib

import numpy as np
import pytest
import scipy.io

import minisnn.data as data
from minisnn.data import DatasetError
from minisnn.data.formats import safe_unpickle

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


# ---------------------------------------------------------------------------------------
# writers of the published formats (also used by the other test_data_* modules)
# ---------------------------------------------------------------------------------------
def idx_bytes(arr, magic=None):
    arr = np.asarray(arr, dtype=np.uint8)
    magic = (0x0800 | arr.ndim) if magic is None else magic
    return struct.pack(f">I{arr.ndim}I", magic, *arr.shape) + arr.tobytes()


def write_idx(path, arr, magic=None, gz=True):
    raw = idx_bytes(arr, magic)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_mnist(folder, split="train", n=12, seed=0, gz=True):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    img_f, lab_f = IDX_NAMES[split]
    if not gz:
        img_f, lab_f = img_f[:-3], lab_f[:-3]
    write_idx(folder / img_f, images, gz=gz)
    write_idx(folder / lab_f, labels, gz=gz)
    return images, labels


def cifar_pickle(images, labels, batch_label=b"training batch 1 of 5"):
    """A batch as the real files have it: bytes keys, uint8 (N, 3072) data, list labels."""
    n = len(labels)
    d = {b"batch_label": batch_label, b"labels": [int(v) for v in labels],
         b"data": np.asarray(images, dtype=np.uint8).reshape(n, 3072),
         b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    return pickle.dumps(d, protocol=2)


def write_cifar(folder, n_per_batch=4, seed=0):
    """cifar-10-batches-py/ with data_batch_1..5, test_batch, batches.meta under folder."""
    rng = np.random.default_rng(seed)
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(n_per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch)
        (d / name).write_bytes(cifar_pickle(images, labels))
        out[name] = (images, labels)
    meta = {b"num_cases_per_batch": 10000, b"num_vis": 3072,
            b"label_names": [n.encode() for n in data.DATASETS["cifar10"].classes]}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return out


def write_svhn(path, n=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)   # 1..10, 10 = digit 0
    scipy.io.savemat(str(path), {"X": X, "y": y})
    return X, y


def encode_nmnist(x, y, p, t):
    """40-bit big-endian events: x, y, then p in bit 7 + 23-bit timestamp."""
    x, y, p, t = (np.asarray(v, dtype=np.int64) for v in (x, y, p, t))
    out = np.zeros((len(x), 5), dtype=np.uint8)
    out[:, 0] = x
    out[:, 1] = y
    out[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    out[:, 3] = (t >> 8) & 0xFF
    out[:, 4] = t & 0xFF
    return out.tobytes()


def random_events(rng, n, tmax=300_000):
    t = np.sort(rng.integers(0, tmax, size=n))
    return (rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n), t)


def write_nmnist(folder, split="Train", per_digit=2, seed=0):
    rng = np.random.default_rng(seed)
    truth = []
    for digit in range(10):
        d = folder / split / str(digit)
        d.mkdir(parents=True, exist_ok=True)
        for k in range(per_digit):
            ev = random_events(rng, int(rng.integers(1, 50)))
            name = f"{digit * 1000 + per_digit - k:05d}.bin"   # names out of creation order
            (d / name).write_bytes(encode_nmnist(*ev))
            truth.append((d / name, digit, ev))
    return sorted(truth, key=lambda r: (r[1], r[0].name))


# ---------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip_and_load(tmp_path, gz):
    images, labels = write_mnist(tmp_path / "mnist", "test", gz=gz)
    x, y = data.load("mnist", "test", root=tmp_path / "mnist")
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], images)
    np.testing.assert_array_equal(y, labels)
    # a data root with a subfolder named after the dataset works too
    x2, _ = data.load("mnist", "test", root=tmp_path)
    np.testing.assert_array_equal(x2, x)


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MINISNN_DATA", str(tmp_path))
    assert data.default_data_root() == tmp_path
    images, _ = write_mnist(tmp_path / "fashion-mnist", "train", seed=3)
    x, _ = data.load("fashion-mnist", "train")
    np.testing.assert_array_equal(x[:, 0], images)
    with pytest.raises(data.DatasetNotFoundError, match=str(tmp_path / "mnist")):
        data.load("mnist", "train")


def test_default_root_is_repo_datasets(monkeypatch):
    monkeypatch.delenv("MINISNN_DATA", raising=False)
    assert data.default_data_root().name == "datasets"
    assert (data.default_data_root().parent / "minisnn" / "data").is_dir()


def test_idx_bad_magic(tmp_path):
    write_mnist(tmp_path, "test")
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((12, 28, 28)), magic=0x0801)
    with pytest.raises(DatasetError, match="magic"):
        data.load("mnist", "test", root=tmp_path)


def test_idx_swapped_files(tmp_path):
    write_mnist(tmp_path, "test")
    lab = tmp_path / "t10k-labels-idx1-ubyte.gz"
    img = tmp_path / "t10k-images-idx3-ubyte.gz"
    a, b = lab.read_bytes(), img.read_bytes()
    lab.write_bytes(b)
    img.write_bytes(a)
    with pytest.raises(DatasetError, match="t10k-images.*magic"):
        data.load("mnist", "test", root=tmp_path)


def test_idx_payload_size_mismatch(tmp_path):
    write_mnist(tmp_path, "test")
    raw = idx_bytes(np.zeros((12, 28, 28)))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-1]))
    with pytest.raises(DatasetError, match="payload"):
        data.load("mnist", "test", root=tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw + b"\0"))
    with pytest.raises(DatasetError, match="payload"):
        data.load("mnist", "test", root=tmp_path)


def test_idx_truncated_gzip(tmp_path):
    write_mnist(tmp_path, "test")
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(DatasetError, match="gzip.*download it again") as info:
        data.load("mnist", "test", root=tmp_path)
    assert str(p) in str(info.value)
    assert info.value.__cause__ is not None


def test_idx_label_out_of_range_and_count_mismatch(tmp_path):
    write_mnist(tmp_path, "test")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(12, 10))
    with pytest.raises(DatasetError, match="label 10 out of range"):
        data.load("mnist", "test", root=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(11))
    with pytest.raises(DatasetError, match="12 images but .* 11 labels"):
        data.load("mnist", "test", root=tmp_path)


def test_idx_wrong_image_size(tmp_path):
    write_mnist(tmp_path, "test")
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((12, 27, 28)))
    with pytest.raises(DatasetError, match="expected"):
        data.load("mnist", "test", root=tmp_path)


def test_unknown_name_and_split(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset"):
        data.load("imagenet", "train", root=tmp_path)
    with pytest.raises(DatasetError, match="no split 'extra'"):
        data.load("mnist", "extra", root=tmp_path)


# ---------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------
def test_cifar_load_all_root_forms(tmp_path):
    truth = write_cifar(tmp_path / "cifar10")
    exp_x = np.concatenate([truth[f"data_batch_{i}"][0] for i in range(1, 6)])
    exp_y = np.concatenate([truth[f"data_batch_{i}"][1] for i in range(1, 6)])
    for root in (tmp_path, tmp_path / "cifar10", tmp_path / "cifar10" / "cifar-10-batches-py"):
        x, y = data.load("cifar10", "train", root=root)
        assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
        np.testing.assert_array_equal(x, exp_x)
        np.testing.assert_array_equal(y, exp_y)
    x, y = data.load("cifar10", "test", root=tmp_path)
    np.testing.assert_array_equal(x, truth["test_batch"][0])
    names = data.read_cifar_meta(tmp_path / "cifar10" / "cifar-10-batches-py" / "batches.meta")
    assert names[0] == "airplane" and len(names) == 10


def test_cifar_channel_layout(tmp_path):
    # a row of the real files is 1024 red, then 1024 green, then 1024 blue values, row-major
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.arange(1024) % 256])
    path = tmp_path / "b"
    path.write_bytes(cifar_pickle(row.reshape(1, 3072), [3]))
    x, y = data.read_cifar_batch(path)
    assert (x[0, 0] == 10).all() and (x[0, 1] == 20).all()
    assert x[0, 2, 0, 5] == 5 and x[0, 2, 1, 0] == 32
    assert y.tolist() == [3]


def _py2_cifar_pickle(data_bytes, shape, labels):
    """Bytes as Python 2's cPickle wrote the real files (str opcodes, numpy.core paths)."""
    def s(b):
        return b"U" + bytes([len(b)]) + b

    def g(mod, name):
        return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"
    arr = (g("numpy.core.multiarray", "_reconstruct") + g("numpy", "ndarray") + b"K\x00\x85"
           + s(b"b") + b"\x87R" + b"(K\x01" + struct.pack("<BHBH", 0x4D, shape[0], 0x4D,
                                                          shape[1]) + b"\x86"
           + g("numpy", "dtype") + s(b"u1") + b"K\x00K\x01\x87R"
           + b"(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
           + b"\x89T" + struct.pack("<I", len(data_bytes)) + data_bytes + b"tb")
    lab = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + s(b"data") + arr + s(b"labels") + lab + b"u."


def test_cifar_python2_pickle(tmp_path):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, size=2 * 3072, dtype=np.uint8)
    p = tmp_path / "data_batch_1"
    p.write_bytes(_py2_cifar_pickle(raw.tobytes(), (2, 3072), [7, 0]))
    x, y = data.read_cifar_batch(p)
    np.testing.assert_array_equal(x.reshape(-1), raw)
    assert y.tolist() == [7, 0]


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/minisnn_pwned",))


def test_cifar_restricted_unpickler_refuses_code(tmp_path):
    import os
    marker = "/tmp/minisnn_pwned"
    if os.path.exists(marker):
        os.unlink(marker)
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": _Evil()}, protocol=2))
    with pytest.raises(DatasetError, match="not allowed"):
        data.read_cifar_batch(p)
    for proto in (0, 2, 5):
        with pytest.raises(DatasetError):
            safe_unpickle(pickle.dumps(_Evil(), protocol=proto))
    with pytest.raises(DatasetError):   # _codecs.encode only with latin1
        safe_unpickle(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib"
                      b"\x86R.")
    assert not os.path.exists(marker)


@pytest.mark.parametrize("obj, msg", [
    ([1, 2], "must be a dict"),
    ({b"labels": [1]}, "lacks"),
    ({b"data": np.zeros((1, 3071), np.uint8), b"labels": [1]}, r"\(N, 3072\)"),
    ({b"data": np.zeros((1, 3072), np.float32), b"labels": [1]}, "uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "2 images but 1 labels"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, "out of range"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [b"x"]}, "list of ints"),
])
def test_cifar_wrong_structure(tmp_path, obj, msg):
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DatasetError, match=msg) as info:
        data.read_cifar_batch(p)
    assert str(p) in str(info.value)


def test_cifar_truncated(tmp_path):
    write_cifar(tmp_path)
    p = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="data_batch_3"):
        data.load("cifar10", "train", root=tmp_path)


def test_cifar_str_keys_accepted(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({"data": np.ones((1, 3072), np.uint8), "labels": [2]}))
    x, y = data.read_cifar_batch(p)
    assert x.shape == (1, 3, 32, 32) and y.tolist() == [2]


# ---------------------------------------------------------------------------------------
# SVHN
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "test", "extra"])
def test_svhn_load(tmp_path, split):
    X, y = write_svhn(tmp_path / f"{split}_32x32.mat", n=11)
    x, lab = data.load("svhn", split, root=tmp_path)
    assert x.shape == (11, 3, 32, 32) and x.dtype == np.uint8 and lab.dtype == np.int64
    # pixel (row r, col c, channel ch) of image i
    assert x[4, 2, 5, 7] == X[5, 7, 2, 4]
    np.testing.assert_array_equal(x, X.transpose(3, 2, 0, 1))
    expected = y.reshape(-1).astype(np.int64) % 10
    np.testing.assert_array_equal(lab, expected)
    assert 0 in lab.tolist() and 10 not in lab.tolist()


def test_svhn_bad_files(tmp_path):
    p = tmp_path / "train_32x32.mat"
    scipy.io.savemat(str(p), {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(DatasetError, match="lacks the variables X and y"):
        data.load("svhn", "train", root=tmp_path)
    scipy.io.savemat(str(p), {"X": np.zeros((32, 32, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DatasetError, match=r"\(32, 32, 3, N\)"):
        data.load("svhn", "train", root=tmp_path)
    scipy.io.savemat(str(p), {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1))})
    with pytest.raises(DatasetError, match="y must be"):
        data.load("svhn", "train", root=tmp_path)
    scipy.io.savemat(str(p), {"X": np.zeros((32, 32, 3, 2), np.uint8),
                              "y": np.array([[11], [1]])})
    with pytest.raises(DatasetError, match="1..10"):
        data.load("svhn", "train", root=tmp_path)
    p.write_bytes(b"MATLAB 5.0 MAT-file, garbage" * 3)
    with pytest.raises(DatasetError, match="train_32x32.mat"):
        data.load("svhn", "train", root=tmp_path)


# ---------------------------------------------------------------------------------------
# N-MNIST
# ---------------------------------------------------------------------------------------
def test_nmnist_decode_exact(tmp_path):
    big_t = 0x7ABCDE            # 23-bit timestamp > 2**16 (8,043,742 us)
    raw = encode_nmnist([0, 33, 5], [33, 0, 17], [1, 0, 1], [0, 70_000, big_t])
    # hand check of the encoding of the last event: x=5, y=17, p=1, t=0x7ABCDE
    assert raw[10:] == bytes([5, 17, 0x80 | 0x7A, 0xBC, 0xDE])
    p = tmp_path / "00001.bin"
    p.write_bytes(raw)
    ev = data.read_nmnist(p)
    assert ev.dtype.names == ("x", "y", "p", "t")
    assert ev["x"].tolist() == [0, 33, 5]
    assert ev["y"].tolist() == [33, 0, 17]
    assert ev["p"].tolist() == [1, 0, 1]
    assert ev["t"].tolist() == [0, 70_000, big_t]
    assert ev["t"].dtype == np.int64


def test_nmnist_overflow_marker(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(encode_nmnist([1, 0, 2], [2, 240, 3], [0, 0, 1], [100, 0, 50]))
    ev = data.read_nmnist(p)
    assert ev["x"].tolist() == [1, 2] and ev["t"].tolist() == [100, 50 + 2 ** 13]


def test_nmnist_bad_files(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(encode_nmnist([1], [2], [0], [3]) + b"\x00\x01")
    with pytest.raises(DatasetError, match="multiple of 5") as info:
        data.read_nmnist(p)
    assert str(p) in str(info.value)
    p.write_bytes(encode_nmnist([34], [2], [0], [3]))
    with pytest.raises(DatasetError, match="out of range"):
        data.read_nmnist(p)
    p.write_bytes(encode_nmnist([3], [34], [0], [3]))
    with pytest.raises(DatasetError, match="out of range"):
        data.read_nmnist(p)
    with pytest.raises(DatasetError, match="not found"):
        data.read_nmnist(tmp_path / "missing.bin")
    p.write_bytes(b"")
    with pytest.raises(DatasetError, match=f"{p}: the file is empty"):
        data.read_nmnist(p)
    p.write_bytes(encode_nmnist([1, 0], [240, 240], [0, 0], [0, 0]))    # overflow markers only
    with pytest.raises(DatasetError, match="holds no events"):
        data.read_nmnist(p)


def test_nmnist_load_sorted(tmp_path):
    truth = write_nmnist(tmp_path / "nmnist", "Test", per_digit=3)
    for root in (tmp_path, tmp_path / "nmnist"):
        recs, labels = data.load("nmnist", "test", root=root)
        assert labels.dtype == np.int64 and labels.tolist() == [t[1] for t in truth]
        for rec, (_, _, ev) in zip(recs, truth):
            for field, v in zip("xypt", ev):
                np.testing.assert_array_equal(rec[field], v)
    with pytest.raises(data.DatasetNotFoundError, match="Train"):
        data.load("nmnist", "train", root=tmp_path)


def _frames_reference(ev, T, duration):
    out = np.zeros((T, 2, 34, 34), np.float32)
    for x, y, p, t in zip(ev["x"], ev["y"], ev["p"], ev["t"]):
        if t < duration:
            out[int(t) * T // duration, p, y, x] += 1
    return out


def test_events_to_frames_matches_loop():
    rng = np.random.default_rng(5)
    raw = encode_nmnist(*random_events(rng, 500))
    ev = data.formats.parse_nmnist(raw)
    for T, dur in ((1, None), (7, None), (10, 150_000), (3, 10_000_000)):
        fr = data.events_to_frames(ev, T, duration_us=dur)
        assert fr.shape == (T, 2, 34, 34) and fr.dtype == np.float32
        np.testing.assert_array_equal(
            fr, _frames_reference(ev, T, dur if dur else int(ev["t"].max()) + 1))
    assert data.events_to_frames(ev, 5).sum() == 500   # nothing lost by default


def test_events_to_frames_polarity_channels():
    ev = data.formats.parse_nmnist(encode_nmnist([3, 4], [5, 6], [0, 1], [0, 9]))
    fr = data.events_to_frames(ev, 2)
    assert fr[0, 0, 5, 3] == 1 and fr[1, 1, 6, 4] == 1 and fr.sum() == 2
    assert data.events_to_frames(ev[:0], 4).sum() == 0


def test_nmnist_batch_binary():
    ev = data.formats.parse_nmnist(encode_nmnist([1, 1, 1], [2, 2, 2], [1, 1, 1], [0, 1, 2]))
    batch = data.nmnist_batch([ev, ev[:1]], T=1)
    assert batch.shape == (2, 1, 2, 34, 34) and batch[0, 0, 1, 2, 1] == 3
    b = data.nmnist_batch([ev, ev[:1]], T=1, binary=True)
    assert b.max() == 1 and b[0, 0, 1, 2, 1] == 1 and b[1].sum() == 1
    assert data.EventFrames(T=1, binary=False)([ev]).sum() == 3


# ---------------------------------------------------------------------------------------
# Hostile and degenerate files: only a DatasetError naming the file may come out
# ---------------------------------------------------------------------------------------
def _named(info, path):
    assert str(path) in str(info.value)


@pytest.mark.parametrize("labels", [[2 ** 63, 1], [-(2 ** 63) - 1, 1], [1, 2 ** 70]])
def test_cifar_huge_labels(tmp_path, labels):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}))
    with pytest.raises(DatasetError, match="out of range") as info:
        data.read_cifar_batch(p)
    _named(info, p)


def test_cifar_deep_nesting_in_a_key(tmp_path):
    """A key nested 100,000 deep made repr() recurse; 2,000,000 deep made the C unpickler's
    hash crash the interpreter (so this runs in a child process)."""
    p = tmp_path / "data_batch_1"
    for depth in (100_000, 2_000_000):
        p.write_bytes(b"\x80\x02}" + b")" + b"\x85" * depth + b"K\x01s.")   # {((...(),),): 1}
        code = (f"import minisnn.data as d\ntry:\n    d.read_cifar_batch({str(p)!r})\n"
                f"except d.DatasetError as e:\n    print('refused:', e)\n")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr[-500:]
        assert run.stdout.startswith(f"refused: {p}"), run.stdout


def _global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


_U1 = _global("numpy", "dtype") + b"X\x02\x00\x00\x00u1\x85R"
CRAFTED_ARRAYS = {
    # numpy.ndarray((5, 3072), 'u1'): 84 bytes that returned uninitialised process memory
    "ndarray call": _global("numpy", "ndarray") + b"K\x05M\x00\x0c\x86" + _U1 + b"\x86R",
    # the same through NEWOBJ (ndarray.__new__)
    "ndarray newobj": _global("numpy", "ndarray") + b"K\x05M\x00\x0c\x86\x85\x81",
    # _reconstruct with a shape other than (0,) and no data to fill it
    "reconstruct": (_global("numpy.core.multiarray", "_reconstruct")
                    + _global("numpy", "ndarray") + b"K\x05M\x00\x0c\x86C\x01B\x87R"),
    # BUILD on an allowed function (would set attributes of minisnn's own code)
    "build": _global("numpy", "dtype") + b"}X\x0c\x00\x00\x00__defaults__)sb",
}


@pytest.mark.parametrize("kind", sorted(CRAFTED_ARRAYS))
def test_cifar_crafted_pickle_never_returns_memory(tmp_path, kind):
    p = tmp_path / "data_batch_1"
    p.write_bytes(b"\x80\x02}(C\x04data" + CRAFTED_ARRAYS[kind]
                  + b"C\x06labels](K\x01K\x01K\x01K\x01K\x01eu.")
    with pytest.raises(DatasetError, match="not allowed|not a valid") as info:
        data.read_cifar_batch(p)
    _named(info, p)


def test_cifar_real_layouts_still_load(tmp_path):
    """numpy's own pickles of every protocol go through the checked globals."""
    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    p = tmp_path / "b"
    for proto in (2, 4, 5):
        p.write_bytes(pickle.dumps({b"data": images, b"labels": np.array([3, 4], np.int64),
                                    b"extra": {1: [b"x", 2.5]}}, proto))
        x, y = data.read_cifar_batch(p)
        np.testing.assert_array_equal(x.reshape(2, -1), images)
        assert y.tolist() == [3, 4]


def _blocks(fn, *args):
    """True when fn(*args) has not returned within 5 s (then unblocks it)."""
    done = threading.Event()

    def call():
        try:
            fn(*args)
        except Exception:
            pass
        done.set()

    threading.Thread(target=call, daemon=True).start()
    blocked = not done.wait(5)
    if blocked:   # a reader waits in open(): a writer lets it go
        with open(args[0], "wb"):
            pass
        done.wait(5)
    return blocked


@pytest.mark.parametrize("reader", ["read_nmnist", "read_cifar_batch", "read_idx_images",
                                    "read_svhn_mat"])
def test_readers_refuse_fifo_and_folders(tmp_path, reader):
    fn = getattr(data, reader)
    fifo = tmp_path / "train_32x32.mat"
    os.mkfifo(fifo)
    assert not _blocks(fn, fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(DatasetError, match="not a regular file") as info:
            fn(path)
        _named(info, path)


def test_nmnist_decreasing_timestamps(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(encode_nmnist([1, 2, 3], [1, 2, 3], [0, 1, 0], [10, 500, 499]))
    with pytest.raises(DatasetError, match="backwards.*event 2: 499 us after 500") as info:
        data.read_nmnist(p)
    _named(info, p)
    # equal timestamps are fine, and so is a drop that the overflow marker corrects
    p.write_bytes(encode_nmnist([1, 2, 0, 3], [1, 2, 240, 3], [0, 1, 0, 0], [10, 10, 0, 5]))
    assert data.read_nmnist(p)["t"].tolist() == [10, 10, 5 + 2 ** 13]


def _gzip_bomb(path, header, inflated):
    """``header`` followed by zeros up to ``inflated`` bytes, gzipped (about 1/1000 of it)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    with open(path, "wb") as fh:
        fh.write(z.compress(header))
        for _ in range((inflated - len(header)) >> 20):
            fh.write(z.compress(zeros))
        fh.write(z.flush())


def test_idx_gzip_bomb_refused_while_streaming(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_bomb(p, struct.pack(">IIII", 0x803, 60000, 28, 28), 256 << 20)
    assert p.stat().st_size < (1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="inflates to more than") as info:
            data.read_idx_images(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _named(info, p)
    assert peak < 3 * data.formats.IDX_MAX_BYTES, f"peak {peak / 2 ** 20:.0f} MiB"


def test_idx_oversized_plain_file_refused_unread(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    with open(p, "wb") as fh:
        fh.write(struct.pack(">IIII", 0x803, 60000, 28, 28))
        fh.truncate(1 << 30)                       # sparse: 1 GiB on paper, nothing on disk
    with pytest.raises(DatasetError, match="more than the 47040016") as info:
        data.read_idx_images(p)
    _named(info, p)


def test_gzip_members_and_trailing_data():
    raw = idx_bytes(np.arange(10))
    two = gzip.compress(raw[:7]) + gzip.compress(raw[7:])
    assert data.formats.decompress_if_gzip(two, "f") == raw
    with pytest.raises(DatasetError, match="trailing data"):
        data.formats.decompress_if_gzip(gzip.compress(raw) + b"junk", "f")
    with pytest.raises(DatasetError, match="ends early"):
        data.formats.decompress_if_gzip(gzip.compress(raw)[:-9], "f")


def test_empty_splits_refused(tmp_path):
    write_mnist(tmp_path / "mnist", "test", n=0)
    with pytest.raises(DatasetError, match="no images") as info:
        data.load("mnist", "test", root=tmp_path / "mnist")
    _named(info, tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz")

    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}))
    with pytest.raises(DatasetError, match="no images") as info:
        data.read_cifar_batch(p)
    _named(info, p)

    p = tmp_path / "test_32x32.mat"
    scipy.io.savemat(str(p), {"X": np.zeros((32, 32, 3, 0), np.uint8),
                              "y": np.zeros((0, 1), np.uint8)})
    with pytest.raises(DatasetError, match="no images") as info:
        data.read_svhn_mat(p)
    _named(info, p)

    (tmp_path / "nmnist" / "Test" / "3").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no recordings") as info:
        data.load("nmnist", "test", root=tmp_path / "nmnist")
    _named(info, tmp_path / "nmnist" / "Test")


def test_empty_batches_refused():
    from minisnn.backend import Backend
    images, labels = np.zeros((4, 1, 2, 2), np.uint8), np.arange(4)
    with pytest.raises(ValueError, match="no samples"):
        data.BatchIterator(images[:0], labels[:0], 2, Backend())
    with pytest.raises(ValueError, match="limit must be >= 1"):
        data.subset(images, labels, 0)
    with pytest.raises(ValueError, match="no samples"):   # a validation split of everything
        data.BatchIterator(*data.train_val_split(images, labels, 0.9)[:2], 2, Backend())
