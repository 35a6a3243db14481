#!/usr/bin/env bash
# The thesis' CIFAR-10 networks by hybrid training (docs/hybrid.md), stage by stage, for each
# model: (1) its ANN, (2) the converted SNN before spike training, against T, (3) the hybrid:
# the converted SNN trained with spikes, (4) the hybrid's accuracy, SOPs and energy against T.
# Every stage resumes where it stopped (an interrupted run from its interrupted.h5) and a
# finished stage is skipped, so the script can be stopped and started again at any point.
#
#   DATA=/path/to/data bash experiments/hybrid_protocol.sh                    # vgg9 resnet9 resnet11
#   DATA=/path/to/data MODELS=vgg9 TRAIN_EXTRA="--threads 1" bash experiments/hybrid_protocol.sh
#
# DATA holds cifar10/. Settings (environment, defaults as measured in docs/results.md):
#   MODELS            vgg9 resnet9 resnet11
#   OUT               runs/hybrid          one folder per model and stage below it
#   ANN_EPOCHS        24                   Adam, lr 5e-4, batch 64, lr x0.2 at ANN_MILESTONES
#   ANN_MILESTONES    15,20,23
#   HYBRID_T          20                   the hybrid's time steps (reset by subtraction,
#   HYBRID_EPOCHS     1                    direct input, output layer calibrated on CALIBRATE_OUTPUT
#   HYBRID_LIMIT_TRAIN 10000               training images), Adam at HYBRID_LR over HYBRID_EPOCHS
#   HYBRID_LR         0.00001              passes of HYBRID_LIMIT_TRAIN images (0: all 50,000),
#   HYBRID_MILESTONES none                 lr x0.2 at HYBRID_MILESTONES
#   CALIBRATE_OUTPUT  500
#   CONVERT_STEPS     20,50,100            T of the conversion table (stage 2)
#   CONVERT_PERCENTILE 90                  activation percentile of the conversion table (stage 2)
#   HYBRID_PERCENTILE 90                   ... and of the hybrid's start (stage 3)
#   SWEEP_STEPS       10,20,30,50,100      T of the hybrid's sweep (stage 4)
#   LIMIT             0                    test images of stages 2 and 4 (0: all 10,000)
#   TRAIN_EXTRA       ""                   more flags for both trainings (--threads 1, --device gpu, ...)
set -u
DATA=${DATA:?set DATA to the folder holding cifar10/}
MODELS=${MODELS:-"vgg9 resnet9 resnet11"}
OUT=${OUT:-runs/hybrid}
ANN_EPOCHS=${ANN_EPOCHS:-24}
ANN_MILESTONES=${ANN_MILESTONES-15,20,23}
HYBRID_T=${HYBRID_T:-20}
HYBRID_EPOCHS=${HYBRID_EPOCHS:-1}
HYBRID_LIMIT_TRAIN=${HYBRID_LIMIT_TRAIN:-10000}
HYBRID_LR=${HYBRID_LR:-0.00001}
HYBRID_MILESTONES=${HYBRID_MILESTONES-none}
CALIBRATE_OUTPUT=${CALIBRATE_OUTPUT:-500}
CONVERT_STEPS=${CONVERT_STEPS:-20,50,100}
CONVERT_PERCENTILE=${CONVERT_PERCENTILE:-90}
HYBRID_PERCENTILE=${HYBRID_PERCENTILE:-90}
SWEEP_STEPS=${SWEEP_STEPS:-10,20,30,50,100}
LIMIT=${LIMIT:-0}
TRAIN_EXTRA=${TRAIN_EXTRA:-}
HERE=$(cd "$(dirname "$0")" && pwd)

# train RUN_FOLDER FLAGS...: a new run, or the resume of the folder's run (from its interrupted.h5,
# else its checkpoint.h5; a finished run's resume does nothing and says so). Stops the script on
# a failure or an interrupt.
train() {
  local run=$1; shift
  if [ -f "$run/checkpoint.h5" ] || [ -f "$run/interrupted.h5" ]; then
    python -m minisnn.train --resume "$run" --data-dir "$DATA/cifar10" --quiet $TRAIN_EXTRA
  else
    python -m minisnn.train --dataset cifar10 --data-dir "$DATA/cifar10" --no-download --out "$run" \
      --quiet "$@" $TRAIN_EXTRA
  fi
  local rc=$?
  [ $rc -eq 0 ] || { echo "$run ended with status $rc (see python -m minisnn.train --help); rerun to resume"; exit $rc; }
}

for model in $MODELS; do
  ann="$OUT/${model}_ann"
  hybrid="$OUT/${model}_hybrid_T${HYBRID_T}"
  echo "== $model (1/4): the ANN -> $ann"
  train "$ann" --network ann --model "$model" --optimizer adam --lr 0.0005 --batch-size 64 \
    --epochs "$ANN_EPOCHS" --milestones "$ANN_MILESTONES"

  conversion="$OUT/${model}_conversion.json"
  echo "== $model (2/4): converted, before spike training -> $conversion"
  if [ -f "$conversion" ]; then echo "done already"; else
    python "$HERE/hybrid.py" "$ann/checkpoint.h5" --data-dir "$DATA/cifar10" --limit "$LIMIT" \
      --timesteps "$CONVERT_STEPS" --resets hard,subtract --inputs poisson,direct --percentile "$CONVERT_PERCENTILE" \
      --out "$conversion" || exit $?
  fi

  echo "== $model (3/4): hybrid, T=$HYBRID_T -> $hybrid"
  train "$hybrid" --model "$model" -T "$HYBRID_T" --init-from "$ann/checkpoint.h5" \
    --convert-percentile "$HYBRID_PERCENTILE" --calibrate-output "$CALIBRATE_OUTPUT" --reset subtract \
    --input direct --optimizer adam --lr "$HYBRID_LR" --epochs "$HYBRID_EPOCHS" --milestones "$HYBRID_MILESTONES" \
    $([ "$HYBRID_LIMIT_TRAIN" -gt 0 ] && echo --limit-train "$HYBRID_LIMIT_TRAIN")

  echo "== $model (4/4): accuracy, SOPs and energy against T -> $hybrid/analysis"
  if [ -f "$hybrid/analysis/analysis.json" ]; then echo "done already"; else
    python -m minisnn.analyze "$hybrid/checkpoint.h5" --data-dir "$DATA/cifar10" --limit "$LIMIT" \
      --sweep --sweep-steps "$SWEEP_STEPS" --out "$hybrid/analysis" --quiet || exit $?
  fi
done
