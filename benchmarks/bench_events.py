"""Dense against event-driven execution on the deep networks: speed, memory, work.

Runs ``bench_train_step.py`` in a fresh process per configuration (so peak memory is per run):

1. VGG9 and ResNet11 at CIFAR-10 shape, T=100, batch 32, one training step: ``--execution dense``
   and ``auto``; images per second, peak resident memory, synaptic operations (SOPs) per image.
2. A sweep of the input's Poisson scale (sparser or denser spike trains) on VGG9, T=100,
   batch 8: time per image against SOPs per image for both paths, plotted: dense execution costs
   the same whatever the spikes, event-driven execution follows them.

    python benchmarks/bench_events.py --out benchmarks/results/events   # about 10 min on 2 cores

Writes ``<out>.jsonl`` (one line per run), ``<out>.md`` (tables) and ``<out>.png`` (the plot).
Run it on an otherwise idle machine.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(args, **flags):
    cmd = [sys.executable, os.path.join(HERE, "bench_train_step.py"), "--sops"]
    for key, value in flags.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    result = json.loads(line)
    print(json.dumps({k: result[k] for k in ("model", "execution", "T", "batch", "img_per_s", "peak_rss_mb",
                                             "sops_per_image")}), flush=True)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results/events")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--models", default="vgg9,resnet11")
    ap.add_argument("--sweep-scales", default="0.0625,0.125,0.25,0.5,1.0")
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    common = dict(T=args.T, threads=args.threads, steps=args.steps, warmup=1, mode="train")
    results = []
    for model in args.models.split(","):
        for execution in ("dense", "auto"):
            results.append(run(args, model=model, execution=execution, batch=args.batch, **common))
    sweep = []
    for scale in args.sweep_scales.split(","):
        for execution in ("dense", "auto"):
            r = run(args, model="vgg9", execution=execution, batch=8, encoding_scale=scale, **common)
            r["encoding_scale"] = float(scale)
            sweep.append(r)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".jsonl", "w") as f:
        for r in results + sweep:
            f.write(json.dumps(r) + "\n")

    lines = [f"Training step, T={args.T}, batch {args.batch}, {args.threads} threads, CIFAR-10 shape "
             "(random images, Poisson scale 0.5):", "",
             "| model | execution | img/s | speed-up | peak RSS | SOPs / image | dense MACs / image | "
             "input rates per step into the weighted layers |", "|---|---|---|---|---|---|---|---|"]
    by_model = {}
    for r in results:
        by_model.setdefault(r["model"], {})[r["execution"]] = r
    for model, pair in by_model.items():
        for execution in ("dense", "auto"):
            r = pair[execution]
            rates = ", ".join(f"{100 * v:.1f}" for v in r["input_rates"].values())
            lines.append(f"| {model} | {execution} | {r['img_per_s']:.2f} | "
                         f"{r['img_per_s'] / pair['dense']['img_per_s']:.2f}x | {r['peak_rss_mb']:.0f} MB | "
                         f"{r['sops_per_image'] / 1e6:.0f} M | {r['dense_macs_per_image'] / 1e6:.0f} M | {rates} % |")
    lines += ["", f"VGG9, T={args.T}, batch 8: time per image against SOPs per image (Poisson scale swept):", "",
              "| scale | SOPs / image | dense s / image | auto s / image | speed-up |", "|---|---|---|---|---|"]
    pairs = {}
    for r in sweep:
        pairs.setdefault(r["encoding_scale"], {})[r["execution"]] = r
    for scale, pair in sorted(pairs.items()):
        d, a = 1 / pair["dense"]["img_per_s"], 1 / pair["auto"]["img_per_s"]
        lines.append(f"| {scale:g} | {pair['auto']['sops_per_image'] / 1e6:.0f} M | {d:.3f} | {a:.3f} | {d / a:.2f}x |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for execution, marker in (("dense", "s"), ("auto", "o")):
        pts = sorted((p[execution]["sops_per_image"] / 1e6, 1 / p[execution]["img_per_s"]) for p in pairs.values())
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=execution)
    ax.set_xlabel("synaptic operations per image (millions)")
    ax.set_ylabel("seconds per image (training step)")
    ax.set_title(f"VGG9, T={args.T}, batch 8, {args.threads} threads")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=120)


if __name__ == "__main__":
    main()
