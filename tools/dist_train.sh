#!/usr/bin/env bash
# Distributed training on one or several machines with torchrun.
#
#   bash tools/dist_train.sh CONFIG GPUS [train.py options...]
#
# GPUS processes per machine, one per GPU. On a machine without CUDA they are
# CPU processes talking through gloo (tools/train.py switches the config's
# nccl backend to gloo and logs it), e.g. 2 processes:
#   bash tools/dist_train.sh CONFIG 2
# Several machines: run it on every node with the same MASTER_ADDR / PORT,
# NNODES = number of nodes and NODE_RANK = 0 .. NNODES-1, e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.1.1.1 bash tools/dist_train.sh CFG 8
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.1.1.1 bash tools/dist_train.sh CFG 8
# PYTHON picks the interpreter (default: python).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py options...]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$GPUS" \
    "$TOOLS_DIR/train.py" "$CONFIG" --launcher pytorch "$@"
