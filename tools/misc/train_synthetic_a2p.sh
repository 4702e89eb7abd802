#!/usr/bin/env bash
# Reproduces the synthetic-world A2P numbers of docs/a2p.md on a CPU machine:
# the three prior teachers, an untrained reference, then the full model and
# the Table-4-style ablation (baseline, +kp, +kp+seg), each with the same
# iteration budget and seed, each tested on the synthetic test split.
# Needs the synthetic set in data/synthetic_interhand (docs/datasets.md).
#   bash tools/misc/train_synthetic_a2p.sh            # everything
#   STEPS="ablation" bash tools/misc/train_synthetic_a2p.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-"teachers untrained ablation"}
SYN=configs/a2p/synthetic

if [[ $STEPS == *teachers* ]]; then
  for p in keypoint segmentation depth; do
    $PY tools/train.py configs/teachers/priornet_${p}_1xb32-cpu_synthetic-128x128.py \
        --work-dir work_dirs/teachers/$p
    cp work_dirs/teachers/$p/epoch_2.pth work_dirs/teachers/priornet_$p.pth
  done
fi

if [[ $STEPS == *untrained* ]]; then
  $PY - <<'PYEOF'
import torch
from mmengine.config import Config
from mmengine.runner import set_random_seed
from mmhand2p.registry import MODELS
from mmhand2p.utils import register_all_modules
register_all_modules()
set_random_seed(0)
cfg = Config.fromfile('configs/a2p/synthetic/a2p_res18_1xb16-cpu_synthetic-128x128.py')
model = MODELS.build(cfg.model)
model.init_weights()
torch.save({'state_dict': model.state_dict(), 'meta': {}},
           'work_dirs/a2p_untrained.pth')
PYEOF
  $PY tools/test.py $SYN/a2p_res18_1xb16-cpu_synthetic-128x128.py \
      work_dirs/a2p_untrained.pth --work-dir work_dirs/a2p_untrained
fi

if [[ $STEPS == *ablation* ]]; then
  for v in "" -baseline -kp -kp-seg; do
    cfg=$SYN/a2p_res18${v}_1xb16-cpu_synthetic-128x128.py
    $PY tools/train.py $cfg --work-dir work_dirs/a2p${v}
    $PY tools/test.py $cfg work_dirs/a2p${v}/iter_300.pth \
        --work-dir work_dirs/a2p${v}/test
  done
fi
