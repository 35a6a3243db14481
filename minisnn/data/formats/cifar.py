"""CIFAR-10's python pickles, read by an unpickler that can only build plain data and arrays."""
from __future__ import annotations

import importlib
import io
import pickle

import numpy as np

from ..errors import DatasetCorruptError
from .common import _REDOWNLOAD, _read_bytes

CIFAR_MAX_BYTES = 64 << 20                 # a CIFAR-10 batch is 31 MB


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
