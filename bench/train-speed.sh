#!/usr/bin/env bash
# The trainer's throughput beside PyTorch + PEFT, alone (bench/train.sh measures it too, after
# its STaR rounds): the same rows (ROWS GSM8K training questions with their gold rationales, in
# chat form), the same GGUF model, LoRA rank 8 on all 7 weights, alpha 16, batch 8, STEPS steps,
# learning rate 2e-4, THREADS threads. Prints both reports and the ratio of tokens/s.
#
# Usage: bench/train-speed.sh   (ROWS=80 STEPS=10 THREADS=2 PEER=1 REPEAT=2)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
ROWS="${ROWS:-80}"
STEPS="${STEPS:-10}"
THREADS="${THREADS:-2}"
PEER="${PEER:-1}"
REPEAT="${REPEAT:-2}"
scripts/setup-models.sh >/dev/null
RUSTFLAGS="$("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli >/dev/null
retort="$repo/target/release/retort"
model="$repo/models/smollm2-135m-instruct.q4_1.gguf"
work="$repo/target/bench/train-speed"
rm -rf "$work"
mkdir -p "$work"
python3 - "$repo/../shared/data/gsm8k/train_first300.jsonl" "$ROWS" > "$work/rows.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()][: int(sys.argv[2])]
for row in rows:
    print(json.dumps({"messages": [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["answer"]}]}))
PY
cat > "$work/spec.json" <<JSON
{"model": "$model", "data": "$work/rows.jsonl", "out": "$work/retort",
 "settings": {"max_steps": $STEPS, "batch_size": 8, "rank": 8, "alpha": 16, "learning_rate": 0.0002, "threads": $THREADS}}
JSON
export RAYON_NUM_THREADS="$THREADS"
# As the engine starts the trainer (crates/retort-engine/src/steps/train.rs).
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:--1}"
# This machine is a VM: time the hypervisor gave to others ("steal", /proc/stat) is reported
# beside each run, and the runs alternate, REPEAT times each, so both trainers see the same
# weather; the table compares the best run of each.
steal() { awk '/^cpu /{print $9}' /proc/stat; }
: > "$work/runs.jsonl"
for round in $(seq 1 "$REPEAT"); do
    before=$(steal)
    "$retort" __train "$work/spec.json" | grep '"report"' > "$work/retort.json"
    python3 - "$work/retort.json" "$(( $(steal) - before ))" "$round" >> "$work/runs.jsonl" <<'PY2'
import json, sys
r = json.loads(open(sys.argv[1]).read())["report"]
print(json.dumps({"trainer": "retort", "round": int(sys.argv[3]), "tokens_per_second": r["tokens_per_second"], "train_seconds": r["train_seconds"],
                  "steps": r["steps"], "first_loss": r["first_loss"], "last_loss": r["last_loss"], "matmul": r["matmul"], "steal_seconds": int(sys.argv[2]) / 100}))
PY2
    if [ "$PEER" = 1 ]; then
        bench/train-peer-setup.sh >&2
        before=$(steal)
        bench/.venv-train/bin/python bench/train/peer.py "$model" "$work/rows.jsonl" "$STEPS" 8 8 16 0.0002 "$THREADS" > "$work/peer.json" 2>"$work/peer.log"
        python3 - "$work/peer.json" "$(( $(steal) - before ))" "$round" >> "$work/runs.jsonl" <<'PY2'
import json, sys
p = json.loads(open(sys.argv[1]).read())
p.update({"trainer": "pytorch", "round": int(sys.argv[3]), "steal_seconds": int(sys.argv[2]) / 100})
print(json.dumps(p))
PY2
    fi
done
python3 - "$work/runs.jsonl" "$ROWS" "$STEPS" "$THREADS" <<'PY2' | tee bench/TRAIN-SPEED.md
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
print("# The trainer's throughput beside PyTorch + PEFT (`bench/train-speed.sh`)\n")
print(f"SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to f32 by both), {sys.argv[2]} GSM8K training questions with their gold "
      f"rationales, LoRA rank 8 (alpha 16) on all 7 weights, batch 8, {sys.argv[3]} steps, learning rate 2e-4, {sys.argv[4]} threads; "
      "loss on the answer tokens. Runs alternate; steal is the CPU time the VM's host gave to others during the run.\n")
print("```")
for r in runs:
    extra = f", matmul {r['matmul']}" if "matmul" in r else f", torch {r.get('torch')}"
    print(f"{r['trainer']:8} run {r['round']}: {r['tokens_per_second']:.0f} tokens/s, {r['train_seconds']:.1f} s in {r['steps']} steps, "
          f"loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}, steal {r['steal_seconds']:.1f} s{extra}")
best = {t: max((r for r in runs if r["trainer"] == t), key=lambda r: r["tokens_per_second"]) for t in {r["trainer"] for r in runs}}
if "pytorch" in best:
    print(f"best of each: retort {best['retort']['tokens_per_second']:.0f}, pytorch {best['pytorch']['tokens_per_second']:.0f} tokens/s: "
          f"ratio {best['retort']['tokens_per_second'] / best['pytorch']['tokens_per_second']:.2f}x")
print("```")
PY2
