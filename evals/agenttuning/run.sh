#!/usr/bin/env bash
# AgentTuning's held-in DB evaluation on the local model: AgentBench's 60 DBBench dev tasks
# (LIMIT of them), zero-shot, then with retrieved trajectories as examples: the zero-shot
# run's successful trajectories become data/pool.jsonl, and each task is shown the two most
# similar ones of *other* tasks. Success: reward 1 (the label, or for INSERT/UPDATE the gold
# statement's tables). Figures printed as Markdown for docs/evals.md.
#
# Usage: evals/agenttuning/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=60 OUT=target/evals/agenttuning)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-60}"
OUT="${OUT:-$repo/target/evals/agenttuning}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
run() {
    local mode="$1" start
    start=$(date +%s.%N)
    "$retort" run evals/agenttuning/db.yaml --model "$MODEL" --set "vars.limit=$LIMIT" --set "vars.mode=$mode" --out "$OUT/$mode" --quiet >/dev/null
    seconds "$start" > "$OUT/$mode/seconds.txt"
}
run zero_shot
# The pool: successful zero-shot trajectories (task, question, messages).
python3 - "$OUT/zero_shot/records.jsonl" evals/agenttuning/data/pool.jsonl <<'PY'
import json, sys
tasks = {json.loads(l)["task_id"]: json.loads(l) for l in open("recipes/agenttuning/data/tasks.jsonl")}
kept = []
for line in open(sys.argv[1]):
    row = json.loads(line)
    if row["success"]:
        kept.append({"task_id": row["task_id"], "description": tasks[row["task_id"]]["description"], "trajectory": {"messages": row["trajectory"]["messages"]}})
if not kept:
    sys.exit("no zero-shot task succeeded: there are no trajectories to show as examples")
with open(sys.argv[2], "w") as f:
    for row in kept:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
print(f"pool: {len(kept)} successful trajectories", file=sys.stderr)
PY
run examples
python3 - "$OUT" "$MODEL" <<'PY'
import json, os, sys
out, model = sys.argv[1], sys.argv[2]
print(f"AgentBench DBBench dev, model {model} (GGUF, in-process), greedy, seed 0, at most 15 rounds:\n")
print("| prompt | tasks | success | questions | INSERT/UPDATE | rounds per task | seconds |")
print("|---|---:|---:|---:|---:|---:|---:|")
for mode, name in (("zero_shot", "zero-shot"), ("examples", "two retrieved successful trajectories of other tasks")):
    m = json.load(open(os.path.join(out, mode, "metrics.json")))
    overall, groups = m["overall"], m.get("by", {})
    per = lambda g: f"{groups[g]['success']:.1%} of {groups[g]['records']}" if g in groups else "–"
    secs = open(os.path.join(out, mode, "seconds.txt")).read().strip()
    print(f"| {name} | {overall['records']} | {overall['success']:.1%} | {per('question')} | {per('mutation')} | {overall['turns']:.2f} | {secs} |")
PY
