#!/usr/bin/env bash
# How accuracy moves with the number of time steps T when a network is *trained* at that T
# (the thesis, section 4.1.5: T=10 gives a dead network on CIFAR-10, learning is efficient
# from 35-50 steps and saturates past 70). One short training per T, everything else equal:
# the same seeded training subset, epochs, learning rate and test subset, so the rows differ
# only in T. Each run resumes where it stopped; a finished run is skipped.
#
#   DATA=/path/to/data bash experiments/timesteps_sweep.sh
#   DATA=/path/to/data MODEL=vgg7 DATASET=cifar10 TS="10 20 30 50" bash experiments/timesteps_sweep.sh
#
# Defaults: VGG7 on CIFAR-10, T in 10 20 30 50, 10,000 training images, 2 epochs, 2,000 test
# images, the thesis' learning rate, augmentation and standardisation. Cost on one CPU core
# (VGG7, 32 training images/s at T=30, about proportional to T): about 2, 4, 6 and 10 minutes
# per epoch for T = 10, 20, 30, 50. OUT (default runs/timesteps) and EXTRA (more flags, e.g.
# "--threads 1" or "--device gpu") can be set. The last line of each run is its JSON summary;
# collect them with: tail -qn 1 $OUT/*.log
set -u
DATA=${DATA:?set DATA to the folder holding the datasets}
MODEL=${MODEL:-vgg7}
DATASET=${DATASET:-cifar10}
TS=${TS:-"10 20 30 50"}
LIMIT_TRAIN=${LIMIT_TRAIN:-10000}
LIMIT_TEST=${LIMIT_TEST:-2000}
EPOCHS=${EPOCHS:-2}
OUT=${OUT:-runs/timesteps}
EXTRA=${EXTRA:-}
status=0
for T in $TS; do
  run="$OUT/${MODEL}_${DATASET}_T$T"
  echo "== $MODEL on $DATASET, T=$T -> $run"
  mkdir -p "$OUT"
  if [ -f "$run/checkpoint.h5" ]; then
    python -m minisnn.train --resume "$run/checkpoint.h5" --data-dir "$DATA/$DATASET" --quiet $EXTRA >> "$run.log" 2>&1
  else
    python -m minisnn.train --model "$MODEL" --dataset "$DATASET" --data-dir "$DATA/$DATASET" -T "$T" \
      --epochs "$EPOCHS" --limit-train "$LIMIT_TRAIN" --limit-test "$LIMIT_TEST" --out "$run" --overwrite \
      --quiet $EXTRA >> "$run.log" 2>&1
  fi
  rc=$?
  tail -n 1 "$run.log"
  if [ $rc -ne 0 ]; then
    echo "T=$T ended with status $rc (see $run.log and python -m minisnn.train --help)"
    status=$rc
    [ $rc -eq 130 ] || [ $rc -eq 143 ] && exit $rc
  fi
done
exit $status
