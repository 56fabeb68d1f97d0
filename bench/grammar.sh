#!/usr/bin/env bash
# Constrained output on the local model: the grammar asked about the picked token first
# (retort's order, and llama.cpp's server's) against the grammar applied to the whole row of
# logits before every pick (llama.cpp's grammar_first = true, retort's order before; restored by
# RETORT_GRAMMAR_FIRST=1), side by side in one run, on the same binary, model and threads.
#
#   bench/grammar.sh                         # both models (about 15 minutes on 2 CPUs)
#   bench/grammar.sh --models smollm2-135m
#   bench/grammar.sh --models qwen2.5-coder-0.5b --limit 8   # the first 8 topics
#
# Workload: bench/local/json.yaml (24 greedy quiz items held to a JSON schema, then 4 sampled
# items each at temperature 0.7; 120 constrained answers). Prints a Markdown table: wall
# seconds, answers, generated tokens and tokens/s by model and order, and whether the greedy
# answers of the two orders are the same (they must be: the highest logit, when the grammar
# allows it, is the highest allowed one).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
models="smollm2-135m,qwen2.5-coder-0.5b"
work="target/bench/grammar"
limit=()
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --limit) limit=(--limit "$2"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench/grammar.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
retort="${RETORT_BIN:-}"
if [ -z "$retort" ]; then
  scripts/setup.sh >/dev/null
  RUSTFLAGS="$(scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli >/dev/null
  retort="$repo/target/release/retort"
fi
rm -f "$work/measurements.jsonl"
for model in ${models//,/ }; do
  for order in picked-first grammar-first; do
    out="$work/$model-$order"
    rm -rf "$out"
    first=0
    [ "$order" = grammar-first ] && first=1
    start="$(date +%s.%N)"
    RETORT_GRAMMAR_FIRST=$first "$retort" run bench/local/json.yaml --model "$model" --out "$out" --json --quiet "${limit[@]}" \
      --set llm.max_sequences=8 --set llm.threads=2 >"$out.report.json"
    end="$(date +%s.%N)"
    python3 - "$model" "$order" "$start" "$end" "$out.report.json" >>"$work/measurements.jsonl" <<'PY'
import json, sys
model, order, start, end, report = sys.argv[1:]
steps = json.load(open(report))["steps"]
wall = float(end) - float(start)
generated = sum(step["completion_tokens"] for step in steps)
print(json.dumps({"model": model, "order": order, "wall_s": round(wall, 1),
    "answers": sum(step["out"] for step in steps if step["kind"] == "generate"),
    "failed": sum(step["failed"] for step in steps),
    "generated": generated, "tokens_per_s": round(generated / wall, 1)}))
PY
    tail -1 "$work/measurements.jsonl"
  done
done
python3 - "$work" <<'PY'
import json, sys, pathlib
work = pathlib.Path(sys.argv[1])
rows = [json.loads(line) for line in open(work / "measurements.jsonl")]
def greedy(model, order):
    # data.jsonl has a row per sampled item; the greedy item is the same on each of a topic's rows.
    rows = map(json.loads, open(work / f"{model}-{order}" / "data.jsonl"))
    return {row["i"]: json.dumps(row["item"], sort_keys=True) for row in rows}
print("| model | order | wall s | answers | failed | generated tokens | tokens/s | speed-up |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for row in rows:
    base = next(r for r in rows if r["model"] == row["model"] and r["order"] == "grammar-first")
    print(f"| {row['model']} | {row['order']} | {row['wall_s']} | {row['answers']} | {row['failed']} | {row['generated']} | {row['tokens_per_s']} | {base['wall_s'] / row['wall_s']:.2f}x |")
for model in sorted({r["model"] for r in rows}):
    a, b = greedy(model, "picked-first"), greedy(model, "grammar-first")
    same = sum(1 for key in a if b.get(key) == a[key])
    print(f"\n{model}: greedy items the same in both orders: {same} of {len(a)} ({len(b)} in the grammar-first run)")
PY
