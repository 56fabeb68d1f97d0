#!/usr/bin/env bash
# Agent-FLAN's negatives on BFCL irrelevance: no-call accuracy of the local model on LIMIT of the
# 240 requests, with no examples and with 3 of the agent-flan recipe's negatives as examples
# (the recipe run on GEN_LIMIT ToolBench trajectories with the same model).
#
# Usage: evals/irrelevance/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=60 GEN_LIMIT=9 OUT=target/evals/irrelevance)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-60}"
GEN_LIMIT="${GEN_LIMIT:-9}"
OUT="${OUT:-$repo/target/evals/irrelevance}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
"$retort" run agent-flan --backend local --model "$MODEL" --limit "$GEN_LIMIT" --out "$OUT/agent-flan" --quiet >/dev/null
"$retort" run evals/irrelevance/bfcl.yaml --model "$MODEL" --limit "$LIMIT" --out "$OUT/none" --quiet >/dev/null
"$retort" run evals/irrelevance/bfcl.yaml --model "$MODEL" --limit "$LIMIT" --set vars.examples=true \
    --set "steps[1].sample.from=$OUT/agent-flan/negatives.jsonl" --out "$OUT/negatives" --quiet >/dev/null
python3 - "$OUT" "$MODEL" <<'PY'
import json, os, sys
out, model = sys.argv[1], sys.argv[2]
rows = sum(1 for _ in open(os.path.join(out, "agent-flan", "data.jsonl")))
negatives = sum(1 for _ in open(os.path.join(out, "agent-flan", "negatives.jsonl")))
print(f"Agent-FLAN: {rows} conversations ({negatives} negatives) from ToolBench's trajectories, written by {model}.\n")
print(f"BFCL irrelevance, {model}, chat prompt (greedy, seed 0):\n")
print("| examples | requests | no-call accuracy |")
print("|---|---:|---:|")
for name, label in (("none", "none"), ("negatives", "3 of the agent-flan recipe's negatives")):
    o = json.load(open(os.path.join(out, name, "metrics.json")))["overall"]
    print(f"| {label} | {o['records']} | {o['no_call_accuracy']:.1%} |")
PY
