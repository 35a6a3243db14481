#!/usr/bin/env bash
# One prepared GPU check, for a machine with CuPy and a CUDA device (run from the repository root):
# the GPU tests (CPU/GPU agreement, a float32 training step), the whole suite's CuPy-strict
# programs, then the benchmark on the GPU: LeNet5 at T=50 and VGG9 at T=100, batch 64.
# Results go to ${OUT:-gpu_results}/ (JSON lines). The peers' scripts in ../shared/bench run on the
# CPU only; time them on the GPU with their own flags where they have them.
set -u
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
python3 -c "import cupy; print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())" | tee "$OUT/env.txt"
python3 -m pytest -q tests/test_gpu.py tests/test_network.py tests/test_strict_programs.py 2>&1 | tail -5 | tee "$OUT/tests.txt"
for spec in "lenet5 50" "vgg9 100"; do
  set -- $spec
  for mode in train infer; do
    python3 benchmarks/bench_train_step.py --device gpu --model "$1" --T "$2" --batch 64 \
      --steps 5 --warmup 2 --mode "$mode" | tail -n 1 | tee -a "$OUT/bench_gpu.jsonl"
  done
done
