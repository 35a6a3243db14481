"""Training throughput of one process with 2 threads against 2 MPI ranks with 1 thread each.

Runs ``python -m minisnn.train`` (1 process, ``--threads 2``) and ``mpiexec -n 2 python -m
minisnn.train`` (``--threads 1`` per rank) on the same short run of each model (``--limit-train``
images, two epochs, the thesis' T and batch size unless given) and prints the training images per
second of the second epoch (the first carries the start-up), one JSON line per run and a table.
Needs the datasets (``--data-dir``: a data root with mnist/ and cifar10/) and ``pip install
'minisnn[mpi]'``. Give the machine to it alone: each configuration uses both cores.

    python benchmarks/bench_distributed.py --data-dir /path/to/data
    python benchmarks/bench_distributed.py --data-dir /path/to/data --models lenet5 --limit-train 128 -T 10
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = {"lenet5": 1280, "vgg9": 160}           # 20 and 10 batches of the thesis' batch sizes


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True, help="data root holding the models' datasets")
    ap.add_argument("--models", default="lenet5,vgg9", help="comma-separated models (default lenet5,vgg9)")
    ap.add_argument("--limit-train", type=int, default=None, help=f"training images per epoch (default {LIMIT})")
    ap.add_argument("-T", "--timesteps", type=int, default=None, help="time steps (default: the thesis')")
    ap.add_argument("--batch-size", type=int, default=None, help="global batch (default: the thesis')")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--ranks", type=int, default=2, help="MPI ranks of the second configuration (1 thread each)")
    return ap.parse_args()


def run(command, out):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    return epochs[-1]["train_images_per_s"]


def main():
    args = parse_args()
    sys.path.insert(0, str(REPO))
    from minisnn.distributed import find_mpiexec

    mpiexec = find_mpiexec()
    if mpiexec is None:
        sys.exit("no mpiexec found: pip install 'minisnn[mpi]'")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            flags = ["--model", model, "--data-dir", args.data_dir, "--epochs", "2", "--limit-test", "16",
                     "--limit-train", str(args.limit_train or LIMIT.get(model, 160)), "--width", str(args.width),
                     "--test-every", "2", "--quiet", "--no-download"]
            flags += ["-T", str(args.timesteps)] if args.timesteps else []
            flags += ["--batch-size", str(args.batch_size)] if args.batch_size else []
            for name, launcher, threads in (("1 process x 2 threads", [], 2),
                                            (f"{args.ranks} ranks x 1 thread", [mpiexec, "-n", str(args.ranks)], 1)):
                out = Path(tmp) / f"{model}_{threads}"
                rate = run([*launcher, sys.executable, "-m", "minisnn.train", *flags, "--threads", str(threads),
                            "--out", str(out)], out)
                row = {"model": model, "configuration": name, "img_per_s": round(rate, 2)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    print(f"\n{'model':<8}{'configuration':<24}{'train img/s':>12}")
    for row in rows:
        print(f"{row['model']:<8}{row['configuration']:<24}{row['img_per_s']:>12.2f}")


if __name__ == "__main__":
    main()
