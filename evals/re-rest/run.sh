#!/usr/bin/env bash
# Re-ReST's evaluation on the local model: the re-rest recipe on HumanEval (LIMIT of its 164
# problems, 3 samples each at temperature 0.8, the same model as the reflector): pass@1 of the
# samples (the share that pass the problem's unit tests) and the share of failed samples that
# the reflection with the tests' feedback fixed. Figures printed as Markdown for docs/evals.md.
#
# Usage: evals/re-rest/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=164 OUT=target/evals/re-rest)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-164}"
OUT="${OUT:-$repo/target/evals/re-rest}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
start=$(date +%s.%N)
"$retort" run re-rest --model "$MODEL" --set "llms.reflector.model=$MODEL" --set "steps[0].load.path=$repo/evals/re-rest/data/humaneval.jsonl" \
    --limit "$LIMIT" --out "$OUT/run" --quiet >/dev/null
elapsed=$(seconds "$start")
python3 - "$OUT/run" "$MODEL" "$LIMIT" "$elapsed" <<'PY'
import json, os, sys
run, model, limit, elapsed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def rows(name):
    path = os.path.join(run, name)
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []
kept = rows("records.jsonl")
dropped = [r.get("record", r) for r in rows("dropped.jsonl")]
failed = rows("failed.jsonl")
# Every sample ends kept (sampled or reflected), dropped (the filter, or a duplicate of a kept
# one) or failed; kept rows say their source, dropped ones carry their verdicts.
samples = kept + [r for r in dropped if "passed" in r]
def passed(r):
    return r.get("source") == "sampled" or (r.get("source") is None and r.get("passed") is True)
def reflected_ok(r):
    return r.get("source") == "reflected" or (r.get("source") is None and r.get("reflected_passed") is True)
sampled_pass = sum(1 for r in samples if passed(r))
wrong = [r for r in samples if not passed(r)]
fixed = sum(1 for r in wrong if reflected_ok(r))
problems_solved = len({r["task_id"] for r in kept})
print(f"HumanEval, the re-rest recipe, model {model} (GGUF, in-process), 3 samples per problem at temperature 0.8, reflector greedy, seed 0, {elapsed} s:\n")
print("| problems | samples | pass@1 of the samples | failed samples fixed by reflection | problems with a kept solution | failed records |")
print("|---:|---:|---:|---:|---:|---:|")
n = len(samples)
print(f"| {limit} | {n} | {sampled_pass / n if n else 0:.1%} | {fixed}/{len(wrong)} ({fixed / len(wrong) if wrong else 0:.1%}) | {problems_solved} | {len(failed)} |")
PY
