"""Time one training (or inference) step of a minisnn model, in the peers' JSON format.

Same workload as the PyTorch peers' benchmark scripts: random MNIST-shaped inputs in [0, 1], random
labels, Poisson input (|x| / 2 > u, the authors' encoding), summed MSE, SGD lr 0.0085 with weight
decay 5e-4; one JSON line per run with impl, T, batch, mode, img_per_s (median over timed
steps), step_s_median and peak_rss_mb. ``--threads`` is the number of CPU worker threads
(each runs single-threaded BLAS on its slice of the batch).

    python benchmarks/bench_train_step.py --model lenet5 --T 50 --batch 64 --mode train

Random inputs flatter the event path: a freshly initialised deep network's last layers fall
almost silent. ``--checkpoint PATH`` times a trained network instead, on real test images of its
dataset (``--data-dir``; one new batch per step), at the spike rates it really has; its model,
width, encoding and (unless --T is given) time steps come from the checkpoint.

    python benchmarks/bench_train_step.py --checkpoint experiments/results/vgg7-adam-cifar10-T20-cycle3/checkpoint.h5 \
        --data-dir ~/data --batch 16 --execution auto

The JSON line also has, per weighted layer under ``auto``, the mean input density of its chunks
and the share of them that took the event path (``layer_paths``), the event kernel in use and
its one-time compile (or cache load) time.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.environ.get("MINISNN_BENCH_MODEL", "lenet5"),
                    help="model (default $MINISNN_BENCH_MODEL or lenet5, so a harness that passes "
                         "only --T --batch ... can time any model)")
    ap.add_argument("--T", type=int, default=None, help="time steps (default 50, or the checkpoint's)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="CPU worker threads")
    ap.add_argument("--time-chunk", type=int, default=10, help="time steps per chunk")
    ap.add_argument("--input-shape", default=None, help="C,H,W (default: the model's dataset)")
    ap.add_argument("--execution", choices=["auto", "dense", "event"],
                    default=os.environ.get("MINISNN_EXECUTION", "auto"),
                    help="dense matrix products, event-driven sparse products, or auto (by input density)")
    ap.add_argument("--encoding-scale", type=float, default=0.5,
                    help="Poisson scale (0.5: the authors' |x|/2 > u; lower it for sparser inputs)")
    ap.add_argument("--sops", action="store_true",
                    help="after timing, count synaptic operations per image in one more forward")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one step to stderr")
    ap.add_argument("--checkpoint", default=None, help="a trained network's checkpoint: real images, real rates")
    ap.add_argument("--data-dir", default=None, help="with --checkpoint: where its dataset lies")
    return ap.parse_args()


def checkpoint_workload(args, backend, np):
    """The checkpoint's network and a function giving the i-th batch of its test set."""
    import minisnn
    from minisnn.data import load as load_data

    model = minisnn.load(args.checkpoint, device=args.device, dtype="float32", threads=args.threads)
    images, labels = load_data(model.dataset, "test", args.data_dir, download=False, progress=False)
    count = len(labels) // args.batch
    if count == 0:
        raise SystemExit(f"error: the test set has {len(labels)} images, fewer than --batch {args.batch}")

    def batch(i):
        start = (i % count) * args.batch
        x = backend.to_device(model.preprocess(images[start:start + args.batch]), np.float32)
        return x, backend.to_device(labels[start:start + args.batch])
    return model, batch


