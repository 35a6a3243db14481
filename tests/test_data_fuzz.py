"""Fuzzing every parser: random bytes, truncations and bit flips of valid files.

Only DatasetError may escape (or the parse succeeds and its result is valid).
"""
import gzip
import io
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisnn.data import DatasetError
from minisnn.data.formats import (decompress_if_gzip, parse_cifar_batch, parse_idx,
                                  parse_nmnist, read_svhn_mat, safe_unpickle)
from minisnn.data.formats import read_idx_pair
from test_data_formats import cifar_pickle, encode_nmnist, idx_bytes

# derandomize: the same examples every run, so that a CI result never depends on chance
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

_rng = np.random.default_rng(0)
VALID_IDX_IMAGES = gzip.compress(idx_bytes(_rng.integers(0, 256, (3, 28, 28))), mtime=0)
VALID_IDX_LABELS = gzip.compress(idx_bytes(np.array([1, 9, 0])), mtime=0)
VALID_CIFAR = cifar_pickle(_rng.integers(0, 256, (2, 3072)), [4, 9])
VALID_NMNIST = encode_nmnist([1, 33, 5], [2, 0, 17], [0, 1, 1], [10, 70_000, 8_000_000])
_buf = io.BytesIO()
scipy.io.savemat(_buf, {"X": _rng.integers(0, 256, (32, 32, 3, 2)).astype(np.uint8),
                        "y": np.array([[10], [3]], np.uint8)})
VALID_MAT = _buf.getvalue()


@st.composite
def mutated(draw, valid):
    """Truncate, flip bits in, or splice random bytes into a valid file."""
    data = bytearray(valid)
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "random"]))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, max(len(data) - 1, 0)))])
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if kind == "splice":
        i = draw(st.integers(0, len(data)))
        return bytes(data[:i]) + draw(st.binary(max_size=64)) + bytes(data[i:])
    return draw(st.binary(max_size=512))


def _parse_idx_file(raw, magic):
    return parse_idx(decompress_if_gzip(raw, "f"), "f", magic)


@FUZZ
@given(raw=mutated(VALID_IDX_IMAGES))
def test_fuzz_idx_images(raw):
    try:
        arr = _parse_idx_file(raw, 0x803)
    except DatasetError:
        return
    assert arr.dtype == np.uint8 and arr.ndim == 3


@FUZZ
@given(raw=st.binary(max_size=256))
def test_fuzz_idx_random_bytes(raw):
    for magic in (0x801, 0x803, None):
        try:
            _parse_idx_file(raw, magic)
        except DatasetError:
            pass


@FUZZ
@given(img=mutated(VALID_IDX_IMAGES), lab=mutated(VALID_IDX_LABELS))
def test_fuzz_idx_pair(img, lab):
    with tempfile.TemporaryDirectory() as d:
        pi, pl = Path(d) / "i.gz", Path(d) / "l.gz"
        pi.write_bytes(img)
        pl.write_bytes(lab)
        try:
            x, y = read_idx_pair(pi, pl)
        except DatasetError:
            return
    assert len(x) == len(y) and y.dtype == np.int64 and (y < 10).all() and (y >= 0).all()


@FUZZ
@given(raw=mutated(VALID_CIFAR))
def test_fuzz_cifar(raw):
    try:
        x, y = parse_cifar_batch(safe_unpickle(raw, "f"), "f")
    except DatasetError:
        return
    assert x.dtype == np.uint8 and x.shape[1:] == (3, 32, 32) and len(x) == len(y)
    assert ((y >= 0) & (y < 10)).all()


@FUZZ
@given(obj=st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=8) | st.text(max_size=8),
    lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.binary(max_size=6), ch,
                                                           max_size=4),
    max_leaves=12))
def test_fuzz_cifar_structures(obj):
    """Well-formed pickles of the wrong structure."""
    try:
        parse_cifar_batch(safe_unpickle(pickle.dumps(obj, protocol=2), "f"), "f")
    except DatasetError:
        return
    pytest.fail("accepted a structure without CIFAR data")


@FUZZ
@given(raw=mutated(VALID_NMNIST))
def test_fuzz_nmnist(raw):
    try:
        ev = parse_nmnist(raw, "f")
    except DatasetError:
        return
    assert len(raw) % 5 == 0
    assert (ev["x"] < 34).all() and (ev["y"] < 34).all() and set(ev["p"].tolist()) <= {0, 1}
    assert (ev["t"] >= 0).all()


@settings(FUZZ, max_examples=40)
@given(raw=mutated(VALID_MAT))
def test_fuzz_svhn_mat(raw):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "train_32x32.mat"
        p.write_bytes(raw)
        try:
            x, y = read_svhn_mat(p)
        except DatasetError:
            return
    assert x.shape[1:] == (3, 32, 32) and len(x) == len(y) and ((y >= 0) & (y < 10)).all()


@FUZZ
@given(raw=mutated(gzip.compress(b"abc" * 50, mtime=0) + gzip.compress(b"de", mtime=0)),
       limit=st.integers(0, 200))
def test_fuzz_gunzip_agrees_with_gzip(raw, limit):
    """The bounded streaming decompressor returns what gzip does, or refuses."""
    try:
        out = decompress_if_gzip(raw, "f", max_bytes=limit)
    except DatasetError:
        return
    if raw.startswith(b"\x1f\x8b"):
        assert out == gzip.decompress(raw) and len(out) <= limit
    else:
        assert out == raw


def _g(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


_DTYPE = _g("numpy", "dtype") + b"X\x02\x00\x00\x00u1\x85R"
PICKLE_PIECES = [
    _g("numpy.core.multiarray", "_reconstruct"), _g("numpy", "ndarray"), _DTYPE,
    _g("numpy.core.multiarray", "scalar"), _g("numpy.core.numeric", "_frombuffer"),
    _g("_codecs", "encode"), b"K\x00", b"K\x05", b"M\x00\x0c", b"K\x01\x85", b"C\x01b",
    b"C\x04data", b"C\x06labels", b"C\x06ABCDEF", b"X\x01\x00\x00\x00C", b"N", b"\x88",
    b"\x89", b"(", b")", b"]", b"}", b"\x85", b"\x86", b"\x87", b"t", b"l", b"d", b"R", b"b",
    b"\x81", b"s", b"u", b"a", b"e", b"\x94", b"h\x00", b"0", b"2", b"\x8f", b"\x90", b"\x91",
    b"(K\x01K\x06\x85" + _DTYPE + b"\x89C\x06ABCDEFtb",        # a valid array state + BUILD
]


def _arrays(obj, depth=0):
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (list, tuple)) and depth < 50:
        for item in obj:
            yield from _arrays(item, depth + 1)
    elif isinstance(obj, dict) and depth < 50:
        for item in obj.values():
            yield from _arrays(item, depth + 1)


@settings(FUZZ, max_examples=300)
@given(pieces=st.lists(st.sampled_from(PICKLE_PIECES), min_size=1, max_size=30))
def test_fuzz_pickle_opcodes_never_expose_memory(pieces):
    """Random programs of the opcodes and globals the unpickler allows: whatever loads, every
    array's bytes come from the file itself (never from uninitialised memory)."""
    raw = b"\x80\x02" + b"".join(pieces) + b"."
    try:
        obj = safe_unpickle(raw, "f")
    except DatasetError:
        return
    for arr in _arrays(obj):
        if arr.dtype != object:
            assert arr.tobytes() in raw
