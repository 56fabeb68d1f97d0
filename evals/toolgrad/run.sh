#!/usr/bin/env bash
# ToolGrad against ToolLLM on the same API pool (ToolBench APIs, simulated), on the local
# model: the share of generated samples that pass ToolEval's judgment, and the model calls
# spent per kept sample (every request but the judge's: queries, agent or proposer/selector/
# updater, and the API simulator). LIMIT anchors each: LIMIT workflows for ToolGrad, LIMIT API
# sets for ToolLLM (with PER_SAMPLE queries each, solved by DFSDT).
#
# Usage: evals/toolgrad/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=5 PER_SAMPLE=2 OUT=target/evals/toolgrad)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-5}"
PER_SAMPLE="${PER_SAMPLE:-2}"
OUT="${OUT:-$repo/target/evals/toolgrad}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
models=(--set "llms.simulator.model=$MODEL" --set "llms.evaluator.model=$MODEL")
start=$(date +%s.%N)
"$retort" run toolgrad --backend local --model "$MODEL" "${models[@]}" --limit "$LIMIT" --out "$OUT/toolgrad" --quiet >/dev/null
echo "$(seconds "$start")" > "$OUT/toolgrad/seconds.txt"
start=$(date +%s.%N)
"$retort" run toolllm --backend local --model "$MODEL" "${models[@]}" --limit "$LIMIT" --set "vars.per_sample=$PER_SAMPLE" --out "$OUT/toolllm" --quiet >/dev/null
echo "$(seconds "$start")" > "$OUT/toolllm/seconds.txt"
for name in toolgrad toolllm; do "$retort" status --json "$OUT/$name" > "$OUT/$name/status.json"; done
python3 - "$OUT" "$MODEL" "$LIMIT" <<'PY'
import json, os, sys, yaml
out, model, limit = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"ToolGrad and ToolLLM on the same ToolBench API pool, model {model} for every role (GGUF, in-process), seed 0, {limit} anchors each:\n")
print("| method | samples judged | pass rate (ToolEval) | kept | model calls (without the judge) | per kept sample | seconds |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in ("toolgrad", "toolllm"):
    recipe = yaml.safe_load(open(os.path.join("recipes", name, "recipe.yaml")))
    judges = {f"steps[{i}].generate" for i, step in enumerate(recipe["steps"]) if "generate" in step and step["generate"].get("llm") == "evaluator"}
    status = json.load(open(os.path.join(out, name, "status.json")))
    calls = sum(s["requests"] + s["cached"] for s in status["steps"] if s["step"] not in judges)
    m = json.load(open(os.path.join(out, name, "metrics.json")))["overall"]
    kept = sum(1 for _ in open(os.path.join(out, name, "data.jsonl")))
    secs = open(os.path.join(out, name, "seconds.txt")).read().strip()
    per = f"{calls / kept:.1f}" if kept else "n/a"
    print(f"| {name} | {m['records']} | {m['pass_rate']:.1%} | {kept} | {calls} | {per} | {secs} |")
PY
