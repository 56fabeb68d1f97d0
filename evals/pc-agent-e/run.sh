#!/usr/bin/env bash
# PC Agent-E on the local model: the recipe makes step rows from the 8 recorded training tasks
# (thought completion, and BOOST alternatives a state), the built-in LoRA trainer trains once on
# the human steps only and once on the human and boosted steps (from the base model each time),
# and the agent runs greedily on the 4 held-out desktop tasks (data/heldout.jsonl) with the base
# model and with each adapter. Success: the task's checker after finish(), within 12 steps.
# Figures printed as Markdown for docs/evals.md.
#
# Usage: evals/pc-agent-e/run.sh   (MODEL=qwen2.5-coder-0.5b BOOST=3 OUT=target/evals/pc-agent-e)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
BOOST="${BOOST:-3}"
OUT="${OUT:-$repo/target/evals/pc-agent-e}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
start=$(date +%s.%N)
# steps[7] is the iterate; its 4th step the boost `generate`.
"$retort" run pc-agent-e --model "$MODEL" --set "steps[7].iterate.steps[3].generate.n=$BOOST" --out "$OUT/data" --quiet >/dev/null
seconds "$start" > "$OUT/data/seconds.txt"
for sources in human all; do
    start=$(date +%s.%N)
    "$retort" run evals/pc-agent-e/train.yaml --model "$MODEL" --set "steps[0].load.path=$OUT/data/steps.jsonl" \
        --set "vars.sources=$sources" --out "$OUT/train-$sources" --quiet >/dev/null
    seconds "$start" > "$OUT/train-$sources/seconds.txt"
done
agent() {
    local name="$1" model="$2" start
    start=$(date +%s.%N)
    "$retort" run evals/pc-agent-e/agent.yaml --model "$model" --out "$OUT/agent-$name" --quiet >/dev/null
    seconds "$start" > "$OUT/agent-$name/seconds.txt"
}
agent base "$MODEL"
agent human "$MODEL+lora:$OUT/train-human/rounds/round-1/adapter.gguf"
agent all "$MODEL+lora:$OUT/train-all/rounds/round-1/adapter.gguf"
python3 - "$OUT" "$MODEL" "$BOOST" <<'PY'
import json, os, sys
out, model, boost = sys.argv[1], sys.argv[2], sys.argv[3]
steps = [json.loads(l) for l in open(os.path.join(out, "data", "steps.jsonl"))]
human = sum(1 for s in steps if s["source"] == "human")
print(f"PC Agent-E on the text desktop, model {model} (GGUF, in-process), seed 0; training data from the 8 recorded tasks: {human} human steps with completed thoughts and {len(steps) - human} boosted ones ({boost} proposals a state, the well-formed kept); {open(os.path.join(out, 'data', 'seconds.txt')).read().strip()} s:\n")
print("| agent | held-out tasks | success | steps per task | trained on | seconds |")
print("|---|---:|---:|---:|---|---:|")
for name, label, trained in (("base", "base model", "–"), ("human", "LoRA, human steps only", f"{human} rows"), ("all", "LoRA, human + boosted steps", f"{len(steps)} rows")):
    m = json.load(open(os.path.join(out, f"agent-{name}", "metrics.json")))["overall"]
    secs = open(os.path.join(out, f"agent-{name}", "seconds.txt")).read().strip()
    print(f"| {label} | {m['records']} | {m['success']:.0%} | {m['steps']:.1f} | {trained} | {secs} |")
PY
