"""The one place that chooses the array module.

Every array operation in minisnn goes through ``backend.xp`` (NumPy on the CPU, CuPy on the
GPU), in the style of Chainer's ``get_array_module``. Data crosses between host and device only
through :meth:`Backend.to_device` and :meth:`Backend.to_host`.

Random numbers are counter-based: :meth:`Backend.rng` derives a fresh generator from a key
such as ``(seed, "encode", iteration)``. A run is therefore reproduced exactly from its seed and
its iteration counter alone, which is what makes checkpoint resume bitwise exact.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


class DeviceError(RuntimeError):
    """The requested device cannot be used (no CuPy, or no CUDA device)."""


def _key_to_ints(key):
    """Turn a key of ints and strings into non-negative ints for SeedSequence, injectively:
    each part becomes (type tag, value), a string's value being a 64-bit hash of all of it."""
    ints = []
    for part in key:
        if isinstance(part, str):
            digest = hashlib.blake2b(part.encode(), digest_size=8).digest()
            ints += [1, int.from_bytes(digest, "little")]
        else:
            ints += [0, int(part) & 0xFFFFFFFFFFFFFFFF]
    return ints


def _import_cupy():
    try:
        import cupy
    except ImportError as exc:
        raise DeviceError(
            "--device gpu needs CuPy, which is not installed: "
            "pip install 'minisnn[gpu]' (cupy-cuda12x), or use --device cpu"
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise DeviceError(
            f"--device gpu: CuPy is installed but no CUDA device is usable ({exc}); "
            "check the NVIDIA driver with nvidia-smi, or use --device cpu"
        ) from exc
    if count == 0:
        raise DeviceError("--device gpu: CuPy found no CUDA device; use --device cpu")
    return cupy


class Backend:
    """Array module, default dtype and random streams of one device.

    ``xp`` may be given directly (tests pass a strict NumPy wrapper that behaves like CuPy).
    The environment variable ``MINISNN_STRICT_XP=1`` makes every CPU backend use that wrapper,
    so a whole program can be checked for code that would break on CuPy without a GPU.
    """

    def __init__(self, device: str = "cpu", dtype: str = "float32", xp=None):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.device = device
        self.dtype = DTYPES[str(dtype)]
        if xp is None and device == "cpu" and os.environ.get("MINISNN_STRICT_XP") == "1":
            from .testing import strict_xp  # CuPy's rules on NumPy: find GPU bugs without a GPU
            xp = strict_xp
        if xp is not None:
            self.xp = xp
        elif device == "gpu":
            self.xp = _import_cupy()
        else:
            self.xp = np

    def __repr__(self):
        return f"Backend(device={self.device!r}, dtype={np.dtype(self.dtype).name!r})"

    # -- host <-> device: the only two crossings --------------------------------------------
    def to_device(self, host_array, dtype=None):
        """Copy a host array to the device (a no-op on the CPU), optionally casting."""
        if dtype is not None:
            host_array = np.asarray(host_array, dtype=dtype)
        return self.xp.asarray(host_array)

    def to_host(self, array):
        """Copy a device array to a NumPy array (a no-op on the CPU)."""
        if hasattr(self.xp, "asnumpy"):
            return self.xp.asnumpy(array)
        return np.asarray(array)

    # -- random streams -------------------------------------------------------------------
    def rng(self, *key):
        """A generator on the device, determined entirely by ``key`` (ints and strings)."""
        seed = np.random.SeedSequence(_key_to_ints(key)).generate_state(1, np.uint64)[0]
        return self.xp.random.default_rng(int(seed))

    @staticmethod
    def host_rng(*key):
        """A NumPy generator on the host (shuffling, data augmentation), determined by key."""
        return np.random.default_rng(_key_to_ints(key))

    def synchronize(self):
        """Wait for queued device work (for timing); nothing to do on the CPU."""
        if self.device == "gpu":
            self.xp.cuda.Stream.null.synchronize()


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _openblas_thread_functions():
    """(get, set) of the OpenBLAS that NumPy loaded, or None where it cannot be found."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", maps.read())))
    except OSError:
        return None
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"), ("openblas", "")):
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if getter is not None and setter is not None:
                return getter, setter
    return None


_BLAS = _openblas_thread_functions()


@contextlib.contextmanager
def blas_threads(count: int):
    """Run the enclosed code with NumPy's BLAS limited to ``count`` threads (OpenBLAS only;
    elsewhere a no-op). The network's CPU workers each call BLAS with one thread."""
    if _BLAS is None:
        yield
        return
    getter, setter = _BLAS
    before = getter()
    setter(count)
    try:
        yield
    finally:
        setter(before)


def get_backend(device: str = "cpu", dtype: str = "float32") -> Backend:
    return Backend(device, dtype)
