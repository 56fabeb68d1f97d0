#!/usr/bin/env bash
# The PyTorch peer of the trainer benchmark: a virtual environment with torch, transformers,
# peft and gguf (transformers reads the same GGUF file retort trains), in bench/.venv-train;
# with TRL=1 also trl and datasets (bench/trl-smoke.sh). Idempotent. Not part of CI (torch is large).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RETORT_TRAIN_VENV:-$repo/bench/.venv-train}"
imports="torch, transformers, peft, gguf"
packages=(torch transformers peft gguf accelerate)
if [ "${TRL:-0}" = 1 ]; then
    imports="$imports, trl, datasets"
    packages+=(trl datasets)
fi
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import $imports" 2>/dev/null; then
    exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "${packages[@]}"
"$venv/bin/python" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
