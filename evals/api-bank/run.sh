#!/usr/bin/env bash
# API-Bank level 1 on the local model: exact call accuracy over the 64 calls of the 40 dialogues,
# without examples and with 2 dialogues written by the api-bank recipe (GEN_DOMAINS domains) as examples.
# Usage: evals/api-bank/run.sh   (MODEL=qwen2.5-coder-0.5b GEN_DOMAINS=4 OUT=target/evals/api-bank)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
GEN_DOMAINS="${GEN_DOMAINS:-4}"
OUT="${OUT:-$repo/target/evals/api-bank}"
OUT="$(abspath "$OUT")"
start=$(date +%s.%N)
"$retort" run evals/api-bank/level1.yaml --model "$MODEL" --out "$OUT/level1" --quiet >/dev/null
echo "$(seconds "$start")" > "$OUT/level1/seconds.txt"
start=$(date +%s.%N)
"$retort" run api-bank --backend local --model "$MODEL" --set "vars.domains=$GEN_DOMAINS" --out "$OUT/generated" --quiet >/dev/null
echo "generated: $(wc -l < "$OUT/generated/records.jsonl") dialogues from $GEN_DOMAINS domains in $(seconds "$start") s" >&2
start=$(date +%s.%N)
"$retort" run evals/api-bank/level1.yaml --model "$MODEL" --set vars.examples=true \
    --set "steps[1].sample.from=$OUT/generated/records.jsonl" --out "$OUT/level1-examples" --quiet >/dev/null
echo "$(seconds "$start")" > "$OUT/level1-examples/seconds.txt"
python3 - "$OUT" "$MODEL" <<'PY'
import json, os, sys
out, model = sys.argv[1], sys.argv[2]
print(f"API-Bank level 1 (64 calls of 40 dialogues), model {model}, greedy, seed 0:\n")
print("| prompt | calls | exact call accuracy | verdicts | seconds |")
print("|---|---:|---:|---|---:|")
for name, label in (("level1", "no examples"), ("level1-examples", "2 generated dialogues as examples")):
    m = json.load(open(os.path.join(out, name, "metrics.json")))
    by = ", ".join(f"{k} {v['records']}" for k, v in sorted(m.get("by", {}).items(), key=lambda kv: -kv[1]["records"]))
    secs = open(os.path.join(out, name, "seconds.txt")).read().strip()
    print(f"| {label} | {m['overall']['records']} | {m['overall']['accuracy']:.1%} | {by} | {secs} |")
PY
