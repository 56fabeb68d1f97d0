#!/usr/bin/env bash
# ToRA's evaluations on the local model, figures printed as Markdown for docs/evals.md.
#
# 1. GSM8K test (LIMIT of the first 200 questions): accuracy of tool-integrated reasoning (the
#    tora recipe's loop) against chain-of-thought, on the same model, greedy.
# 2. The tora recipe on GEN_LIMIT GSM8K training questions, with the same model as the teacher:
#    the corpus's yield (kept trajectories per question, sampled and shaped) and the share of
#    wrong answers that output-space shaping rescued (a teacher's completion of one of the
#    prefixes reached the gold answer).
#
# Usage: evals/tora/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=200 GEN_LIMIT=30 OUT=target/evals/tora)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-200}"
GEN_LIMIT="${GEN_LIMIT:-30}"
OUT="${OUT:-$repo/target/evals/tora}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"

for mode in tora cot; do
    start=$(date +%s.%N)
    "$retort" run evals/tora/gsm8k.yaml --model "$MODEL" --limit "$LIMIT" --set "vars.mode=$mode" --out "$OUT/gsm8k-$mode" --quiet >/dev/null
    seconds "$start" > "$OUT/gsm8k-$mode/seconds.txt"
done
start=$(date +%s.%N)
"$retort" run tora --model "$MODEL" --set "llms.teacher.model=$MODEL" --limit "$GEN_LIMIT" --out "$OUT/corpus" --quiet >/dev/null
seconds "$start" > "$OUT/corpus/seconds.txt"

python3 - "$OUT" "$MODEL" "$GEN_LIMIT" <<'PY'
import json, os, sys
out, model, gen_limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
def secs(name):
    return open(os.path.join(out, name, "seconds.txt")).read().strip()
print(f"GSM8K test, model {model} (GGUF, in-process), greedy, seed 0:\n")
print("| method | questions | accuracy | programs per question | questions with a program error | seconds |")
print("|---|---:|---:|---:|---:|---:|")
for mode, name in (("tora", "tool-integrated reasoning (ToRA's loop)"), ("cot", "chain-of-thought, no code")):
    m = json.load(open(os.path.join(out, f"gsm8k-{mode}", "metrics.json")))["overall"]
    print(f"| {name} | {m['records']} | {m['accuracy']:.1%} | {m['programs_per_question']:.2f} | {m['questions_with_a_program_error']:.1%} | {secs('gsm8k-' + mode)} |")
def rows(name):
    path = os.path.join(out, "corpus", name)
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []
def seed(row):
    # "r1-3.2" (round 1, question 3, its third prefix) -> "3"
    name = str(row.get("id", ""))
    if name.startswith("r") and "-" in name:
        name = name.split("-", 1)[1]
    return name.split(".")[0]
kept = rows("records.jsonl")
lineage = rows("records.lineage.jsonl")
for row, line in zip(kept, lineage):
    row["id"] = line["id"]
dropped = [r.get("record", r) | {"id": r["id"]} for r in rows("dropped.jsonl")]
sampled_right = {seed(r) for r in kept if r["source"] == "sampled"}
rescued = {seed(r) for r in kept if r["source"] == "shaped"}
wrong = {seed(r) for r in kept + dropped if r.get("correct") is False}
print(f"\nCorpus from {gen_limit} GSM8K training questions (the tora recipe, teacher = the same model, {secs('corpus')} s): "
      f"{len(kept)} trajectories kept ({len(kept) / gen_limit:.2f} per question): {len(sampled_right)} sampled right, "
      f"{len(kept) - len(sampled_right)} from shaping; shaping rescued {len(rescued)} of {len(wrong)} wrong answers "
      f"({(len(rescued) / len(wrong)) if wrong else 0:.1%}).")
PY
