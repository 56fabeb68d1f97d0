#!/usr/bin/env bash
# API-Bank level 1 on the local model: exact call accuracy over the 64 calls of the 40 dialogues.
# Usage: evals/api-bank/run.sh   (MODEL=qwen2.5-coder-0.5b OUT=target/evals/api-bank)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
MODEL="${MODEL:-qwen2.5-coder-0.5b}"
OUT="${OUT:-$repo/target/evals/api-bank}"
scripts/setup-models.sh $([ "$MODEL" = smollm2-135m ] || echo --all) >/dev/null
RUSTFLAGS="$("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli >/dev/null
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:--1}"
start=$(date +%s.%N)
"$repo/target/release/retort" run evals/api-bank/level1.yaml --model "$MODEL" --out "$OUT/level1" --quiet >/dev/null
python3 - "$OUT/level1/metrics.json" "$MODEL" "$(python3 -c "import time; print(round(time.time() - $start))")" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
o = m["overall"]
by = ", ".join(f"{k} {v['records']}" for k, v in sorted(m.get("by", {}).items(), key=lambda kv: -kv[1]["records"]))
print(f"API-Bank level 1, model {sys.argv[2]}: exact call accuracy {o['accuracy']:.1%} of {o['records']} calls ({sys.argv[3]} s); verdicts: {by}")
PY
