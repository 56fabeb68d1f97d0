#!/usr/bin/env bash
# CodeAct's evaluation on the local model: the same GSM8K test questions (LIMIT of the first
# 200) solved with code actions (<execute> in a stateful interpreter) and with JSON function
# calls (the calculator tool), 5 turns each; success, turns, and the share that saw an error
# and still succeeded. Figures printed as Markdown for docs/evals.md.
#
# Usage: evals/codeact/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=200 OUT=target/evals/codeact)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-200}"
OUT="${OUT:-$repo/target/evals/codeact}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
for mode in code json; do
    start=$(date +%s.%N)
    "$retort" run evals/codeact/gsm8k.yaml --model "$MODEL" --limit "$LIMIT" --set "vars.mode=$mode" --out "$OUT/$mode" --quiet >/dev/null
    seconds "$start" > "$OUT/$mode/seconds.txt"
done
python3 - "$OUT" "$MODEL" <<'PY'
import json, os, sys
out, model = sys.argv[1], sys.argv[2]
print(f"GSM8K test, model {model} (GGUF, in-process), greedy, seed 0, at most 5 turns:\n")
print("| actions | tasks | success | turns per task | saw an error and succeeded | seconds |")
print("|---|---:|---:|---:|---:|---:|")
for mode, name in (("code", "code (CodeAct: <execute>, stateful interpreter)"), ("json", "JSON function calls (calculator)")):
    m = json.load(open(os.path.join(out, mode, "metrics.json")))["overall"]
    secs = open(os.path.join(out, mode, "seconds.txt")).read().strip()
    print(f"| {name} | {m['records']} | {m['success']:.1%} | {m['turns']:.2f} | {m['recovered']:.1%} | {secs} |")
PY
