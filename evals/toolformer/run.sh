#!/usr/bin/env bash
# Toolformer's evaluation on the local model: the toolformer recipe annotates LIMIT GSM8K
# training answers whose <<expression=result>> marks were removed, and the calls it keeps are
# compared with the marks: position precision and recall (the call is where a mark was), and
# expression precision and recall (at that position, the call's result equals the mark's).
#
# Usage: evals/toolformer/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=10 TAU_F=1.0 OUT=target/evals/toolformer)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-10}"
OUT="${OUT:-$repo/target/evals/toolformer}"
OUT="$(abspath "$OUT")"
start=$(date +%s)
"$retort" run toolformer --backend local --model "$MODEL" --limit "$LIMIT" \
    --set "steps[0].load.path=$repo/evals/toolformer/data/gsm8k.jsonl" --set "vars.tau_f=${TAU_F:-1.0}" --out "$OUT" --quiet >/dev/null
seconds=$(( $(date +%s) - start ))
python3 evals/toolformer/report.py "$OUT" "$MODEL" "$LIMIT" "$seconds"
