"""Downloads against a local HTTP server: good, corrupt and dropped files, fallbacks."""
import gzip
import hashlib
import http.server
import io
import tarfile
import threading
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minisnn.data as data
from minisnn.data import downloads, registry
from minisnn.data.registry import RemoteFile
from test_data_formats import cifar_pickle, encode_nmnist

GOOD = np.random.default_rng(0).bytes(300_000)   # seeded: every run tests the same bytes
GOOD_MD5 = hashlib.md5(GOOD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {}      # path -> bytes
    hits = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.hits.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/drop/"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def _serve(handler, folder, name, body):
    handler.files[f"/{folder}/{name}"] = body


def _leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def test_fetch_good(server, tmp_path):
    url, h = server
    _serve(h, "good", "f.bin", GOOD)
    remote = RemoteFile("f.bin", (), md5=GOOD_MD5)
    path = downloads.fetch(remote, tmp_path, progress=False, mirrors=[url + "/good/"])
    assert path.read_bytes() == GOOD
    assert _leftovers(tmp_path) == ["f.bin"]


def test_fetch_corrupt_then_fallback(server, tmp_path):
    url, h = server
    _serve(h, "corrupt", "f.bin", GOOD[:-1] + bytes([GOOD[-1] ^ 0x01]))   # one bit flipped
    _serve(h, "good", "f.bin", GOOD)
    remote = RemoteFile("f.bin", (), md5=GOOD_MD5)
    with pytest.raises(data.DownloadError, match="checksum mismatch"):
        downloads.fetch(remote, tmp_path, progress=False, mirrors=[url + "/corrupt"])
    assert _leftovers(tmp_path) == []            # nothing left behind, no .part either
    path = downloads.fetch(remote, tmp_path, progress=False,
                         mirrors=[url + "/corrupt", url + "/good"])
    assert path.read_bytes() == GOOD and _leftovers(tmp_path) == ["f.bin"]


def test_fetch_dropped_connection(server, tmp_path):
    url, h = server
    _serve(h, "drop", "f.bin", GOOD)
    _serve(h, "good", "f.bin", GOOD)
    remote = RemoteFile("f.bin", (), md5=GOOD_MD5)
    with pytest.raises(data.DownloadError, match="drop/f.bin"):
        downloads.fetch(remote, tmp_path, progress=False, mirrors=[url + "/drop"])
    assert _leftovers(tmp_path) == []
    n = len(h.hits)
    path = downloads.fetch(remote, tmp_path, progress=False,
                         mirrors=[url + "/missing", url + "/drop", url + "/good"])
    assert h.hits[n:] == ["/missing/f.bin", "/drop/f.bin", "/good/f.bin"]
    assert path.read_bytes() == GOOD and _leftovers(tmp_path) == ["f.bin"]


def test_offline_errors(tmp_path):
    # a port nothing listens on: every mirror fails
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    s.close()
    with pytest.raises(data.DatasetNotFoundError, match="Put train-images-idx3-ubyte.gz"):
        data.ensure_available("mnist", tmp_path, download=False)
    with pytest.raises(data.DownloadError) as info:
        data.ensure_available("mnist", tmp_path, download=True, mirrors=[dead],
                              progress=False)
    msg = str(info.value)
    assert "could not download" in msg and str(tmp_path) in msg and "Put" in msg
    assert isinstance(info.value, data.DatasetError)
    assert [p for p in tmp_path.iterdir() if p.is_file()] == []


def test_download_mnist_from_local_mirror(server, shared_data, tmp_path):
    url, h = server
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        body = (shared_data / "mnist" / f).read_bytes()
        _serve(h, "mnist", f, body)
        # a recompressed copy (as Debian ships it) verifies through the content sha256
        _serve(h, "recompressed", f,
               gzip.compress(gzip.decompress(body), compresslevel=1, mtime=1))
    folder = data.download("mnist", tmp_path / "a", progress=False, split="test",
                           mirrors=[url + "/missing", url + "/mnist"])
    x, y = data.load("mnist", "test", root=folder)
    assert x.shape == (10000, 1, 28, 28)
    folder = data.ensure_available("mnist", tmp_path / "b", download=True, split="test",
                                   progress=False, mirrors=[url + "/recompressed"])
    assert data.load("mnist", "test", root=folder)[1].shape == (10000,)
    # present and valid: nothing fetched again
    n = len(h.hits)
    data.download("mnist", tmp_path / "a", progress=False, split="test", mirrors=[url + "/x"])
    assert len(h.hits) == n


def _cifar_tarball(extra_members=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for i, name in enumerate(names):
            body = cifar_pickle(np.full((2, 3072), i, np.uint8), [i, 9 - i])
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
        for info, body in extra_members:
            tf.addfile(info, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()


def test_download_cifar_archive(server, tmp_path, monkeypatch):
    url, h = server
    tarball = _cifar_tarball()
    _serve(h, "cifar", "cifar-10-python.tar.gz", tarball)
    monkeypatch.setitem(registry.REMOTE, "cifar10", (RemoteFile(
        "cifar-10-python.tar.gz", (url + "/cifar/cifar-10-python.tar.gz",),
        md5=hashlib.md5(tarball).hexdigest(), extract=True, splits=("train", "test")),))
    x, y = data.load("cifar10", "train", root=tmp_path, download=True, progress=False)
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    assert _leftovers(tmp_path) == ["cifar-10-batches-py"]    # archive and temp dirs gone


def test_download_nmnist_archive(server, tmp_path, monkeypatch):
    url, h = server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Test/3/00002.bin", encode_nmnist([1], [2], [1], [70000]))
        zf.writestr("Test/0/00001.bin", encode_nmnist([4, 5], [6, 7], [0, 1], [1, 2]))
    body = buf.getvalue()
    _serve(h, "nmnist", "Test.zip", body)
    monkeypatch.setitem(registry.REMOTE, "nmnist", (RemoteFile(
        "Test.zip", (url + "/nmnist/Test.zip",), md5=hashlib.md5(body).hexdigest(),
        extract=True, splits=("test",)),))
    recs, labels = data.load("nmnist", "test", root=tmp_path, download=True, progress=False)
    assert labels.tolist() == [0, 3] and recs[1]["t"].tolist() == [70000]


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink"])
def test_safe_extract_refuses(tmp_path, kind):
    if kind == "symlink":
        info = tarfile.TarInfo("cifar-10-batches-py/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        member = (info, None)
    else:
        name = "../evil" if kind == "traversal" else "/tmp/evil_minisnn"
        info = tarfile.TarInfo(name)
        info.size = 4
        member = (info, b"evil")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_cifar_tarball([member]))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(data.DatasetCorruptError, match="escapes|link"):
        data.safe_extract(archive, dest)
    assert not (tmp_path / "evil").exists() and _leftovers(dest) == []


def test_safe_extract_refuses_a_zip_bomb_before_writing(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("Train/0/00001.bin", "w") as fh:
            for _ in range(512):
                fh.write(bytes(1 << 20))
    assert archive.stat().st_size < (1 << 20)          # ~0.5 MB declaring 512 MiB
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(data.DatasetCorruptError, match=r"1 members declaring 536870912 bytes.*"
                       r"268435456 bytes.*download it again") as info:
        data.safe_extract(archive, dest, max_bytes=256 << 20)
    assert str(archive) in str(info.value) and _leftovers(dest) == []


def test_safe_extract_refuses_too_many_members(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_cifar_tarball())               # 6 batches
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(data.DatasetCorruptError, match="6 members .* more than the 5 members"):
        data.safe_extract(archive, dest, max_members=5)
    assert _leftovers(dest) == []
    data.safe_extract(archive, dest, max_members=6)
    assert len(_leftovers(dest / "cifar-10-batches-py")) == 6


def test_identity_check_does_not_read_a_large_plain_file_whole(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    with open(p, "wb") as fh:                           # sparse: costs no disk
        fh.truncate(data.formats.IDX_MAX_BYTES + 1)
    tracemalloc.start()
    try:
        data.check_identity("mnist", p)                 # no published file: nothing to refuse
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2 ** 20:.0f} MiB"


def test_safe_extract_zip_traversal(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Train/0/1.bin", b"")
        zf.writestr("../../evil.bin", b"x")
    (tmp_path / "out").mkdir()
    with pytest.raises(data.DatasetCorruptError, match="escapes"):
        data.safe_extract(archive, tmp_path / "out")
    archive.write_bytes(archive.read_bytes()[:50])
    with pytest.raises(data.DatasetCorruptError, match="cannot unpack"):
        data.safe_extract(archive, tmp_path / "out")
