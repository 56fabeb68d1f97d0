#!/usr/bin/env bash
# GPT4Tools' evaluations on the local model, figures printed for docs/evals.md:
# 1. unseen tools: the gpt4tools recipe with `vars.split: unseen` writes the held-out set from
#    LIMIT scenes (TEACHER as the teacher), and the model answers it (evals/gpt4tools/unseen.yaml):
#    SR_t, SR_act, SR_args, SR;
# 2. BFCL irrelevance (IRRELEVANT of the 240) in GPT4Tools' format, without examples and with 3
#    of the recipe's no-tool negatives (training split, LIMIT scenes) as examples.
#
# Usage: evals/gpt4tools/run.sh   (MODEL=qwen2.5-coder-0.5b TEACHER=$MODEL LIMIT=10 IRRELEVANT=60 OUT=target/evals/gpt4tools)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
TEACHER="${TEACHER:-$MODEL}"
LIMIT="${LIMIT:-10}"
IRRELEVANT="${IRRELEVANT:-60}"
OUT="${OUT:-$repo/target/evals/gpt4tools}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
"$retort" run gpt4tools --backend local --model "$TEACHER" --limit "$LIMIT" --set vars.split=unseen --out "$OUT/unseen-set" --quiet >/dev/null
"$retort" run evals/gpt4tools/unseen.yaml --model "$MODEL" --set "steps[0].load.path=$OUT/unseen-set/records.jsonl" --out "$OUT/unseen" --quiet >/dev/null
"$retort" run gpt4tools --backend local --model "$TEACHER" --limit "$LIMIT" --out "$OUT/train-set" --quiet >/dev/null
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
with open(os.path.join(out, "negatives.jsonl"), "w") as f:
    for row in map(json.loads, open(os.path.join(out, "train-set", "records.jsonl"))):
        if row["negative"]:
            f.write(json.dumps({"question": row["instruction"], "functions": [], "answer": row["response"].split("AI: ", 1)[-1]}) + "\n")
PY
"$retort" run evals/irrelevance/bfcl.yaml --model "$MODEL" --limit "$IRRELEVANT" --set vars.format=gpt4tools --out "$OUT/irrelevance" --quiet >/dev/null
if [ -s "$OUT/negatives.jsonl" ]; then
    "$retort" run evals/irrelevance/bfcl.yaml --model "$MODEL" --limit "$IRRELEVANT" --set vars.format=gpt4tools --set vars.examples=true \
        --set "steps[1].sample.from=$OUT/negatives.jsonl" --out "$OUT/irrelevance-negatives" --quiet >/dev/null
fi
python3 - "$OUT" "$MODEL" "$TEACHER" <<'PY'
import json, os, sys
out, model, teacher = sys.argv[1], sys.argv[2], sys.argv[3]
m = json.load(open(os.path.join(out, "unseen", "metrics.json")))
o = m["overall"]
print(f"GPT4Tools, unseen tools: {o['records']} held-out samples written by {teacher} from the 8 unseen tools; {model} answering (greedy, seed 0):\n")
print("| samples | SR_t (use a tool or not) | SR_act (the tool) | SR_args (its inputs) | SR (all) |")
print("|---:|---:|---:|---:|---:|")
print(f"| {o['records']} | {o['sr_t']:.1%} | {o['sr_act']:.1%} | {o['sr_args']:.1%} | {o['sr']:.1%} |")
for kind, v in sorted(m.get("by", {}).items()):
    print(f"| {kind}: {v['records']} | {v['sr_t']:.1%} | {v['sr_act']:.1%} | {v['sr_args']:.1%} | {v['sr']:.1%} |")
print(f"\nBFCL irrelevance in GPT4Tools' format, {model}:\n")
print("| examples | requests | no-call accuracy |")
print("|---|---:|---:|")
for name, label in (("irrelevance", "none"), ("irrelevance-negatives", "3 of the recipe's no-tool negatives")):
    path = os.path.join(out, name, "metrics.json")
    if os.path.exists(path):
        o = json.load(open(path))["overall"]
        print(f"| {label} | {o['records']} | {o['no_call_accuracy']:.1%} |")
PY
