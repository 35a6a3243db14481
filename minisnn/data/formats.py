"""Readers of the standard distribution formats (IDX, CIFAR-10 pickles, SVHN .mat, N-MNIST).

Each reader validates what it reads and raises :class:`~minisnn.data.errors.DatasetError`
(naming the file and the problem) on anything unexpected; no zlib/pickle/scipy/numpy
exception escapes bare.
"""
from __future__ import annotations

import importlib
import io
import os
import pickle
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DatasetCorruptError, DatasetError, DatasetNotFoundError

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
IDX_MAX_BYTES = 16 + 60000 * 28 * 28      # the largest IDX file of MNIST / Fashion-MNIST
CIFAR_MAX_BYTES = 64 << 20                 # a CIFAR-10 batch is 31 MB
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_STEP = 1 << 20
_REDOWNLOAD = "delete it and download it again"


def _check_regular(path, st):
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path}: not a regular file (a folder, pipe or device?); point "
                           "minisnn at the dataset's files")


def _read_bytes(path, max_bytes: int | None = None) -> bytes:
    """The content of the regular file ``path``, refusing anything else before reading (a
    FIFO would block forever) and files larger than ``max_bytes``."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc
    try:
        st = os.fstat(fd)
        _check_regular(path, st)
        if max_bytes is not None and st.st_size > max_bytes:
            raise DatasetCorruptError(
                f"{path}: {st.st_size} bytes, more than the {max_bytes} this format allows; "
                f"is this the right file? {_REDOWNLOAD}")
        with open(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc
    finally:
        os.close(fd)


def decompress_if_gzip(raw: bytes, path, max_bytes: int | None = None) -> bytes:
    """Return the decompressed content of gzip data, or ``raw`` itself when not gzipped.

    The decision is made on the content (gzip magic), not the name: some browsers silently
    decompress ``.gz`` downloads but keep the name. Decompression streams in 1 MiB steps and
    stops as soon as the output passes ``max_bytes`` (default: the largest IDX file of MNIST
    and Fashion-MNIST), so a small "gzip bomb" never inflates in memory.
    """
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    limit = IDX_MAX_BYTES if max_bytes is None else int(max_bytes)
    out, rest = bytearray(), memoryview(raw)
    try:
        while rest:   # a gzip file may hold several members, one after the other
            if bytes(rest[:2]) != _GZIP_MAGIC:
                raise ValueError("trailing data after the gzip stream")
            inflater = zlib.decompressobj(wbits=31)
            while not inflater.eof:
                chunk = inflater.decompress(rest, _GZIP_STEP)
                if not chunk and len(inflater.unconsumed_tail) == len(rest):
                    raise EOFError("the compressed stream ends early")
                rest = memoryview(inflater.unconsumed_tail)
                out += chunk
                if len(out) > limit:
                    raise DatasetCorruptError(
                        f"{path}: gzip data inflates to more than {limit} bytes, more than this "
                        f"format allows (a corrupt or hostile file); {_REDOWNLOAD}")
            rest = memoryview(inflater.unused_data)
    except (EOFError, zlib.error, ValueError) as exc:
        raise DatasetCorruptError(
            f"{path}: corrupt or truncated gzip data ({exc}); {_REDOWNLOAD}") from exc
    return bytes(out)


# ---------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# ---------------------------------------------------------------------------------------
def parse_idx(data: bytes, path="<bytes>", expect_magic: int | None = None) -> np.ndarray:
    """Parse decompressed IDX content of unsigned bytes (type code 0x08) into an array."""
    if len(data) < 4:
        raise DatasetCorruptError(f"{path}: too short for an IDX header ({len(data)} bytes); "
                                  f"{_REDOWNLOAD}")
    (magic,) = struct.unpack(">I", data[:4])
    if expect_magic is not None and magic != expect_magic:
        raise DatasetCorruptError(
            f"{path}: wrong IDX magic number 0x{magic:08x}, expected 0x{expect_magic:08x} "
            f"(is this the right file, or a corrupt/HTML download? {_REDOWNLOAD})")
    if magic >> 16 != 0 or (magic >> 8) & 0xFF != 0x08:
        raise DatasetCorruptError(f"{path}: IDX magic 0x{magic:08x} is not unsigned-byte data")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetCorruptError(f"{path}: truncated IDX header (ndim={ndim}); {_REDOWNLOAD}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = 1
    for d in dims:
        expected *= d
    if len(data) - header != expected:
        raise DatasetCorruptError(
            f"{path}: IDX payload is {len(data) - header} bytes but the header's dims {dims} "
            f"need {expected}; the file is truncated or corrupt, {_REDOWNLOAD}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path, expect_magic: int | None = None, max_bytes: int = IDX_MAX_BYTES) -> np.ndarray:
    """Read an IDX file (gzipped or plain) of unsigned bytes. Returns a writable array.

    Files (or decompressed contents) larger than ``max_bytes`` are refused; the default is
    the size of the largest MNIST / Fashion-MNIST file."""
    data = decompress_if_gzip(_read_bytes(path, max_bytes), path, max_bytes)
    return parse_idx(data, path, expect_magic).copy()


def read_idx_images(path) -> np.ndarray:
    arr = read_idx(path, IDX_IMAGES_MAGIC)
    if arr.ndim != 3:
        raise DatasetCorruptError(f"{path}: IDX images must have 3 dims, got {arr.shape}")
    return arr


def read_idx_labels(path, num_classes: int = 10) -> np.ndarray:
    arr = read_idx(path, IDX_LABELS_MAGIC)
    if arr.size and int(arr.max()) >= num_classes:
        raise DatasetCorruptError(
            f"{path}: label {int(arr.max())} out of range 0..{num_classes - 1}; {_REDOWNLOAD}")
    return arr.astype(np.int64)


def read_idx_pair(images_path, labels_path, num_classes: int = 10):
    """Images (N, 1, H, W) uint8 and labels (N,) int64 of one IDX split."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path, num_classes)
    if images.shape[0] == 0:
        raise DatasetCorruptError(f"{images_path}: holds no images (an empty split); "
                                  f"{_REDOWNLOAD}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetCorruptError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels; one of them is from another split or truncated")
    return images[:, None, :, :], labels


