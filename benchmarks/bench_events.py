"""Dense against event-driven execution on the deep networks: speed, memory, work.

Runs ``bench_train_step.py`` in a fresh process per configuration (so peak memory is per run):

1. ``random``: VGG9 and ResNet11 at CIFAR-10 shape, T=100, batch 32, one training step under
   ``--execution dense``, ``auto`` and ``event``; images per second, peak resident memory,
   synaptic operations (SOPs) per image, the input density of each weighted layer.
2. ``sweep``: the input's Poisson scale swept (sparser or denser spike trains) on VGG9, T=100,
   batch 8: time per image against SOPs per image for both paths, plotted: dense execution costs
   the same whatever the spikes, event-driven execution follows them.
3. ``checkpoint`` (with ``--checkpoint PATH --data-dir DIR``): a trained network on real test
   images, at the rates it really fires (random inputs leave a fresh network's deep layers
   almost silent, which flatters the event path): the same figures as 1, per execution.

    python benchmarks/bench_events.py --out benchmarks/results/events   # about 15 min on 2 cores
    python benchmarks/bench_events.py --parts checkpoint --batch 16 --out benchmarks/results/events-vgg7 \
        --checkpoint experiments/results/vgg7-adam-cifar10-T20-cycle3/checkpoint.h5 --data-dir ~/data

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
                                             "sops_per_image", "event_kernel", "kernel_compile_s")}), flush=True)
    return result


def table(title, results, executions):
    """Markdown lines: one row per (model, execution), speed-up against dense, per-layer densities."""
    lines = [title, "", "| model | execution | img/s | speed-up | peak RSS | SOPs / image | dense MACs / image | "
             "input density per step into the weighted layers (auto: * = event path) |", "|---|---|---|---|---|---|---|---|"]
    by_model = {}
    for r in results:
        by_model.setdefault(r["model"], {})[r["execution"]] = r
    for model, runs in by_model.items():
        base = runs.get("dense", next(iter(runs.values())))["img_per_s"]
        paths = runs.get("auto", {}).get("layer_paths", {})
        for execution in executions:
            r = runs[execution]
            rates = ", ".join(f"{100 * v:.1f}" + ("*" if paths.get(k, {}).get("event_share", 0) >= 0.5 else "")
                              for k, v in r["input_rates"].items())
            lines.append(f"| {model} | {execution} | {r['img_per_s']:.2f} | {r['img_per_s'] / base:.2f}x | "
                         f"{r['peak_rss_mb']:.0f} MB | {r['sops_per_image'] / 1e6:.0f} M | "
                         f"{r['dense_macs_per_image'] / 1e6:.0f} M | {rates} % |")
    kernel = results[0]
    lines += ["", f"event kernel: {kernel['event_kernel']}"
              + (f" (compiled or loaded from cache in {kernel['kernel_compile_s']} s, once per process)"
                 if kernel["kernel_compile_s"] is not None else ""), ""]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results/events")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--checkpoint-T", type=int, default=None, help="time steps of the checkpoint part (default: its own)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--models", default="vgg9,resnet11")
    ap.add_argument("--sweep-scales", default="0.0625,0.125,0.25,0.5,1.0")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--executions", default="dense,auto,event")
    ap.add_argument("--parts", default="random,sweep,checkpoint", help="which of random, sweep, checkpoint to run")
    ap.add_argument("--checkpoint", default=None, help="a trained network's checkpoint (the checkpoint part)")
    ap.add_argument("--data-dir", default=None, help="where the checkpoint's dataset lies")
    args = ap.parse_args()
    parts, executions = args.parts.split(","), args.executions.split(",")
    common = dict(T=args.T, threads=args.threads, steps=args.steps, warmup=1, mode="train")
    results, sweep, real = [], [], []
    if "random" in parts:
        for model in args.models.split(","):
            for execution in executions:
                results.append(run(args, model=model, execution=execution, batch=args.batch, **common))
    if "sweep" in parts:
        for scale in args.sweep_scales.split(","):
            for execution in ("dense", "auto"):
                r = run(args, model="vgg9", execution=execution, batch=8, encoding_scale=scale, **common)
                r["encoding_scale"] = float(scale)
                sweep.append(r)
    if "checkpoint" in parts and args.checkpoint:
        for execution in executions:
            flags = {k: v for k, v in common.items() if k != "T"}
            if args.checkpoint_T:
                flags["T"] = args.checkpoint_T
            real.append(run(args, checkpoint=args.checkpoint, data_dir=args.data_dir, execution=execution,
                            batch=args.batch, **flags))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".jsonl", "w") as f:
        for r in results + sweep + real:
            f.write(json.dumps(r) + "\n")

    lines = []
    if results:
        lines += table(f"Training step, T={args.T}, batch {args.batch}, {args.threads} threads, CIFAR-10 shape "
                       "(random images, Poisson scale 0.5):", results, executions)
    if real:
        lines += table(f"Training step of {args.checkpoint} on real test images, T={real[0]['T']}, batch {args.batch}, "
                       f"{args.threads} threads:", real, executions)
    if not sweep:
        with open(args.out + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    lines += [f"VGG9, T={args.T}, batch 8: time per image against SOPs per image (Poisson scale swept):", "",
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
