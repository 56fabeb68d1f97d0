#!/usr/bin/env bash
# ToolLLM's evaluation on the local model, figures printed as a Markdown table for docs/evals.md:
# ToolBench G2 test queries (LIMIT of the 40 in data/g2.jsonl), the APIs simulated from their
# documentation; one ReAct chain against DFSDT at the same budget of model calls, with the
# original API descriptions, and DFSDT with DRAFT's revised descriptions.
#
# Usage: evals/toolllm/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=10 SETTINGS="react/original dfsdt/original dfsdt/draft" OUT=target/evals/toolllm)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-10}"
SETTINGS="${SETTINGS:-react/original dfsdt/original dfsdt/draft}"
OUT="${OUT:-$repo/target/evals/toolllm}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
for setting in $SETTINGS; do
    search="${setting%/*}" docs="${setting#*/}"
    start=$(date +%s.%N)
    "$retort" run evals/toolllm/g2.yaml --limit "$LIMIT" --set "vars.search=$search" --set "vars.docs=$docs" \
        --set "llm.model=$MODEL" --set "llms.simulator.model=$MODEL" --set "llms.evaluator.model=$MODEL" \
        --out "$OUT/$search-$docs" --quiet >/dev/null
    echo "$(seconds "$start")" > "$OUT/$search-$docs/seconds.txt"
done
python3 - "$OUT" "$MODEL" "$SETTINGS" <<'PY'
import json, os, sys
out, model, settings = sys.argv[1], sys.argv[2], sys.argv[3].split()
print(f"ToolBench G2 (DRAFT's test queries), model {model} as agent, API simulator and ToolEval judge (GGUF, in-process), seed 0:\n")
print("| search | API docs | queries | pass rate (ToolEval) | answered (Finish) | all relevant APIs called | model calls per query | seconds |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for setting in settings:
    search, docs = setting.split("/")
    name = f"{search}-{docs}"
    m = json.load(open(os.path.join(out, name, "metrics.json")))["overall"]
    secs = open(os.path.join(out, name, "seconds.txt")).read().strip()
    print(f"| {search} | {docs} | {m['records']} | {m['pass_rate']:.1%} | {m['answered']:.1%} | {m['relevant_called']:.1%} | {m['model_calls']:.1f} | {secs} |")
PY
