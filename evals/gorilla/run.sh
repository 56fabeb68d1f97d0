#!/usr/bin/env bash
# Gorilla's evaluations on the local model, figures printed as Markdown tables for docs/evals.md.
#
# 1. The gorilla recipe generates (instruction, API call) pairs from the TorchHub documents
#    (GEN_LIMIT documents, the model MODEL).
# 2. APIBench TorchHub (186 held-out questions, LIMIT of them): the model's answers with no
#    document, with the BM25-retrieved document, and with 3 of the generated pairs as examples;
#    accuracy (APIBench's rule: the API found has the question's domain), the exact API, and
#    the hallucination rate (Gorilla's AST matcher finds no API of the database).
# 3. BFCL simple_python (400, LIMIT of them): AST accuracy of the calls the model writes as the
#    recipe's labeller does (question and function document in, the call out).
#
# Usage: evals/gorilla/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT= GEN_LIMIT=20 OUT=target/evals/gorilla)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-}"
GEN_LIMIT="${GEN_LIMIT:-20}"
OUT="${OUT:-$repo/target/evals/gorilla}"
OUT="$(abspath "$OUT")"
limit=()
[ -n "$LIMIT" ] && limit=(--limit "$LIMIT")
mkdir -p "$OUT"

start=$(date +%s.%N)
"$retort" run gorilla --backend local --model "$MODEL" --limit "$GEN_LIMIT" --out "$OUT/generated" --quiet >/dev/null
echo "generated: $(wc -l < "$OUT/generated/records.jsonl") pairs from $GEN_LIMIT documents in $(seconds "$start") s" >&2
for mode in none bm25 examples; do
    start=$(date +%s.%N)
    set_examples=()
    [ "$mode" = examples ] && set_examples=(--set "steps[3].sample.from=$OUT/generated/records.jsonl")
    "$retort" run evals/gorilla/apibench.yaml --model "$MODEL" "${limit[@]}" --set "vars.mode=$mode" "${set_examples[@]}" \
        --out "$OUT/apibench-$mode" --quiet >/dev/null
    echo "$(seconds "$start")" > "$OUT/apibench-$mode/seconds.txt"
done
start=$(date +%s.%N)
"$retort" run evals/gorilla/bfcl.yaml --model "$MODEL" "${limit[@]}" --out "$OUT/bfcl" --quiet >/dev/null
echo "$(seconds "$start")" > "$OUT/bfcl/seconds.txt"

python3 - "$OUT" "$MODEL" <<'PY'
import json, os, sys
out, model = sys.argv[1], sys.argv[2]
def load(name):
    return json.load(open(os.path.join(out, name, "metrics.json")))
def secs(name):
    return open(os.path.join(out, name, "seconds.txt")).read().strip()
print(f"APIBench TorchHub, model {model} (GGUF, in-process), greedy, seed 0:\n")
print("| prompt | questions | accuracy (APIBench: the API's domain) | exact API | hallucination | no api_call | seconds |")
print("|---|---:|---:|---:|---:|---:|---:|")
names = {"none": "question alone", "bm25": "with the BM25-retrieved document", "examples": "with 3 generated pairs as examples"}
for mode in ("none", "bm25", "examples"):
    m = load(f"apibench-{mode}")["overall"]
    print(f"| {names[mode]} | {m['records']} | {m['accuracy']:.1%} | {m['correct_api']:.1%} | {m['hallucination']:.1%} | {m['no_api_call']:.1%} | {secs('apibench-' + mode)} |")
b = load("bfcl")
print(f"\nBFCL simple_python, model {model}: AST accuracy {b['overall']['accuracy']:.1%} of {b['overall']['records']} questions ({secs('bfcl')} s); verdicts: "
      + ", ".join(f"{k} {v['records']}" for k, v in sorted(b.get('by', {}).items(), key=lambda kv: -kv[1]['records'])))
PY
