#!/usr/bin/env bash
# ReST meets ReAct on the local model: the Search Agent's accuracy on held-out questions about
# the local corpus (data/heldout.jsonl, 12 questions written from it, none of them among the
# recipe's), greedy, before and after one grow-improve round. Grow: the recipe's ranked
# trajectories on LIMIT of its questions (4 samples a step, the same model as the ranker);
# improve: the built-in LoRA trainer on every step's ranked-best output, from the base model.
# An answer is right when it contains the gold answer as a whole word (case-insensitive).
# Figures printed as Markdown for docs/evals.md.
#
# Usage: evals/rest-meets-react/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=8 OUT=target/evals/rest-meets-react)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-8}"
OUT="${OUT:-$repo/target/evals/rest-meets-react}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
agent() {
    local name="$1" model="$2" start
    start=$(date +%s.%N)
    "$retort" run evals/rest-meets-react/agent.yaml --model "$model" --out "$OUT/$name" --quiet >/dev/null
    seconds "$start" > "$OUT/$name/seconds.txt"
}
agent before "$MODEL"
start=$(date +%s.%N)
"$retort" run rest-meets-react --model "$MODEL" --set "llms.ranker.model=$MODEL" --set vars.trainer=lora \
    --set vars.rounds=1 --limit "$LIMIT" --out "$OUT/grow" --quiet >/dev/null
seconds "$start" > "$OUT/grow/seconds.txt"
agent after "$MODEL+lora:$OUT/grow/rounds/round-1/adapter.gguf"
python3 - "$OUT" "$MODEL" "$LIMIT" <<'PY'
import json, os, re, sys
out, model, limit = sys.argv[1], sys.argv[2], sys.argv[3]
def right(answer, gold):
    return re.search(r"(?<!\w)" + re.escape(gold.lower()) + r"(?!\w)", (answer or "").lower()) is not None
def score(path):
    rows = [json.loads(l) for l in open(path)]
    ok = sum(right(r["answer"], r["gold"]) for r in rows)
    searched = sum(1 for r in rows if r["searches"] > 0)
    return ok, len(rows), searched
grow = os.path.join(out, "grow")
trajectories = [json.loads(l) for l in open(os.path.join(grow, "trajectories.jsonl"))]
g_ok = sum(right(t["answer"], t["gold"]) for t in trajectories)
rows = sum(1 for _ in open(os.path.join(grow, "data.jsonl")))
report = json.load(open(os.path.join(grow, "rounds", "round-1", "report.json")))
print(f"ReST meets ReAct's Search Agent over the local corpus (143 passages of the standard library's module documentation, BM25 top 3), model {model} (GGUF, in-process), seed 0:\n")
print("| run | questions | right | searched at least once | seconds |")
print("|---|---:|---:|---:|---:|")
for name, label in (("before", "held-out, greedy, base model"), ("after", "held-out, greedy, after one grow-improve round")):
    ok, n, searched = score(os.path.join(out, name, "records.jsonl"))
    secs = open(os.path.join(out, name, "seconds.txt")).read().strip()
    print(f"| {label} | {n} | {ok} ({ok / n:.0%}) | {searched} | {secs} |")
secs = open(os.path.join(grow, "seconds.txt")).read().strip()
print(f"| grow: the recipe's questions, 4 samples a step ranked by the model | {len(trajectories)} | {g_ok} ({g_ok / max(1, len(trajectories)):.0%}) | {sum(1 for t in trajectories if t['searches'] > 0)} | {secs} (with training) |")
keys = ", ".join(f"{k} {report[k]}" for k in ("steps", "final_loss", "seconds") if k in report)
print(f"\nImprove: {rows} step rows (prompt → ranked-best output) trained with LoRA from the base model ({keys}).")
PY
