#!/usr/bin/env bash
# DRAFT's evaluation on the local model, figures printed for docs/evals.md: the draft recipe
# revises the documents of the APIs of the first LIMIT ToolBench G2 queries; then ToolLLM's
# agent (evals/toolllm/g2.yaml, SEARCH) solves those queries with the original descriptions,
# DRAFT's released revisions, and retort's. DRAFT's measure is the path rate: the share of
# queries whose relevant APIs were all called; ToolEval's pass rate is printed beside it.
#
# Usage: evals/draft/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=10 SEARCH=dfsdt OUT=target/evals/draft)
set -euo pipefail
MODELS_EXTRA=--embed
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-10}"
SEARCH="${SEARCH:-dfsdt}"
OUT="${OUT:-$repo/target/evals/draft}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
# The APIs of the first LIMIT queries.
python3 - "$LIMIT" "$OUT/apis.jsonl" <<'PY'
import json, sys
limit, out = int(sys.argv[1]), sys.argv[2]
seen = {}
for index, line in enumerate(open("evals/toolllm/data/g2.jsonl")):
    if index >= limit:
        break
    for api in json.loads(line)["api_list"]:
        seen.setdefault((api["tool_name"], api["api_name"]), api)
with open(out, "w") as f:
    for api in seen.values():
        f.write(json.dumps(api, ensure_ascii=False) + "\n")
PY
start=$(date +%s.%N)
"$retort" run draft --backend local --model "$MODEL" --set "llms.simulator.model=$MODEL" \
    --set "steps[0].load.path=$OUT/apis.jsonl" --out "$OUT/revised" --quiet >/dev/null
echo "$(seconds "$start")" > "$OUT/revised/seconds.txt"
# The queries with retort's revisions beside the original and DRAFT's.
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
revised = {(r["tool_name"], r["api_name"]): r["description"] for r in map(json.loads, open(os.path.join(out, "revised", "data.jsonl")))}
with open(os.path.join(out, "g2.jsonl"), "w") as f:
    for line in open("evals/toolllm/data/g2.jsonl"):
        query = json.loads(line)
        query["api_list_revised"] = [dict(api, api_description=revised.get((api["tool_name"], api["api_name"]), api["api_description"])) for api in query["api_list"]]
        f.write(json.dumps(query, ensure_ascii=False) + "\n")
PY
for docs in original draft revised; do
    start=$(date +%s.%N)
    "$retort" run evals/toolllm/g2.yaml --limit "$LIMIT" --set "steps[0].load.path=$OUT/g2.jsonl" \
        --set "vars.search=$SEARCH" --set "vars.docs=$docs" \
        --set "llm.model=$MODEL" --set "llms.simulator.model=$MODEL" --set "llms.evaluator.model=$MODEL" \
        --out "$OUT/$SEARCH-$docs" --quiet >/dev/null
    echo "$(seconds "$start")" > "$OUT/$SEARCH-$docs/seconds.txt"
done
python3 - "$OUT" "$MODEL" "$SEARCH" <<'PY'
import json, os, sys
out, model, search = sys.argv[1], sys.argv[2], sys.argv[3]
docs = [json.loads(l) for l in open(os.path.join(out, "revised", "data.jsonl"))]
converged = sum(1 for d in docs if d["converged"])
episodes = sum(d["episodes"] or 0 for d in docs) / max(len(docs), 1)
print(f"DRAFT, model {model} (explorer, analyzer, rewriter and API simulator; GGUF, in-process), seed 0: "
      f"{len(docs)} API documents revised in {open(os.path.join(out, 'revised', 'seconds.txt')).read().strip()} s, "
      f"{converged} converged, {episodes:.1f} episodes on average.\n")
print(f"ToolBench G2 queries, {search}, the same model as agent, simulator and judge:\n")
print("| API descriptions | queries | path rate (all relevant APIs called) | pass rate (ToolEval) | model calls per query | seconds |")
print("|---|---:|---:|---:|---:|---:|")
for name, label in (("original", "original (ToolBench)"), ("draft", "DRAFT's released revisions"), ("revised", "retort's draft recipe")):
    m = json.load(open(os.path.join(out, f"{search}-{name}", "metrics.json")))["overall"]
    secs = open(os.path.join(out, f"{search}-{name}", "seconds.txt")).read().strip()
    print(f"| {label} | {m['records']} | {m['relevant_called']:.1%} | {m['pass_rate']:.1%} | {m['model_calls']:.1f} | {secs} |")
PY
