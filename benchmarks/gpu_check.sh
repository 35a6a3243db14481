#!/usr/bin/env bash
# One prepared GPU check, for a machine with CuPy and a CUDA device (run from the repository root):
# the GPU tests (CPU/GPU agreement, a float32 training step), the whole suite's CuPy-strict
# programs, 2-rank MPI training on the GPU(s), then the benchmark on the GPU: LeNet5 at T=50 and VGG9 at T=100, batch 64.
# Results go to ${OUT:-gpu_results}/ (JSON lines). The PyTorch peers run on the
# CPU only; time them on the GPU with their own flags where they have them.
set -u
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
python3 -c "import cupy; print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())" | tee "$OUT/env.txt"
python3 -m pytest -q tests/test_gpu.py tests/test_network.py tests/test_strict_programs.py 2>&1 | tail -5 | tee "$OUT/tests.txt"
# Data-parallel training over MPI on GPUs (needs pip install 'minisnn[mpi]'): 2 ranks sharing GPU 0
# (gradients summed through the host) and, with 2 GPUs, a rank per GPU (gradients summed with NCCL),
# each against one process on one GPU.
python3 -m pytest -q -rs tests/test_distributed.py -k gpus 2>&1 | tail -5 | tee "$OUT/tests_distributed.txt"
for spec in "lenet5 50" "vgg9 100"; do
  set -- $spec
  for mode in train infer; do
    python3 benchmarks/bench_train_step.py --device gpu --model "$1" --T "$2" --batch 64 \
      --steps 5 --warmup 2 --mode "$mode" | tail -n 1 | tee -a "$OUT/bench_gpu.jsonl"
  done
done
# Dense against event-driven products on the GPU: the break-even densities (cuSPARSE), then one
# VGG9 training step at T=100 both ways.
python3 benchmarks/calibrate_events.py --device gpu 2>&1 | tail -12 | tee "$OUT/calibrate_gpu.txt"
for execution in dense event auto; do
  python3 benchmarks/bench_train_step.py --device gpu --model vgg9 --T 100 --batch 64 --steps 3 \
    --warmup 1 --execution "$execution" | tail -n 1 | tee -a "$OUT/bench_gpu.jsonl"
done
# One CIFAR-10 epoch of VGG9 at the thesis' settings (T=100, batch 16): from the step time, and
# for real when the data is present in $MINISNN_DATA/cifar10.
python3 benchmarks/bench_train_step.py --device gpu --model vgg9 --T 100 --batch 16 --steps 20 --warmup 2 \
  | tail -n 1 | tee -a "$OUT/bench_gpu.jsonl" \
  | python3 -c "import json, sys; r = json.loads(sys.stdin.read()); print(f'VGG9 T=100 batch 16: {r[\"img_per_s\"]} img/s, a 50,000-image epoch in {50000 / r[\"img_per_s\"] / 60:.1f} min (training only)')" \
  | tee "$OUT/vgg9_epoch_estimate.txt"
if [ -n "${MINISNN_DATA:-}" ] && [ -d "$MINISNN_DATA/cifar10" ]; then
  /usr/bin/time -v python3 -m minisnn.train --model vgg9 --dataset cifar10 --device gpu --epochs 1 \
    --out "$OUT/vgg9_cifar10_one_epoch" --quiet 2>&1 | tail -25 | tee "$OUT/vgg9_epoch.txt"
fi
