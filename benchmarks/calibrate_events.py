"""Measure where the event-driven product starts to beat the dense one, layer shape by layer shape.

For each layer shape of the thesis' networks, times the dense convolution (im2col x W, BLAS) and
the event-driven ones - the compiled loop (numba, ``minisnn.kernels``) and the sparse patch
matrix x W (SciPy, the reference) - on random spike maps of increasing density, one thread
(CPU time, so a busy machine disturbs the figures less), finds the density where each costs
what the dense one does, and fits the break-even rule of ``minisnn.events`` per kernel:

    event path when density < scale * c_out / (c_out + half)

    python benchmarks/calibrate_events.py            # prints tables and the fitted constants
    python benchmarks/calibrate_events.py --device gpu
"""
import argparse
import json
import os
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from minisnn import events, ops  # noqa: E402
from minisnn.backend import Backend  # noqa: E402

#: (name, images per chunk, H, C_in, C_out, k, stride): 10 steps x batch 16 of each layer
SHAPES = [
    ("lenet5 conv2", 640, 14, 20, 50, 5, 1),
    ("vgg conv 32px 64->64", 160, 32, 64, 64, 3, 1),
    ("vgg conv 16px 64->128", 160, 16, 64, 128, 3, 1),
    ("vgg conv 16px 128->128", 160, 16, 128, 128, 3, 1),
    ("vgg conv 8px 128->256", 160, 8, 128, 256, 3, 1),
    ("vgg conv 8px 256->256", 160, 8, 256, 256, 3, 1),
    ("resnet conv s2 16px 128->256", 160, 16, 128, 256, 3, 2),
]
DENSITIES = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)


def timed(backend, fn, reps):
    best = float("inf")
    for _ in range(reps):
        backend.synchronize()
        t0 = time.process_time() if backend.device == "cpu" else time.perf_counter()
        fn()
        backend.synchronize()
        t1 = time.process_time() if backend.device == "cpu" else time.perf_counter()
        best = min(best, t1 - t0)
    return best


def crossing(densities, dense, event):
    """Density where event time = dense time, interpolated on a log-density axis."""
    ratio = np.log(np.asarray(event) / np.asarray(dense))
    for i in range(len(densities) - 1):
        if ratio[i] <= 0 < ratio[i + 1]:
            f = -ratio[i] / (ratio[i + 1] - ratio[i])
            return float(np.exp(np.log(densities[i]) + f * (np.log(densities[i + 1]) - np.log(densities[i]))))
    return densities[-1] if ratio[-1] <= 0 else densities[0] / 2


def fit(rows):
    """scale, half of rho* = scale * c_out / (c_out + half), least squares on a grid of half."""
    c_outs = np.array([r["c_out"] for r in rows], float)
    rho = np.array([r["break_even"] for r in rows])
    best = None
    for half in np.arange(0.0, 512.0, 4.0):
        g = c_outs / (c_outs + half)
        scale = float((g @ rho) / (g @ g))
        err = float(((scale * g - rho) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, scale, half)
    return best[1], best[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale-images", type=float, default=1.0, help="fewer images per chunk, for a quick look")
    args = ap.parse_args()
    backend = Backend(args.device)
    xp, host = backend.xp, np.random.default_rng(0)
    kernels = {"cupyx": events.conv2d} if args.device == "gpu" else {"scipy": events.conv2d_sparse}
    if events.compiled_kernels(xp) is not None:
        print(f"numba kernels compiled (or loaded from numba's cache) in {events.compiled_kernels(xp).COMPILE_SECONDS:.2f} s")
        kernels = {"numba": events.conv2d, **kernels}
    rows = {kernel: [] for kernel in kernels}
    for name, n, h, c, c_out, k, s in SHAPES:
        n = max(1, int(n * args.scale_images))
        weight = backend.to_device(host.standard_normal((c_out, c, k, k)).astype(np.float32))
        dense_t, event_t = [], {kernel: [] for kernel in kernels}
        for rho in DENSITIES:
            x = backend.to_device((host.random((n, h, h, c)) < rho).astype(np.float32))
            dense_t.append(timed(backend, lambda: ops.conv2d(xp, x, weight, s, k // 2), args.reps))
            for kernel, product in kernels.items():
                event_t[kernel].append(timed(backend, lambda: product(xp, x, weight, s, k // 2), args.reps))
        for kernel in kernels:
            rows[kernel].append(dict(layer=name, kernel=kernel, c_out=c_out,
                                     break_even=round(crossing(DENSITIES, dense_t, event_t[kernel]), 4),
                                     dense_ms=[round(1e3 * t, 1) for t in dense_t],
                                     event_ms=[round(1e3 * t, 1) for t in event_t[kernel]]))
            print(json.dumps(rows[kernel][-1]), flush=True)
    for kernel, table in rows.items():
        scale, half = fit(table)
        print(f"\n{kernel}: speed-up of the event path over the dense one at each density")
        print("| layer | " + " | ".join(f"{100 * d:g} %" for d in DENSITIES) + " | break-even |")
        print("|---|" + "---|" * (len(DENSITIES) + 1))
        for r in table:
            ups = " | ".join(f"{d / e:.2f}x" for d, e in zip(r["dense_ms"], r["event_ms"]))
            print(f"| {r['layer']} | {ups} | {100 * r['break_even']:.1f} % |")
        print(f"fitted: BREAK_EVEN[{kernel!r}] = dict(scale={scale:.3f}, half={half:.0f})")


if __name__ == "__main__":
    main()
