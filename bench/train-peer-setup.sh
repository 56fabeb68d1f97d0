#!/usr/bin/env bash
# The PyTorch peer of the trainer benchmark: a virtual environment with torch, transformers,
# peft and gguf (transformers reads the same GGUF file retort trains), in bench/.venv-train.
# Idempotent. Not part of CI (torch is large).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RETORT_TRAIN_VENV:-$repo/bench/.venv-train}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch, transformers, peft, gguf" 2>/dev/null; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet torch transformers peft gguf accelerate
"$venv/bin/python" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