# ---------------------------------------------------------------------------------------
# CIFAR-10 python pickles
# ---------------------------------------------------------------------------------------
def _numpy_attr(modnames, attr):
    for mod in modnames:
        try:
            return getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {attr}")


def _latin1_encode(text, encoding="latin1", errors="strict"):
    # Python 3 pickles bytes with protocol < 3 as _codecs.encode(str, 'latin1').
    if str(encoding).lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    if not isinstance(text, str):
        raise pickle.UnpicklingError("_codecs.encode of a non-string")
    return text.encode("latin1")


_MULTIARRAY = ("numpy._core.multiarray", "numpy.core.multiarray")
_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")


class _NdarrayName:
    """Stands for numpy.ndarray in a pickle: may be passed to _reconstruct, never called."""

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("calling numpy.ndarray (uninitialised memory) is not allowed")


_NDARRAY = _NdarrayName()


def _reconstruct(subtype, shape, typecode):
    # numpy pickles start every array as _reconstruct(ndarray, (0,), b'b') and fill it with
    # __setstate__, which checks that the data holds exactly the bytes the shape needs. Any
    # other shape would return uninitialised memory, so only the empty start is allowed.
    if subtype is not _NDARRAY or type(shape) is not tuple or shape != (0,):
        raise pickle.UnpicklingError("_reconstruct is allowed only for an empty ndarray")
    return _numpy_attr(_MULTIARRAY, "_reconstruct")(np.ndarray, (0,), typecode)


def _dtype(spec, align=False, copy=False):
    if type(spec) not in (str, bytes):
        raise pickle.UnpicklingError("dtype only from a type string")
    return np.dtype(spec.decode("latin1") if type(spec) is bytes else spec, bool(align),
                    bool(copy))


def _scalar(dtype, raw):
    if not isinstance(dtype, np.dtype) or type(raw) is not bytes:
        raise pickle.UnpicklingError("numpy scalar only from a dtype and bytes")
    return _numpy_attr(_MULTIARRAY, "scalar")(dtype, raw)


def _frombuffer(buf, dtype, shape, order):
    if (type(buf) not in (bytes, bytearray) or not isinstance(dtype, np.dtype)
            or type(shape) is not tuple or not all(type(d) is int for d in shape)):
        raise pickle.UnpicklingError("array only from bytes, a dtype and a shape")
    return _numpy_attr(_NUMERIC, "_frombuffer")(buf, dtype, shape, order)


