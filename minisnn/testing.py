"""A strict array module for tests: NumPy underneath, CuPy's rules on top.

minisnn runs the same array code on NumPy (CPU) and CuPy (GPU) through ``backend.xp``. NumPy
is lenient where CuPy is not, so code can pass every CPU test and still break on the GPU:

* CuPy refuses *implicit* device->host conversion: ``np.asarray(gpu_array)`` raises
  ``TypeError: Implicit conversion to a NumPy array is not allowed``; only ``a.get()`` and
  ``cupy.asnumpy(a)`` cross to the host.
* CuPy refuses to mix host and device arrays: ``gpu_array + np.ones(3)``, ``cupy.exp(host)`` and
  ``cupy.concatenate([gpu, host])`` raise ``TypeError: Unsupported type <class 'numpy.ndarray'>``.
* CuPy ufuncs reject Python lists as operands, reductions return 0-d arrays (not scalars), and
  ``cupy.random.Generator`` has only some of NumPy's methods (no ``normal``, ``permutation``,
  ``choice`` or ``shuffle`` in CuPy 13).

``strict_xp`` is a module-like object that wraps NumPy and enforces those rules, so a stray
``np.`` call or a host array leaking into device code fails in a CPU test. Use it through
:func:`strict_backend`::

    be = strict_backend()
    x = be.to_device(host_images)        # explicit upload: allowed
    y = be.xp.exp(x) + 1.0               # device code: fine
    np.exp(host_images) + x              # mixing: TypeError
    be.to_host(y)                        # explicit download: a NumPy array

Arrays are :class:`StrictArray` (a wrapper holding an ndarray, not a subclass), so
``isinstance(a, strict_xp.ndarray)`` holds and ``isinstance(a, np.ndarray)`` does not, as on CuPy.
Raw NumPy arrays are allowed as *indices* (CuPy uploads them), but not as operands, function
arguments, ``out=`` buffers or assigned values.
"""
from __future__ import annotations

import functools
import inspect

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


__all__ = ["StrictArray", "strict_xp", "strict_backend"]

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
             "construct a NumPy array explicitly.")


def _refuse(x):
    return TypeError(f"Unsupported type {type(x)} (strict_xp: a host NumPy array mixed with "
                     "device arrays; upload it with xp.asarray / Backend.to_device first)")


# -- unwrapping arguments and wrapping results ------------------------------------------------
def _unwrap(x, seen, host_ok=False):
    """StrictArray -> its ndarray (recorded in ``seen``); raw ndarray -> TypeError."""
    if type(x) is StrictArray:
        seen[id(x._a)] = x
        return x._a
    if isinstance(x, np.ndarray):
        if host_ok:
            return x
        raise _refuse(x)
    if type(x) in (list, tuple):
        return type(x)(_unwrap(v, seen, host_ok) for v in x)
    if type(x) is dict:
        return {k: _unwrap(v, seen, host_ok) for k, v in x.items()}
    return x


def _wrap(r, seen=None):
    """ndarray -> StrictArray (the caller's own wrapper if it is an input or ``out`` buffer);
    NumPy scalar -> 0-d StrictArray, because CuPy reductions and indexing return 0-d arrays."""
    if isinstance(r, np.ndarray):
        w = seen.get(id(r)) if seen else None
        return w if w is not None and w._a is r else StrictArray(r)
    if isinstance(r, np.generic):
        return StrictArray(np.asarray(r))
    if type(r) in (list, tuple):
        return type(r)(_wrap(v, seen) for v in r)
    return r


def _call(func, args, kwargs, host_ok=False):
    seen = {}
    args = _unwrap(args, seen, host_ok)
    kwargs = _unwrap(kwargs, seen, host_ok)
    return _wrap(func(*args, **kwargs), seen)


