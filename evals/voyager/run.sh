#!/usr/bin/env bash
# Voyager in the text crafting world on the local model: one agent (world 0) for ITERATIONS
# iterations, with the full loop and with each of the paper's ablations (no skill library, no
# self-verification by the critic, a random curriculum). Figures: distinct items obtained,
# tasks completed, and the iteration at which each tech-tree milestone (wooden, stone, iron,
# diamond pickaxe) was first reached. Printed as Markdown for docs/evals.md.
#
# Usage: evals/voyager/run.sh   (MODEL=qwen2.5-coder-0.5b ITERATIONS=40 OUT=target/evals/voyager)
set -euo pipefail
MODELS_EXTRA="${MODELS_EXTRA:---embed}"
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
ITERATIONS="${ITERATIONS:-40}"
OUT="${OUT:-$repo/target/evals/voyager}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
run() {
    local name="$1" start
    shift
    start=$(date +%s.%N)
    "$retort" run voyager --model "$MODEL" --limit 1 --set "vars.iterations=$ITERATIONS" "$@" --out "$OUT/$name" --quiet >/dev/null
    seconds "$start" > "$OUT/$name/seconds.txt"
}
run full
run no-skill-library --set vars.skill_library=false
run no-critic --set vars.critic=false
run random-curriculum --set vars.curriculum=random
python3 - "$OUT" "$MODEL" "$ITERATIONS" <<'PY'
import json, os, sys
out, model, iterations = sys.argv[1], sys.argv[2], sys.argv[3]
milestones = ["wooden_pickaxe", "stone_pickaxe", "iron_pickaxe", "diamond_pickaxe"]
print(f"Voyager in the text crafting world (world 0), model {model} (GGUF, in-process), {iterations} iterations, seed 0:\n")
print("| run | distinct items | tasks completed | tasks failed | " + " | ".join(m.replace("_", " ") for m in milestones) + " | seconds |")
print("|---|---:|---:|---:|" + "---:|" * len(milestones) + "---:|")
for name, label in (("full", "Voyager"), ("no-skill-library", "without the skill library"), ("no-critic", "without self-verification"), ("random-curriculum", "random curriculum")):
    agent = json.loads(open(os.path.join(out, name, "records.jsonl")).readline())
    first = {}
    for h in agent["history"]:
        for m in h["milestones"]:
            first.setdefault(m, h["iteration"])
    cells = " | ".join(f"iteration {first[m]}" if m in first else "–" for m in milestones)
    secs = open(os.path.join(out, name, "seconds.txt")).read().strip()
    print(f"| {label} | {agent['unique_items']} | {len(agent['completed'])} | {len(agent['failed'])} | {cells} | {secs} |")
PY
