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
import hashlib
import os
import threading

import numpy as np
import threadpoolctl

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


def _import_cupy(index=0):
    try:
        import cupy
    except ImportError as exc:
        raise DeviceError(
            "the GPU backend needs CuPy, which is not installed: pip install "
            "'minisnn[gpu-cuda12]' (gpu-cuda11 / gpu-cuda13 for other CUDA versions), "
            "or use the CPU (device 'cpu')"
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise DeviceError(
            f"CuPy is installed but no CUDA device is usable ({exc}); check the NVIDIA "
            "driver with nvidia-smi, or use the CPU (device 'cpu')"
        ) from exc
    if index >= count:
        raise DeviceError(f"GPU {index} asked for, but CuPy found {count} CUDA device(s)"
                          + (f" (0 to {count - 1})" if count else "; use the CPU (device 'cpu')"))
    cupy.cuda.Device(index).use()
    return cupy


def parse_device(device):
    """'cpu' -> ('cpu', None); 'gpu', 'cuda' -> ('gpu', 0); 'gpu:1', 'cuda:1' -> ('gpu', 1)."""
    name, _, index = str(device).strip().lower().partition(":")
    if name == "cpu" and not index:
        return "cpu", None
    if name in ("gpu", "cuda") and (not index or index.isdigit()):
        return "gpu", int(index or 0)
    raise ValueError(f"device must be 'cpu' or 'gpu' ('cuda' is the same; 'gpu:1' or 'cuda:1' "
                     f"picks a GPU by its index), got {device!r}")


def _parse_dtype(dtype):
    try:
        name = None if dtype is None else np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)} (a name or a NumPy dtype), "
                         f"got {dtype!r}")
    return DTYPES[name]


class Backend:
    """Array module, default dtype and random streams of one device.

    ``device``: ``"cpu"`` (NumPy), or ``"gpu"`` / ``"cuda"`` (CuPy on GPU 0), ``"gpu:N"`` /
    ``"cuda:N"`` (GPU N); ``backend.device`` is then ``"gpu"`` and ``backend.gpu_index`` N.
    ``dtype``: ``"float32"`` or ``"float64"``, as a name or a NumPy dtype (``np.float64``).
    ``xp`` may be given directly (tests pass a strict NumPy wrapper that behaves like CuPy).
    The environment variable ``MINISNN_STRICT_XP=1`` makes every CPU backend use that wrapper,
    so a whole program can be checked for code that would break on CuPy without a GPU.
    """

    def __init__(self, device: str = "cpu", dtype="float32", xp=None):
        self.device, self.gpu_index = parse_device(device)
        self.dtype = _parse_dtype(dtype)
        if xp is None and self.device == "cpu" and os.environ.get("MINISNN_STRICT_XP") == "1":
            from .testing import strict_xp  # CuPy's rules on NumPy: find GPU bugs without a GPU
            xp = strict_xp
        if xp is not None:
            self.xp = xp
        elif self.device == "gpu":
            self.xp = _import_cupy(self.gpu_index)
        else:
            self.xp = np

    def __repr__(self):
        device = self.device if self.gpu_index in (None, 0) else f"gpu:{self.gpu_index}"
        return f"Backend(device={device!r}, dtype={np.dtype(self.dtype).name!r})"

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


def keep_freed_memory() -> bool:
    """Have the C library keep the memory NumPy frees for its next arrays instead of returning
    it to the kernel (glibc's malloc: no separate mapping for large blocks, no trimming). A
    training step frees and allocates the same large arrays again and again (a time chunk's
    currents, im2col patches); memory handed back must be zeroed by the kernel when touched
    again, which cost a spiking VGG9's training step about a tenth of its CPU time (page faults).
    The process keeps its peak memory in return. For the commands, not the library: it changes
    the whole process. Returns False where the C library is not glibc (nothing changed)."""
    import ctypes
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4                     # glibc's <malloc.h>
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


_blas_lock = threading.Lock()
_blas_users = 0        # callers inside blas_threads, in all threads
_blas_limiter = None   # the threadpoolctl limiter set by the first of them


def _release_blas_control():
    """threadpoolctl >= 3.8 lets only the thread that last changed OpenBLAS's thread count
    change it again, until that thread gives control up: give it up, so that whichever thread
    leaves :func:`blas_threads` last can restore the count."""
    release = getattr(threadpoolctl.OpenBLASController, "clear_controlling_thread", None)
    if release is not None:
        release()


@contextlib.contextmanager
def blas_threads(count: int):
    """Run the enclosed code with NumPy's BLAS limited to ``count`` threads (through
    threadpoolctl; a no-op where it finds no BLAS). The network's CPU workers each call BLAS
    with one thread.

    Safe from several threads at once: the count is set when the first caller enters and
    restored when the last one leaves (in between the first caller's count holds), so it
    never changes while another caller is inside, and it is always restored."""
    global _blas_users, _blas_limiter
    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = threadpoolctl.threadpool_limits(limits=int(count), user_api="blas")
            _release_blas_control()
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _release_blas_control()
                _blas_limiter = None


def get_backend(device: str = "cpu", dtype: str = "float32") -> Backend:
    return Backend(device, dtype)
