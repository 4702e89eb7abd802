#!/usr/bin/env bash
# Reproduces the synthetic-world A2P numbers of docs/a2p.md on a CPU machine:
# the three prior teachers, an untrained reference, then the full model and
# the Table-4-style ablation (baseline, +kp, +kp+seg), each with the same
# iteration budget and seed, each tested on the synthetic test split.
# Needs the synthetic set in data/synthetic_interhand (docs/datasets.md).
#   bash tools/misc/train_synthetic_a2p.sh            # the first three steps
#   STEPS="ablation" bash tools/misc/train_synthetic_a2p.sh
# Step `ablation-w32` is the rerun past the plateau (docs/a2p.md): the
# half-width family for 5000 iterations, two runs at a time with one torch
# thread and one loader worker each (on 2 cores that is 1.6x the throughput
# of one run alone), the prior rows reading the teachers' feature cache
# (`prior-cache` step, warp 'none'), each tested on the test split.
#   STEPS="untrained-w32 prior-cache ablation-w32 ablation-w32-seed1" \
#       bash tools/misc/train_synthetic_a2p.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-"teachers untrained ablation"}
SYN=configs/a2p/synthetic
has_step() { [[ " $STEPS " == *" $1 "* ]]; }

if has_step teachers; then
  for p in keypoint segmentation depth; do
    $PY tools/train.py configs/teachers/priornet_${p}_1xb32-cpu_synthetic-128x128.py \
        --work-dir work_dirs/teachers/$p
    cp work_dirs/teachers/$p/epoch_2.pth work_dirs/teachers/priornet_$p.pth
  done
fi

save_untrained() {  # config, output checkpoint: the seed-0 initialisation
  $PY - "$1" "$2" <<'PYEOF'
import sys
import torch
from mmengine.config import Config
from mmengine.runner import set_random_seed
from mmhand2p.registry import MODELS
from mmhand2p.utils import register_all_modules
register_all_modules()
set_random_seed(0)
cfg = Config.fromfile(sys.argv[1])
model = MODELS.build(cfg.model)
model.init_weights()
torch.save({'state_dict': model.state_dict(), 'meta': {}}, sys.argv[2])
PYEOF
}

if has_step untrained; then
  save_untrained $SYN/a2p_res18_1xb16-cpu_synthetic-128x128.py \
      work_dirs/a2p_untrained.pth
  $PY tools/test.py $SYN/a2p_res18_1xb16-cpu_synthetic-128x128.py \
      work_dirs/a2p_untrained.pth --work-dir work_dirs/a2p_untrained
fi

if has_step ablation; then
  for v in "" -baseline -kp -kp-seg; do
    cfg=$SYN/a2p_res18${v}_1xb16-cpu_synthetic-128x128.py
    $PY tools/train.py $cfg --work-dir work_dirs/a2p${v}
    $PY tools/test.py $cfg work_dirs/a2p${v}/iter_300.pth \
        --work-dir work_dirs/a2p${v}/test
  done
fi

W32=work_dirs/ablation_w32
CACHE=data/prior_cache/a2p_res18_synthetic-128x128_train
if has_step untrained-w32; then
  mkdir -p $W32
  save_untrained $SYN/a2p_res18w32_1xb16-cpu_synthetic-128x128.py \
      $W32/untrained.pth
  $PY tools/test.py $SYN/a2p_res18w32_1xb16-cpu_synthetic-128x128.py \
      $W32/untrained.pth --work-dir $W32/untrained
  # and on the val split, which the training runs validate on
  $PY tools/test.py $SYN/a2p_res18w32_1xb16-cpu_synthetic-128x128.py \
      $W32/untrained.pth --work-dir $W32/untrained_val \
      --cfg-options test_dataloader.dataset.split=val
fi

if has_step prior-cache; then
  $PY tools/misc/extract_prior_features.py \
      $SYN/a2p_res18_1xb16-cpu_synthetic-128x128.py --split train --out $CACHE
fi

train_w32() {  # name, config suffix, "cache" or "", [seed]
  local opts="randomness.seed=${4:-0} train_cfg.max_iters=5000 train_cfg.val_interval=1000
    param_scheduler.1.end=5000 param_scheduler.1.milestones=[4000]
    default_hooks.checkpoint.interval=1000
    default_hooks.checkpoint.max_keep_ckpts=5
    default_hooks.logger.interval=50
    train_dataloader.num_workers=1 val_dataloader.num_workers=1"
  if [[ $3 == cache ]]; then
    opts="$opts model.neck.prior_cache.root=$CACHE model.neck.prior_cache.warp=none"
  fi
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $PY tools/train.py \
      $SYN/a2p_res18w32$2_1xb16-cpu_synthetic-128x128.py \
      --work-dir $W32/$1 --cfg-options $opts > $W32/$1.out 2>&1
}

test_w32() {  # name, config suffix
  OMP_NUM_THREADS=1 $PY tools/test.py \
      $SYN/a2p_res18w32$2_1xb16-cpu_synthetic-128x128.py \
      $W32/$1/iter_5000.pth --work-dir $W32/$1/test \
      --cfg-options test_dataloader.num_workers=1
}

if has_step ablation-w32; then
  mkdir -p $W32
  train_w32 baseline -baseline "" & train_w32 full "" cache & wait
  train_w32 kp -kp cache & train_w32 kp-seg -kp-seg cache & wait
  test_w32 baseline -baseline; test_w32 full ""
  test_w32 kp -kp; test_w32 kp-seg -kp-seg
fi

# the baseline and the full model again with seed 1 (how much of a
# difference between rows is the seed's)
if has_step ablation-w32-seed1; then
  mkdir -p $W32
  train_w32 baseline_seed1 -baseline "" 1 & \
    train_w32 full_seed1 "" cache 1 & wait
  test_w32 baseline_seed1 -baseline; test_w32 full_seed1 ""
fi
