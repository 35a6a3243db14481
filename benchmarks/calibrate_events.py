"""Measure where the event-driven product starts to beat the dense one, layer shape by layer shape.

For each layer shape of the thesis' networks, times the dense convolution (im2col x W, BLAS) and
the event-driven one (sparse patch matrix x W, ``minisnn.events``) on random spike maps of
increasing density, one thread (CPU time, so a busy machine disturbs the figures less), finds
the density where they cost the same, and fits the break-even rule of ``minisnn.events``:

    event path when density < scale * c_out / (c_out + half)

    python benchmarks/calibrate_events.py            # prints a table and the fitted constants
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
DENSITIES = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16)


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale-images", type=float, default=1.0, help="fewer images per chunk, for a quick look")
    args = ap.parse_args()
    backend = Backend(args.device)
    xp, host = backend.xp, np.random.default_rng(0)
    rows = []
    for name, n, h, c, c_out, k, s in SHAPES:
        n = max(1, int(n * args.scale_images))
        weight = backend.to_device(host.standard_normal((c_out, c, k, k)).astype(np.float32))
        dense_t, event_t = [], []
        for rho in DENSITIES:
            x = backend.to_device((host.random((n, h, h, c)) < rho).astype(np.float32))
            dense_t.append(timed(backend, lambda: ops.conv2d(xp, x, weight, s, k // 2), args.reps))
            event_t.append(timed(backend, lambda: events.conv2d(xp, x, weight, s, k // 2), args.reps))
        rho_star = crossing(DENSITIES, dense_t, event_t)
        rows.append(dict(layer=name, c_out=c_out, break_even=round(rho_star, 4),
                         dense_ms=[round(1e3 * t, 1) for t in dense_t],
                         event_ms=[round(1e3 * t, 1) for t in event_t]))
        print(json.dumps(rows[-1]), flush=True)
    # fit rho* = scale * c_out / (c_out + half) by least squares on a grid of half
    c_outs = np.array([r["c_out"] for r in rows], float)
    rho = np.array([r["break_even"] for r in rows])
    best = None
    for half in np.arange(0.0, 512.0, 4.0):
        g = c_outs / (c_outs + half)
        scale = float((g @ rho) / (g @ g))
        err = float(((scale * g - rho) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, scale, half)
    print(f"\ndensities {DENSITIES}")
    print(f"{'layer':<32}{'break-even':>12}  speed-up of events at each density")
    for r in rows:
        ups = " ".join(f"{d / e:5.2f}" for d, e in zip(r["dense_ms"], r["event_ms"]))
        print(f"{r['layer']:<32}{100 * r['break_even']:>11.2f}%  {ups}")
    print(f"\nfitted: BREAK_EVEN[{args.device!r}] = dict(scale={best[1]:.3f}, half={best[2]:.0f})")


if __name__ == "__main__":
    main()