def main():
    args = parse_args()
    # BLAS threads are set before NumPy loads; the network's workers provide the parallelism.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import numpy as np

    import minisnn
    from minisnn import SGD, Backend, PoissonEncoder, events, mse_loss
    from minisnn.backend import DeviceError, keep_freed_memory
    from minisnn.data import DATASETS
    from minisnn.models import build, default_dataset

    try:
        backend = Backend(args.device, "float32")
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    keep_freed_memory()                           # as python -m minisnn.train does
    if args.checkpoint:
        model, batch = checkpoint_workload(args, backend, np)
        net, args.model = model.net, model.config["model"]
        args.T = args.T or model.T
        net.execution, net.time_chunk = args.execution, args.time_chunk
    else:
        args.T = args.T or 50
        if args.input_shape:
            input_shape = tuple(int(v) for v in args.input_shape.split(","))
        else:
            input_shape = DATASETS[default_dataset(args.model)].input_shape
        net = build(args.model, input_shape=input_shape, num_classes=10, backend=backend,
                    encoder=PoissonEncoder(scale=args.encoding_scale), time_chunk=args.time_chunk,
                    execution=args.execution)
        net.workers = args.threads if args.device == "cpu" else 1
        host = np.random.default_rng(0)
        fixed = (backend.to_device(host.random((args.batch,) + input_shape, dtype=np.float32)),
                 backend.to_device(host.integers(0, 10, args.batch)))

        def batch(i):
            return fixed
    optimizer = SGD(net.parameters(), lr=0.0085, weight_decay=5e-4)

    def train_step(i):
        x, y = batch(i)
        out = net.forward(x, args.T, train=True, rng_key=(0, i))
        loss, error = mse_loss(out, y)
        net.backward(error)
        optimizer.step(net.gradients())
        return loss

    def infer_step(i):
        return net.forward(batch(i)[0], args.T, train=False, rng_key=(0, i))

    kernels = events.compiled_kernels(backend.xp)       # compiled (or loaded) when the network was built
    print(events.describe_kernel(backend.xp), file=sys.stderr, flush=True)
    step = train_step if args.mode == "train" else infer_step
    for i in range(args.warmup):
        step(i)
    backend.synchronize()
    if args.profile:
        import cProfile
        import pstats
        profiler = cProfile.Profile()
        profiler.runcall(step, -1)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    times, cpus, paths = [], [], {}
    for i in range(args.steps):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        step(args.warmup + i)
        backend.synchronize()
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpus.append((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime))
        for layer in net.all_layers():
            paths.setdefault(layer.name, []).extend(getattr(layer, "paths", []))
    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    work = {}
    if args.sops:   # after timing and the memory reading: the counting itself costs memory
        from minisnn.energy import measure
        report = measure(net, [batch(0)], args.T, seed=1)
        work = {"sops_per_image": round(report["sops"]), "dense_macs_per_image": report["macs"] * args.T,
                "input_rates": {r["name"]: round(r["input_rate"], 4) for r in report["layers"]
                                if r["input_rate"] is not None and r["macs"]}}
    print(json.dumps({
        "impl": "minisnn" if args.execution == "auto" else f"minisnn-{args.execution}", "model": args.model,
        "execution": args.execution, "device": args.device, "T": args.T,
        "batch": args.batch, "mode": args.mode,
        "img_per_s": round(statistics.median([args.batch / t for t in times]), 2),
        "step_s_median": round(statistics.median(times), 4), "step_s_min": round(min(times), 4),
        "step_s_all": [round(t, 4) for t in times],
        "cpu_s_per_step_median": round(statistics.median(cpus), 4),
        "peak_rss_mb": peak_rss_mb, **work,
        "timed_steps": args.steps, "warmup": args.warmup, "threads": args.threads,
        "time_chunk": args.time_chunk, "loadavg_1m": round(os.getloadavg()[0], 2),
        "numpy": np.__version__, "lib_version": minisnn.__version__,
        "spike_rates": {k: round(v, 4) for k, v in net.spike_rates().items()},
        "event_kernel": events.event_kernel(backend.xp),
        "kernel_compile_s": round(kernels.COMPILE_SECONDS, 2) if kernels else None,
        "layer_paths": {name: {"density": round(sum(d for d, _ in p) / len(p), 4),
                               "event_share": round(sum(e for _, e in p) / len(p), 3)}
                        for name, p in paths.items() if p},
        "workload": f"checkpoint {args.checkpoint}" if args.checkpoint else "random images",
    }))


if __name__ == "__main__":
    main()
