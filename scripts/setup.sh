#!/usr/bin/env bash
# Creates .venv and installs thinkbench into it. Idempotent: a second run is quick.
#   bash scripts/setup.sh          the package (enough to run experiments)
#   bash scripts/setup.sh --test   also pytest, Hypothesis and the optional extras the tests exercise: Ray,
#                                  TensorBoard, W&B, Hugging Face datasets, submitit
# CPU machines get the pinned CPU wheel of torch; a machine where python3 already imports a torch
# (a GPU machine with its own CUDA build) keeps that torch: the venv sees the system site-packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=""
case "${1:-}" in
  "") ;;
  --test) EXTRAS="[test,ray,tensorboard,wandb,hf,slurm]" ;;
  *) echo "setup.sh: unknown argument '$1'; valid: --test" >&2; exit 2 ;;
esac
if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "setup: keeping the torch already installed ($("$PY" -c 'import torch; print(torch.__version__)'))"
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
fi
# (this machine's pip config names local indexes that may be absent: hide those warnings only)
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".$EXTRAS" 2>&1 | { grep -v "is ignored: it is neither" || true; }
.venv/bin/python -c "import tasks, solvers, bench, thinkbench" # fails loudly if the install did not take
