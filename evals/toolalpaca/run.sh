#!/usr/bin/env bash
# ToolAlpaca's simulated evaluation on the local model, figures printed for docs/evals.md: LIMIT
# of the 100 requests of eval_simulated (10 unseen APIs), the model as assistant, executor, user
# and judge.
#
# Usage: evals/toolalpaca/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=30 OUT=target/evals/toolalpaca)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-30}"
OUT="${OUT:-$repo/target/evals/toolalpaca}"
OUT="$(abspath "$OUT")"
start=$(date +%s)
"$retort" run evals/toolalpaca/simulated.yaml --limit "$LIMIT" \
    --set "llm.model=$MODEL" --set "llms.executor.model=$MODEL" --set "llms.user.model=$MODEL" --set "llms.judge.model=$MODEL" \
    --out "$OUT" --quiet >/dev/null
seconds=$(( $(date +%s) - start ))
python3 - "$OUT" "$MODEL" "$seconds" <<'PY'
import json, os, sys
out, model, seconds = sys.argv[1], sys.argv[2], sys.argv[3]
m = json.load(open(os.path.join(out, "metrics.json")))["overall"]
print(f"ToolAlpaca eval_simulated, model {model} as assistant, executor, user and judge (GGUF, in-process), greedy, seed 0:\n")
print("| requests | procedure correct (golden actions with required parameters) | response correct (judged) | both | answered | steps per request | seconds |")
print("|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {m['records']} | {m['procedure']:.1%} | {m['response']:.1%} | {m['both']:.1%} | {m['answered']:.1%} | {m['steps']:.2f} | {seconds} |")
PY
