"""Achieved float32 rate of LeNet5's convolutions against NumPy's matrix-product ceiling.

Prints one JSON line: the ceiling (float32 4096^3 ``a @ b``), and for conv1 and conv2 of LeNet5
at batch 64 the GFLOP/s of ``ops.conv2d`` on spike inputs of one 10-step chunk, im2col included,
run as the network runs it (the batch split over ``--threads`` workers, one BLAS thread each)
and with one call on all rows using every BLAS thread.

    python benchmarks/conv_rate.py --threads 2
"""
import argparse
import json
import os
import sys
import time


def best_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from minisnn import ops
    from minisnn.backend import blas_threads

    rng = np.random.default_rng(0)
    a = rng.random((4096, 4096), dtype=np.float32)
    ceiling = 2 * 4096 ** 3 / best_time(lambda: a @ a, 3) / 1e9

    pool = ThreadPoolExecutor(args.threads)
    result = {"threads": args.threads, "numpy_matmul_gflops": round(ceiling, 1), "numpy": np.__version__}
    rows = 10 * 64  # one 10-step chunk of a batch of 64
    for name, (h, c_in, c_out, rate) in {"conv1": (28, 1, 20, 0.25), "conv2": (14, 20, 50, 0.14)}.items():
        x = (rng.random((rows, h, h, c_in)) < rate).astype(np.float32)
        w = rng.standard_normal((c_out, c_in, 5, 5)).astype(np.float32)
        flops = 2 * rows * h * h * c_out * c_in * 25
        parts = np.array_split(np.arange(rows), args.threads)

        def threaded():
            with blas_threads(1):
                list(pool.map(lambda p: ops.conv2d(np, x[p[0]:p[-1] + 1], w, 1, 2), parts))

        t_threaded = best_time(threaded, args.repeats)
        t_single = best_time(lambda: ops.conv2d(np, x, w, 1, 2), args.repeats)
        result[name] = {"gflops_workers": round(flops / t_threaded / 1e9, 1),
                        "gflops_one_call": round(flops / t_single / 1e9, 1),
                        "fraction_of_matmul": round(flops / t_threaded / 1e9 / ceiling, 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