def _strict(func, host_ok=False):
    """``func`` with StrictArray arguments unwrapped, host arrays refused, results wrapped."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return _call(func, args, kwargs, host_ok)
    return wrapper


def _ufunc_call(ufunc, method, inputs, kwargs):
    """``ufunc.method(*inputs)`` with CuPy's rules: operands are arrays or scalars (no lists);
    the index argument of ``at``/``reduceat`` may be a tuple, a list or a NumPy array."""
    index_pos = 1 if method in ("at", "reduceat") else None
    seen = {}
    unwrapped = []
    for i, x in enumerate(inputs):
        if i != index_pos and type(x) in (list, tuple):
            raise TypeError(f"Unsupported type {type(x)} (strict_xp: CuPy ufuncs do not take "
                            "lists; use xp.asarray)")
        unwrapped.append(_unwrap(x, seen, host_ok=i == index_pos))
    return _wrap(getattr(ufunc, method)(*unwrapped, **_unwrap(kwargs, seen)), seen)


# -- the array ----------------------------------------------------------------------------
class StrictArray(NDArrayOperatorsMixin):
    """A NumPy array behaving like a ``cupy.ndarray``: no implicit host conversion, no mixing."""

    __slots__ = ("_a",)

    def __init__(self, array):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(array)}")
        self._a = array

    # NumPy protocols: dispatch is allowed, results stay strict, conversion is refused.
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _ufunc_call(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs)

    def __array_namespace__(self, api_version=None):
        return strict_xp                    # the module its arrays belong to (minisnn.loss asks)

    # explicit device -> host
    def get(self, stream=None, order="C", out=None):
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        """Copy a host array into this one (``cupy.ndarray.set``)."""
        arr = np.asarray(arr)
        if arr.shape != self._a.shape or arr.dtype != self._a.dtype:
            raise ValueError("StrictArray.set: shape and dtype must match")
        self._a[...] = arr

    # container protocol
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (StrictArray(self._a[i, ...]) for i in range(len(self._a)))

    def __getitem__(self, key):
        key = _unwrap(key, {}, host_ok=True)  # CuPy accepts NumPy index arrays
        r = self._a[key]
        if isinstance(r, np.generic):  # CuPy returns a 0-d view, not a scalar
            r = self._a[(key if type(key) is tuple else (key,)) + (Ellipsis,)]
        return StrictArray(r)

    def __setitem__(self, key, value):
        key = _unwrap(key, {}, host_ok=True)
        if isinstance(value, np.ndarray):
            if value.ndim:  # CuPy: "non-scalar numpy.ndarray cannot be used for fill"
                raise _refuse(value)
            value = value[()]
        self._a[key] = _unwrap(value, {})

    # Python scalars: CuPy allows these (they synchronise), so do we.
    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __complex__(self):
        return complex(self._a)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a if self._a.ndim else self._a[()], spec)

    def __copy__(self):
        return StrictArray(self._a.copy())

    def __deepcopy__(self, memo):
        return StrictArray(self._a.copy())

    def __reduce__(self):
        return (StrictArray, (self._a,))

    def __setattr__(self, name, value):
        if name == "_a":
            object.__setattr__(self, name, value)
        elif name in ("shape", "strides"):
            setattr(self._a, name, value)
        else:
            raise AttributeError(f"cannot set {name!r} on a strict array")

    # everything else (shape, dtype, T, reshape, sum, astype, ...) comes from the ndarray
    def __getattr__(self, name):
        if name.startswith("__") or name in ("_a", "ctypes", "data"):
            # __array_interface__ and the like would let NumPy convert us silently
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")
        attr = getattr(self._a, name)
        return _strict(attr) if callable(attr) else _wrap(attr)


# -- ufuncs and the module ----------------------------------------------------------------
class _StrictUfunc:
    """A NumPy ufunc that takes StrictArrays only: ``xp.add(a, b)``, ``xp.add.at(a, i, b)``."""

    def __init__(self, ufunc):
        self._uf = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *inputs, **kwargs):
        return _ufunc_call(self._uf, "__call__", inputs, kwargs)

    def __getattr__(self, name):
        if name in ("at", "reduce", "reduceat", "accumulate", "outer"):
            return lambda *inputs, **kwargs: _ufunc_call(self._uf, name, inputs, kwargs)
        return getattr(self._uf, name)

    def __repr__(self):
        return f"<strict ufunc {self.__name__!r}>"


# Generator methods of cupy.random.Generator (CuPy 13); NumPy's others (normal, permutation,
# choice, shuffle, ...) are refused. Per method, parameters CuPy takes only as a device array or
# a Python scalar of these exact types (it refuses NumPy scalars there).
_CUPY_GENERATOR = {
    "random": {}, "uniform": {}, "integers": {}, "standard_normal": {},
    "standard_exponential": {}, "exponential": {}, "standard_gamma": {"shape": (float, int)},
    "gamma": {}, "beta": {"a": (float, int), "b": (float, int)}, "chisquare": {"df": (float, int)},
    "dirichlet": {"alpha": (float, int)}, "f": {}, "geometric": {"p": (float, int)},
    "hypergeometric": {}, "logseries": {"p": (float, int)}, "poisson": {"lam": (float, int)},
    "power": {"a": (float, int)}, "binomial": {"n": (float, int), "p": (float,)},
}

_GENERATOR_HINTS = {
    "normal": "use loc + scale * standard_normal(size, dtype)",
    "permutation": "use xp.argsort(random(n)) or a host permutation uploaded once",
    "shuffle": "index with xp.argsort(random(n)) instead",
    "choice": "use integers(...) or xp.argsort(random(n))[:k]",
}


class _StrictGenerator:
    """``numpy.random.Generator`` limited to what ``cupy.random.Generator`` offers."""

    def __init__(self, gen):
        self._gen = gen

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name == "bit_generator":
            return self._gen.bit_generator
        if name not in _CUPY_GENERATOR:
            hint = _GENERATOR_HINTS.get(name, "see cupy.random.Generator for what exists")
            raise AttributeError(f"cupy.random.Generator has no method {name!r} (strict_xp); "
                                 f"{hint}")
        method, scalar_types = getattr(self._gen, name), _CUPY_GENERATOR[name]
        signature = inspect.signature(method)

        def call(*args, **kwargs):
            for param, value in signature.bind(*args, **kwargs).arguments.items():
                if (param in scalar_types and type(value) is not StrictArray
                        and type(value) not in scalar_types[param]):
                    raise TypeError(f"{param} is required to be a cupy.ndarray or a scalar of "
                                    f"type {scalar_types[param]} (got {type(value)})")
            r = _call(method, args, kwargs)
            return StrictArray(np.asarray(r)) if isinstance(r, (int, float)) else r
        self.__dict__[name] = call  # cache
        return call


class _Namespace:
    """A wrapped NumPy (sub)module: functions strict, ufuncs strict, types and constants as-is."""

    def __init__(self, module, overrides=(), refused=()):
        self._module = module
        self._refused = dict(refused)
        self.__dict__.update(overrides)
        self.__name__ = "strict_xp" + module.__name__[len("numpy"):]

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._refused:
            raise AttributeError(f"strict_xp.{name} is refused: {self._refused[name]}")
        obj = getattr(self._module, name)
        if isinstance(obj, np.ufunc):
            obj = _StrictUfunc(obj)
        elif type(obj).__name__ == "module":
            obj = _Namespace(obj)
        elif callable(obj) and not isinstance(obj, type):
            obj = _strict(obj)
        self.__dict__[name] = obj  # cache
        return obj

    def __repr__(self):
        return f"<{self.__name__}: NumPy with CuPy's strictness>"


def _asarray(func):
    """``xp.asarray``/``xp.array``: host data is uploaded explicitly, which CuPy allows."""
    return _strict(func, host_ok=True)


def _asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if type(a) is StrictArray:
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)  # CuPy: host input is returned as a NumPy array


def _get_array_module(*args):
    return strict_xp if any(type(a) is StrictArray for a in args) else np


_HOST_IO = ("minisnn reads files on the host with NumPy and uploads them with "
            "Backend.to_device (CuPy's version is only a host read plus asarray)")

strict_xp = _Namespace(
    np,
    overrides={
        "ndarray": StrictArray,
        "asarray": _asarray(np.asarray),
        "array": _asarray(np.array),
        "asanyarray": _asarray(np.asarray),
        "asnumpy": _asnumpy,
        "get_array_module": _get_array_module,
        "random": _Namespace(np.random, overrides={
            "default_rng": lambda seed=None: _StrictGenerator(np.random.default_rng(seed)),
            "Generator": _StrictGenerator}),
    },
    refused={name: _HOST_IO for name in ("frombuffer", "fromfile", "loadtxt", "genfromtxt")},
)


def strict_backend(dtype: str = "float32"):
    """A CPU :class:`~minisnn.backend.Backend` whose ``xp`` is :data:`strict_xp`."""
    from .backend import Backend   # imported here: backend itself imports this module on demand
    return Backend("cpu", dtype, xp=strict_xp)


# -- sparse matrices: cupyx.scipy.sparse's rules on scipy.sparse ------------------------------
class _StrictSparseMatrix:
    """A scipy sparse matrix that, like cupyx's, multiplies device arrays only."""

    def __init__(self, matrix):
        self._m = matrix

    shape = property(lambda self: self._m.shape)
    nnz = property(lambda self: self._m.nnz)

    def tocsr(self):
        return _StrictSparseMatrix(self._m.tocsr())

    def __matmul__(self, other):
        if type(other) is not StrictArray:
            raise _refuse(other)
        return StrictArray(np.asarray(self._m @ other._a))


def _strict_sparse_constructor(kind):
    def construct(arg, shape=None):
        import scipy.sparse
        return _StrictSparseMatrix(getattr(scipy.sparse, kind)(_unwrap(arg, {}), shape=shape))
    return construct


class _StrictSparseModule:
    """Stands for ``cupyx.scipy.sparse`` under :data:`strict_xp`: host arrays are refused."""
    csr_matrix = staticmethod(_strict_sparse_constructor("csr_matrix"))
    coo_matrix = staticmethod(_strict_sparse_constructor("coo_matrix"))


strict_sparse = _StrictSparseModule()
strict_xp.sparse_module = strict_sparse          # what minisnn.events multiplies strict arrays with


# -- checks for any layer, and the hand-written gradient through time (minisnn.layercheck) ----
from .layercheck import check_layer, hand_bptt  # noqa: E402

__all__ += ["check_layer", "hand_bptt"]
