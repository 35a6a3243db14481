"""How far conversion alone takes an ANN checkpoint: the start of hybrid training, against T.

    python experiments/hybrid.py runs/vgg7_ann/checkpoint.h5 --data-dir /path/to/data/cifar10 \
        --limit 1000 --timesteps 20,50,100 --threads 1 --out hybrid-vgg7.json

For an ANN checkpoint (``python -m minisnn.train --network ann``) prints and writes as JSON:
the ANN's test accuracy (the one its run stored, and on the images used here) and, for each
reset (hard, subtract) and input (poisson, direct), the accuracy of the spiking model converted
from it (:func:`minisnn.hybrid.convert`, the network ``--init-from`` starts a hybrid run with,
before any spike training) at each T. The test images are the first ``--limit`` of the test set;
the activation statistics come from ``--convert-images`` training images chosen as a run with
``--seed`` would choose them, preprocessed as the ANN's run did. With ``--val-split F`` (and
``--limit-train N``, as for ``python -m minisnn.train``) the images are instead the validation
split a hybrid run with those flags holds out, and the statistics come from its training part:
the start of that run, measured where its recipe is chosen.

    python experiments/hybrid.py runs/vgg9_ann/checkpoint.h5 --limit-train 6000 --val-split 0.25 \
        --limit 0 --timesteps 10,20 --out start-on-validation.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisnn import ann, hybrid, models  # noqa: E402
from minisnn.backend import Backend, keep_freed_memory  # noqa: E402
from minisnn.checkpoint import load, run_state  # noqa: E402
from minisnn.data.pipeline import load_run_data  # noqa: E402
from minisnn.data.preprocess import to_float  # noqa: E402


def _csv(kind):
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="checkpoint of an ANN run (--network ann)")
    p.add_argument("--data-dir", help="dataset folder or data root (default: the run's)")
    p.add_argument("--limit", type=int, default=1000, help="first N test images (default 1000; 0: all)")
    p.add_argument("--val-split", type=float, default=0.0,
                   help="measure on the validation split of a run with this --val-split instead of the test set")
    p.add_argument("--limit-train", type=int, default=None, help="that run's --limit-train")
    p.add_argument("--timesteps", type=_csv(int), default=[20, 50, 100], help="T values (default 20,50,100)")
    p.add_argument("--resets", type=_csv(str), default=["hard", "subtract"], help="default hard,subtract")
    p.add_argument("--inputs", type=_csv(str), default=["poisson", "direct"], help="default poisson,direct")
    p.add_argument("--percentile", type=float, default=99.9, help="activation percentile (default 99.9)")
    p.add_argument("--convert-images", type=int, default=2000, help="training images for the statistics")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="seed of the image choice and the Poisson draws")
    p.add_argument("--out", help="JSON file to write (default: print only)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    source = load(args.checkpoint)
    if source.config.get("network") != "ann":
        raise SystemExit(f"{args.checkpoint} is not an ANN checkpoint (network {source.config.get('network')!r})")
    backend = Backend("cpu", "float32")
    keep_freed_memory()
    base = {**source.config, "network": "snn", "limit_train": args.limit_train, "limit_test": None,
            "val_split": args.val_split, "seed": args.seed, "convert_images": args.convert_images}
    if args.data_dir:
        base["data_dir"] = str(Path(args.data_dir).resolve())
    same = run_state(source)[1]
    data = load_run_data(base, backend, standardize=same, progress=False)
    calibration = hybrid.calibration_images(data.train, args.convert_images, args.seed)
    split, measured = ("val", data.val) if args.val_split else ("test", data.test)
    count = args.limit or None
    images = to_float(measured.images[:count])
    images = images if measured.transform is None else measured.transform(images)
    labels = measured.labels[:count]

    options = models.run_options(source.config, workers=args.threads)      # the ANN's and every SNN's
    ann_net = models.from_config(source.config, backend, options)
    ann_net.load_parameters(source.weights)
    stored = [r["test_accuracy"] for r in source.history if r.get("test_accuracy") is not None]
    result = {"checkpoint": str(args.checkpoint), "model": source.config["model"], "width": source.config["width"],
              "dataset": source.config["dataset"], "epoch": source.epoch,
              "ann_test_accuracy_stored": stored[-1] if stored else None, "split": split,
              f"ann_{split}_accuracy": ann.evaluate(ann_net, images, labels), f"{split}_images": len(labels),
              "percentile": args.percentile, "convert_images": len(calibration), "seed": args.seed, "converted": []}
    print(f"ANN {result['model']} on {result['dataset']}: {100 * result[f'ann_{split}_accuracy']:.2f} % on the first "
          f"{len(labels)} {split} images (its run, test: {stored[-1] if stored else 'n/a'})", flush=True)
    scales = ann.activation_scales(ann_net, calibration, args.percentile)
    for reset, entry in itertools.product(args.resets, args.inputs):
        config = {**base, "reset": reset, "input": entry}
        row = {"reset": reset, "input": entry, "accuracy": {}}
        for T in args.timesteps:
            snn = models.from_config(config, backend, options)
            hybrid.load_converted(ann_net, snn, scales, T)
            start = time.perf_counter()
            row["accuracy"][str(T)] = ann.evaluate_snn(snn, images, labels, T, args.batch_size, args.seed)
            print(f"reset {reset:8s} input {entry:7s} T {T:4d}: {100 * row['accuracy'][str(T)]:6.2f} %  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        result["converted"].append(row)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