_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
}
_KEY_TYPES = (str, bytes, int)   # hashing these never recurses


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that can only build dicts, lists, tuples, str, bytes, numbers and plain
    NumPy arrays: every global outside a short allow-list is refused (and the allowed ones
    check their arguments), so loading a pickle can never run code or expose memory.

    It is Python's pure-Python unpickler (as fast here: a batch is a few large strings) with
    some opcodes checked: dict keys and set items must be str, bytes or int, since the C
    unpickler hashes a deeply nested tuple key recursively and crashes the interpreter; and
    BUILD may only fill NumPy arrays and dtypes."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return _SAFE_GLOBALS[module, name]

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")

    @staticmethod
    def _check_keys(keys):
        for key in keys:
            if type(key) not in _KEY_TYPES:
                raise pickle.UnpicklingError(
                    f"dict keys and set items must be str, bytes or int, not "
                    f"{type(key).__name__}")

    def load_setitem(self):
        self._check_keys(self.stack[-2:-1])
        super().load_setitem()

    def load_setitems(self):
        self._check_keys(self.stack[::2])   # the stack holds the items since the MARK
        super().load_setitems()

    def load_dict(self):
        self._check_keys(self.stack[::2])
        super().load_dict()

    def load_additems(self):
        self._check_keys(self.stack)
        super().load_additems()

    def load_frozenset(self):
        self._check_keys(self.stack)
        super().load_frozenset()

    def load_build(self):
        if not isinstance(self.stack[-2], (np.ndarray, np.dtype)):
            raise pickle.UnpicklingError("BUILD is allowed only on numpy arrays and dtypes")
        super().load_build()

    dispatch.update({pickle.SETITEM[0]: load_setitem, pickle.SETITEMS[0]: load_setitems,
                     pickle.DICT[0]: load_dict, pickle.ADDITEMS[0]: load_additems,
                     pickle.FROZENSET[0]: load_frozenset, pickle.BUILD[0]: load_build})


def safe_unpickle(data: bytes, path="<bytes>"):
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except MemoryError as exc:
        raise DatasetCorruptError(f"{path}: pickle asks for too much memory; {_REDOWNLOAD}") \
            from exc
    except RecursionError as exc:
        raise DatasetCorruptError(f"{path}: pickle nested too deeply; {_REDOWNLOAD}") from exc
    except Exception as exc:  # pickle/numpy raise many types on malformed input
        raise DatasetCorruptError(
            f"{path}: not a valid CIFAR-10 python pickle ({type(exc).__name__}: {exc}); "
            f"{_REDOWNLOAD}") from exc


def _get(d, key):
    """Look up b'key' (as in the real files) or 'key' (re-pickled under Python 3)."""
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def parse_cifar_batch(obj, path="<bytes>", num_classes: int = 10):
    """Validate an unpickled CIFAR batch dict; images (N,3,32,32) uint8, labels int64."""
    if not isinstance(obj, dict):
        raise DatasetCorruptError(f"{path}: CIFAR batch must be a dict, got {type(obj).__name__}")
    data, labels = _get(obj, "data"), _get(obj, "labels")
    if data is None or labels is None:
        keys = ", ".join(repr(k)[:24] for k in list(obj)[:6])
        raise DatasetCorruptError(
            f"{path}: CIFAR batch lacks b'data' or b'labels' (keys: {keys}); {_REDOWNLOAD}")
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != 3072):
        desc = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray)
                else type(data).__name__)
        raise DatasetCorruptError(f"{path}: b'data' must be a uint8 (N, 3072) array, got {desc}")
    if data.shape[0] == 0:
        raise DatasetCorruptError(f"{path}: holds no images (an empty batch); {_REDOWNLOAD}")
    if isinstance(labels, np.ndarray):
        labels_list = labels.ravel().tolist() if labels.dtype.kind in "iu" else None
    elif isinstance(labels, (list, tuple)):
        labels_list = list(labels)
    else:
        labels_list = None
    if labels_list is None or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                      for v in labels_list):
        raise DatasetCorruptError(f"{path}: b'labels' must be a list of ints")
    if len(labels_list) != data.shape[0]:
        raise DatasetCorruptError(
            f"{path}: {data.shape[0]} images but {len(labels_list)} labels; {_REDOWNLOAD}")
    # checked as Python ints, before any int64 conversion can overflow
    if not all(0 <= v < num_classes for v in labels_list):
        raise DatasetCorruptError(
            f"{path}: labels out of range 0..{num_classes - 1}; {_REDOWNLOAD}")
    lab = np.array(labels_list, dtype=np.int64)
    images = np.ascontiguousarray(data).reshape(-1, 3, 32, 32)
    return images, lab


def read_cifar_batch(path, num_classes: int = 10):
    """Read one CIFAR-10 python batch file (``data_batch_k`` or ``test_batch``)."""
    obj = safe_unpickle(_read_bytes(path, CIFAR_MAX_BYTES), path)
    return parse_cifar_batch(obj, path, num_classes)


