#!/usr/bin/env bash
# One-command set-up of mmhand2p in a project-local virtual environment.
#
#   bash tools/setup_env.sh            # creates/updates ./.venv
#
# Idempotent: a second run that finds everything in place returns in seconds
# (a stamp holds the hash of the requirement files and of this script).
# Works offline against the package registries of the build machine and on an
# ordinary Linux machine with internet. Environment knobs:
#   PYTHON            interpreter for the venv (default: python3, needs 3.8-3.11)
#   MMHAND2P_VENV     venv folder (default: <repo>/.venv)
#   MMHAND2P_TORCH    pip spec for torch (default: torch==2.13.0; e.g. a CUDA
#                     build: "torch==2.1.2 --index-url <pytorch cu121 index>")
#   MAX_JOBS          parallel compile jobs for mmcv's ops (default: nproc)
#   FORCE_CUDA=1      build mmcv's CUDA ops (GPU machines, see docs/get_started.md)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMHAND2P_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${MMHAND2P_TORCH:-torch==2.13.0}
export MAX_JOBS=${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)}
STAMP=$VENV/.mmhand2p-setup-stamp

step() { echo "[setup_env] $*"; }

hash=$(cat "$ROOT"/requirements/*.txt "$ROOT/tools/setup_env.sh" "$ROOT/setup.py" \
    | sha256sum | cut -c1-16)-$TORCH_SPEC

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$hash" ] \
    && "$VENV/bin/python" -c "import mmhand2p, mmcv.ops, mmdet, mmpose" 2>/dev/null; then
    step "environment in $VENV is up to date"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    step "creating virtual environment $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=(pipq "$PY" -m pip install --disable-pip-version-check -c "$ROOT/requirements/constraints.txt")

# pip warns about every empty local index listed in some machines' pip.conf.
pipq() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

have() { "$PY" -c "$1" >/dev/null 2>&1; }

step "1/7 build tools (wheel, ninja, cython, numpy)"
"${PIP[@]}" -q --upgrade pip
"${PIP[@]}" -q -r "$ROOT/requirements/build.txt" "numpy>=1.24,<3"

torch_version=${TORCH_SPEC#torch==}; torch_version=${torch_version%% *}
if have "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')"; then
    step "2/7 torch $torch_version already installed"
else
    step "2/7 installing $TORCH_SPEC"
    # shellcheck disable=SC2086  # the spec may carry extra pip options
    "${PIP[@]}" -q $TORCH_SPEC
fi

step "3/7 runtime dependencies"
grep -v '^xtcocotools' "$ROOT/requirements/runtime.txt" > "$VENV/.runtime-req.txt"
"${PIP[@]}" -q "mmengine==0.10.7" -r "$VENV/.runtime-req.txt" -r "$ROOT/requirements/tests.txt"
if ! have "import xtcocotools.coco"; then
    # PyPI's xtcocotools wheels are built against numpy 1.x; build against ours.
    "${PIP[@]}" -q --no-binary xtcocotools --no-build-isolation "xtcocotools>=1.14"
fi

if have "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '2.1.0')"; then
    step "4/7 mmcv 2.1.0 with ops already installed"
else
    step "4/7 mmcv 2.1.0 with compiled ops from source (about 13 min on 2 cores the" \
        "first time; pip caches the wheel for later runs)"
    # mmcv 2.1.0's setup.py imports pkg_resources (gone from setuptools>=70),
    # torch 2.13 needs setuptools>=77: downgrade for the build only.
    "${PIP[@]}" -q --no-warn-conflicts "setuptools<70"
    MMCV_WITH_OPS=1 "${PIP[@]}" -q --no-build-isolation "mmcv==2.1.0" \
        || { "${PIP[@]}" -q --upgrade setuptools; exit 1; }
    "${PIP[@]}" -q --upgrade setuptools
fi

step "5/7 mmdet 3.3.0"
"${PIP[@]}" -q "mmdet==3.3.0"

step "6/7 mmpose 1.3.2 (--no-deps: its chumpy and torchvision pins do not install here)"
"${PIP[@]}" -q --no-deps "mmpose==1.3.2"

step "7/7 mmhand2p (editable)"
"${PIP[@]}" -q --no-deps --no-build-isolation -e "$ROOT"

"$PY" - <<'EOF'
import mmcv, mmdet, mmengine, mmpose, torch, mmhand2p
from mmcv.ops import nms  # noqa: F401  (proves the compiled ops load)
print(f'[setup_env] ok: torch {torch.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, '
      f'mmpose {mmpose.__version__}, mmhand2p {mmhand2p.__version__}')
EOF
echo "$hash" > "$STAMP"
