#!/usr/bin/env bash
# The thesis' whole results table (tables 4.5-4.8) at the thesis' settings, on a GPU:
# every dataset and model, 150 epochs, the thesis' T, batch, learning-rate schedule, augmentation
# and standardisation (`--preset thesis`, the default). Each run resumes where it stopped, so the
# script can be interrupted and started again; a finished run is skipped.
#
#   DATA=/path/to/data bash experiments/thesis_protocol.sh            # all rows
#   DATA=/path/to/data ROWS="mnist:lenet5 cifar10:vgg9" bash experiments/thesis_protocol.sh
#
# DATA holds one folder per dataset (mnist/, svhn/, nmnist/, cifar10/). DEVICE (default gpu),
# OUT (default runs/thesis) and EXTRA (more flags for every run) can be set.
#
# Wall time per epoch measured on a 2-core CPU (Xeon, NumPy 2.4, --execution auto), for
# comparison with what the GPU takes (docs/results.md has the commands):
#   LeNet5 MNIST, T=50:            about 12 min (train + test)   -> 150 epochs: about 30 h
#   VGG9 CIFAR-10, T=100:          about 3.3 h (4.2 img/s, auto)  -> 150 epochs: about 3 weeks
#   ResNet11 CIFAR-10, T=100:       about 6 h (2.3 img/s, auto)  -> 150 epochs: about 5 weeks
set -u
DATA=${DATA:?set DATA to the folder holding the datasets}
DEVICE=${DEVICE:-gpu}
OUT=${OUT:-runs/thesis}
EXTRA=${EXTRA:-}
# dataset:model, in the thesis' order (table 4.5: MNIST, N-MNIST; 4.6: SVHN; 4.7-4.8: CIFAR-10)
ROWS=${ROWS:-"mnist:lenet5 nmnist:lenet5 svhn:vgg7 svhn:resnet7 cifar10:vgg9 cifar10:resnet9 cifar10:resnet11"}
status=0
for row in $ROWS; do
  dataset=${row%%:*}
  model=${row##*:}
  run="$OUT/${model}_${dataset}"
  echo "== $model on $dataset -> $run"
  if [ -f "$run/checkpoint.h5" ] || [ -f "$run/interrupted.h5" ]; then
    # resume the folder (its interrupted.h5, else checkpoint.h5); says so and does nothing when done
    python -m minisnn.train --resume "$run" --device "$DEVICE" --data-dir "$DATA/$dataset" --quiet $EXTRA
  else
    python -m minisnn.train --model "$model" --dataset "$dataset" --data-dir "$DATA/$dataset" \
      --device "$DEVICE" --preset thesis --out "$run" --quiet $EXTRA
  fi
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "$model on $dataset ended with status $rc (see python -m minisnn.train --help)"
    status=$rc
    [ $rc -eq 130 ] || [ $rc -eq 143 ] && exit $rc    # interrupted: stop here, rerun to resume
  fi
done
exit $status