def read_cifar_meta(path):
    """Label names from ``batches.meta`` (list of str)."""
    obj = safe_unpickle(_read_bytes(path, CIFAR_MAX_BYTES), path)
    names = _get(obj, "label_names") if isinstance(obj, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DatasetCorruptError(f"{path}: batches.meta lacks a b'label_names' list")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


# ---------------------------------------------------------------------------------------
# SVHN .mat
# ---------------------------------------------------------------------------------------
def read_svhn_mat(path):
    """Read an SVHN ``*_32x32.mat``: images (N,3,32,32) uint8, labels int64 (10 -> 0)."""
    path = Path(path)
    try:
        _check_regular(path, os.stat(path))
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except MemoryError as exc:
        raise DatasetCorruptError(f"{path}: corrupt .mat file (asks for too much memory); "
                                  f"{_REDOWNLOAD}") from exc
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, OSError ...
        raise DatasetCorruptError(
            f"{path}: cannot read as a MATLAB file ({type(exc).__name__}: {exc}); "
            f"{_REDOWNLOAD}") from exc
    X, y = mat.get("X"), mat.get("y")
    if not isinstance(X, np.ndarray) or not isinstance(y, np.ndarray):
        raise DatasetCorruptError(f"{path}: .mat file lacks the variables X and y; {_REDOWNLOAD}")
    if X.dtype != np.uint8 or X.ndim != 4 or X.shape[:3] != (32, 32, 3):
        raise DatasetCorruptError(
            f"{path}: X must be uint8 of shape (32, 32, 3, N), got {X.dtype} {X.shape}")
    n = X.shape[3]
    if n == 0:
        raise DatasetCorruptError(f"{path}: holds no images (an empty split); {_REDOWNLOAD}")
    if y.dtype.kind not in "iuf" or y.size != n or (y.ndim == 2 and y.shape[1] != 1) \
            or y.ndim > 2:
        raise DatasetCorruptError(
            f"{path}: y must be numeric of shape ({n}, 1), got {y.dtype} {y.shape}")
    y = y.reshape(-1)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise DatasetCorruptError(f"{path}: y holds non-integer labels")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 10):
        raise DatasetCorruptError(f"{path}: labels must be in 1..10 (10 = digit 0), got "
                                  f"{labels.min()}..{labels.max()}")
    labels[labels == 10] = 0
    images = np.ascontiguousarray(X.transpose(3, 2, 0, 1))
    return images, labels


# ---------------------------------------------------------------------------------------
# N-MNIST
# ---------------------------------------------------------------------------------------
NMNIST_EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.int8),
                               ("t", np.int64)])
NMNIST_SIZE = 34
_OVERFLOW_Y = 240          # Orchard's reader: an event with y == 240 marks a timestamp overflow
_OVERFLOW_STEP = 1 << 13   # ... and adds 2**13 us to all later timestamps (as in his reader)


