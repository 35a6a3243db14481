"""The one place that chooses the array module.

Every array operation in minisnn goes through ``backend.xp`` (NumPy on the CPU, CuPy on the
GPU), in the style of Chainer's ``get_array_module``. Data crosses between host and device only
through :meth:`Backend.to_device` and :meth:`Backend.to_host`.

Random numbers are counter-based: :meth:`Backend.rng` derives a fresh generator from a key
such as ``(seed, "encode", iteration)``. A run is therefore reproduced exactly from its seed and
its iteration counter alone, which is what makes checkpoint resume bitwise exact.
"""
from __future__ import annotations

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


class DeviceError(RuntimeError):
    """The requested device cannot be used (no CuPy, or no CUDA device)."""


def _key_to_ints(key):
    """Turn a key of ints and strings into a list of non-negative ints for SeedSequence."""
    ints = []
    for part in key:
        if isinstance(part, str):
            ints.append(int.from_bytes(part.encode()[:8].ljust(8, b"\0"), "little"))
        else:
            ints.append(int(part) & 0xFFFFFFFFFFFFFFFF)
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
    """

    def __init__(self, device: str = "cpu", dtype: str = "float32", xp=None):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.device = device
        self.dtype = DTYPES[str(dtype)]
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


def get_backend(device: str = "cpu", dtype: str = "float32") -> Backend:
    return Backend(device, dtype)