def parse_nmnist(data: bytes, path="<bytes>") -> np.ndarray:
    """Decode N-MNIST 40-bit big-endian events (see :func:`read_nmnist`)."""
    if not data:
        raise DatasetCorruptError(f"{path}: the file is empty; an N-MNIST recording holds events, {_REDOWNLOAD}")
    if len(data) % 5:
        raise DatasetCorruptError(
            f"{path}: length {len(data)} bytes is not a multiple of 5 (40-bit events); "
            f"the file is truncated or not an N-MNIST .bin, {_REDOWNLOAD}")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 5)
    x = raw[:, 0].astype(np.int16)
    y = raw[:, 1].astype(np.int16)
    b2 = raw[:, 2].astype(np.int64)
    p = (b2 >> 7).astype(np.int8)
    t = ((b2 & 0x7F) << 16) | (raw[:, 3].astype(np.int64) << 8) | raw[:, 4].astype(np.int64)
    overflow = y == _OVERFLOW_Y
    if overflow.any():
        t = t + _OVERFLOW_STEP * np.cumsum(overflow)
        keep = ~overflow
        x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    if t.size > 1 and (np.diff(t) < 0).any():
        i = int(np.argmax(np.diff(t) < 0)) + 1
        raise DatasetCorruptError(
            f"{path}: timestamps go backwards (event {i}: {int(t[i])} us after {int(t[i - 1])} "
            f"us); not an N-MNIST recording, or a corrupt one, {_REDOWNLOAD}")
    if x.size and (x.max() >= NMNIST_SIZE or y.max() >= NMNIST_SIZE):
        raise DatasetCorruptError(
            f"{path}: event coordinates out of range (x max {int(x.max())}, y max "
            f"{int(y.max())}; both must be < {NMNIST_SIZE}); not an N-MNIST recording?")
    if not x.size:
        raise DatasetCorruptError(f"{path}: the file holds no events (only timestamp-overflow markers), {_REDOWNLOAD}")
    ev = np.empty(x.size, dtype=NMNIST_EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = x, y, p, t
    return ev


def read_nmnist(path) -> np.ndarray:
    """Read one N-MNIST ``.bin`` recording.

    Each event is 5 bytes, big-endian: byte 0 = x, byte 1 = y, bit 7 of byte 2 = polarity,
    the remaining 23 bits (byte 2 low 7 bits, byte 3, byte 4) = timestamp in microseconds.
    Returns a structured array with fields ``x``, ``y`` (int16, < 34), ``p`` (int8, 0 = OFF,
    1 = ON) and ``t`` (int64 microseconds). Like the dataset author's reader, an event with
    y == 240 is a timestamp-overflow marker: it is dropped and adds 2**13 us to the timestamps
    of all later events (real N-MNIST recordings, ~0.3 s, contain none). Timestamps must not
    decrease (after that correction); an empty recording, and anything but a regular file, are
    refused.
    """
    return parse_nmnist(_read_bytes(path), path)


def events_to_frames(events, T: int, duration_us=None, height: int = NMNIST_SIZE,
                     width: int = NMNIST_SIZE) -> np.ndarray:
    """Bin events into ``T`` frames of event counts: float32 array (T, 2, height, width).

    Channel 0 counts OFF events (p = 0), channel 1 ON events (p = 1). Time is split into T
    equal bins over [0, duration_us); ``duration_us`` defaults to the recording's length
    (last timestamp + 1), and events at or after ``duration_us`` are dropped.
    """
    T = int(T)
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    frames = np.zeros((T, 2, height, width), dtype=np.float32)
    if len(events) == 0:
        return frames
    x = np.asarray(events["x"], dtype=np.int64)
    y = np.asarray(events["y"], dtype=np.int64)
    p = np.asarray(events["p"], dtype=np.int64)
    t = np.asarray(events["t"], dtype=np.int64)
    if x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height:
        raise DatasetError(f"events lie outside the {height}x{width} sensor")
    if p.min() < 0 or p.max() > 1:
        raise DatasetError("event polarities must be 0 or 1")
    if duration_us is None:
        duration = int(t.max()) + 1
    else:
        duration = int(duration_us)
        if duration <= 0:
            raise ValueError(f"duration_us must be > 0, got {duration_us}")
    keep = (t >= 0) & (t < duration)
    if not keep.all():
        x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    b = (t * T) // duration
    flat = ((b * 2 + p) * height + y) * width + x
    counts = np.bincount(flat, minlength=T * 2 * height * width)
    frames[...] = counts.reshape(T, 2, height, width)
    return frames


def nmnist_batch(recordings, T: int, duration_us=None, binary: bool = False,
                 height: int = NMNIST_SIZE, width: int = NMNIST_SIZE,
                 dtype=np.float32) -> np.ndarray:
    """Stack recordings into a (N, T, 2, height, width) batch of frames.

    ``binary=True`` clips counts to {0, 1} (spike / no spike per pixel and bin).
    """
    out = np.empty((len(recordings), int(T), 2, height, width), dtype=dtype)
    for i, ev in enumerate(recordings):
        fr = events_to_frames(ev, T, duration_us, height, width)
        out[i] = np.minimum(fr, 1.0) if binary else fr
    return out


class EventFrames:
    """Picklable transform for :class:`BatchIterator`: list of recordings -> frame batch."""

    def __init__(self, T: int, duration_us=None, binary: bool = True):
        self.T, self.duration_us, self.binary = int(T), duration_us, bool(binary)

    def __call__(self, recordings):
        return nmnist_batch(recordings, self.T, self.duration_us, self.binary)

    def __repr__(self):
        return (f"EventFrames(T={self.T}, duration_us={self.duration_us}, "
                f"binary={self.binary})")


def list_nmnist(split_dir):
    """Sorted (path, label) pairs of ``<split_dir>/<digit>/*.bin``; none is an error."""
    split_dir = Path(split_dir)
    out = []
    for d in range(10):
        sub = split_dir / str(d)
        if not sub.is_dir():
            continue
        for name in sorted(os.listdir(sub)):
            if name.endswith(".bin"):
                out.append((sub / name, d))
    if not out:
        raise DatasetCorruptError(f"{split_dir}: no recordings (<digit>/*.bin) in it (an empty "
                                  "split); delete the folder and unpack or download it again")
    return out
