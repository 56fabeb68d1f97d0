#!/usr/bin/env bash
# The trainer benchmark: does the data train, and how fast does the built-in trainer train?
#
# 1. Makes N_TRAIN training and N_HELDOUT held-out arithmetic word problems (bench/train/problems.py).
# 2. Held-out accuracy of the base model (bench/train/eval.yaml: the question alone, greedy).
# 3. Runs the built-in STaR recipe for ROUNDS rounds with the built-in LoRA trainer on the
#    training problems, and measures held-out accuracy after every round.
# 4. Runs SPIN for one round (the problems' gold rationales against the model's own answers)
#    and measures the held-out log-probability margin of gold over the base model's answer.
# 5. Trains the same rows with the same settings in PyTorch + PEFT (bench/train-peer-setup.sh
#    makes its virtual environment; PEER=0 skips it) and compares tokens/s.
# Writes bench/TRAIN.md. A benchmark, not a test: it takes long on 2 cores.
#
# Usage: bench/train.sh   (N_TRAIN=200 N_HELDOUT=300 ROUNDS=3 N_SPIN=200 THREADS=2 PEER=1 MODEL=smollm2-135m
#                          PARTS="star spin speed" OUT=bench/TRAIN.md STAR_STEPS= KEEP=0)
# STAR_STEPS=N trains N steps in STaR's first round and 20% more in each next one (the paper's
# schedule has 40); KEEP=1 keeps the work folder, so evaluations already answered are reused
# from their run stores.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
N_TRAIN="${N_TRAIN:-200}"
N_HELDOUT="${N_HELDOUT:-300}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-2}"
PEER="${PEER:-1}"
N_SPIN="${N_SPIN:-$N_TRAIN}"
STAR_STEPS="${STAR_STEPS:-}"
KEEP="${KEEP:-0}"
# Which parts run: STaR's accuracy rounds, SPIN's margin, the side-by-side throughput.
PARTS="${PARTS:-star spin speed}"
OUT="${OUT:-bench/TRAIN.md}"
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# The local model: smollm2-135m (the default) or qwen2.5-coder-0.5b (scripts/setup.sh --all).
MODEL="${MODEL:-smollm2-135m}"
case "$MODEL" in
    smollm2-135m) model_file=smollm2-135m-instruct.q4_1.gguf ;;
    qwen2.5-coder-0.5b) model_file=qwen2.5-coder-0.5b-instruct.q4_k_m.gguf ;;
    *) echo "train-bench: MODEL is smollm2-135m or qwen2.5-coder-0.5b, not $MODEL" >&2; exit 2 ;;
esac
scripts/setup-models.sh $([ "$MODEL" = smollm2-135m ] || echo --all) >/dev/null
RUSTFLAGS="$("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli >/dev/null
retort="$repo/target/release/retort"
work="$repo/target/bench/train"
[ "$KEEP" = 1 ] || rm -rf "$work"
rm -rf "$work/star" "$work/spin" "$work/speed" "$work"/eval-star-*
mkdir -p "$work"
python3 bench/train/problems.py "$work/train.jsonl" "$N_TRAIN" "$work/heldout.jsonl" "$N_HELDOUT"
cp bench/train/eval.yaml bench/train/eval-fewshot.yaml recipes/star/data/fewshot.jsonl "$work/"
export RAYON_NUM_THREADS="$THREADS"
# As the engine starts the trainer (crates/retort-engine/src/steps/train.rs).
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:--1}"

# An evaluation that does not run stops the benchmark (it once printed 0% for a refused run).
accuracy() { # NAME MODEL [EVAL]
    if ! "$retort" run "$work/${3:-eval}.yaml" --out "$work/eval-$1" --model "$2" --quiet >"$work/eval-$1.log" 2>&1; then
        echo "train-bench: the evaluation $1 failed:" >&2
        tail -5 "$work/eval-$1.log" >&2
        return 1
    fi
    python3 - "$work/eval-$1/data.jsonl" "$N_HELDOUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(sum(1 for r in rows if r.get("correct") is True) / int(sys.argv[2]))
PY
}

echo "train-bench: base model accuracy" >&2
base_acc=$(accuracy base "$MODEL")
echo "round 0 $base_acc" > "$work/accuracy.txt"
star_seconds=0
model="$repo/models/$model_file"
if part star; then
echo "train-bench: base model accuracy with STaR's few-shot prompt" >&2
few=$(accuracy base-fewshot "$MODEL" eval-fewshot)
echo "$few" > "$work/accuracy-fewshot.txt"

echo "train-bench: STaR, $ROUNDS rounds with the built-in trainer" >&2
start=$(date +%s.%N)
echo "$start" > "$work/star-start.txt"
star_steps=()
if [ -n "$STAR_STEPS" ]; then
    star_steps=(--set "steps[3].repeat.steps[6].train.settings.max_steps=\"{{ ($STAR_STEPS * 1.2 ** (round - 1)) | int }}\"")
fi
"$retort" run star --backend local --model "$MODEL" --out "$work/star" --quiet "${star_steps[@]}" \
    --set vars.trainer=lora --set "vars.rounds=$ROUNDS" --set "steps[0].load.path=$work/train.jsonl" >/dev/null
star_seconds=$(python3 -c "import time; print(round(time.time() - $start, 1))")
for round in $(seq 1 "$ROUNDS"); do
    adapter="$work/star/rounds/round-$round/adapter.gguf"
    if [ -f "$adapter" ]; then
        acc=$(accuracy "star-$round" "$MODEL+lora:$adapter")
        echo "round $round $acc" >> "$work/accuracy.txt"
    fi
done
fi

if part spin; then
echo "train-bench: SPIN, one round" >&2
spin_start=$(date +%s.%N)
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
with open(f"{work}/spin-train.jsonl", "w") as f:
    for line in open(f"{work}/train.jsonl"):
        row = json.loads(line)
        f.write(json.dumps({"instruction": row["question"], "input": "", "output": row["answer"]}) + "\n")
# Held-out pairs: the gold rationale over the base model's own answer to the question.
base = {}
for line in open(f"{work}/eval-base/data.jsonl"):
    row = json.loads(line)
    base[row["question"]] = row.get("rationale") or ""
with open(f"{work}/heldout-pairs.jsonl", "w") as f:
    for line in open(f"{work}/heldout.jsonl"):
        row = json.loads(line)
        own = base.get(row["question"], "").strip()
        if own and own != row["answer"].strip():
            f.write(json.dumps({"prompt": row["question"], "chosen": row["answer"], "rejected": own}) + "\n")
PY
"$retort" run spin --backend local --model "$MODEL" --out "$work/spin" --quiet --limit "$N_SPIN" \
    --set vars.trainer=lora --set "steps[0].load.path=$work/spin-train.jsonl" --set "steps[2].repeat.rounds=1" >/dev/null
spin_seconds=$(python3 -c "import time; print(round(time.time() - $spin_start, 1))")
echo "$spin_seconds" > "$work/spin-seconds.txt"
"$retort" __logprobs "$model" - "$work/heldout-pairs.jsonl" > "$work/margins-base.jsonl"
"$retort" __logprobs "$model" "$work/spin/rounds/round-1/adapter.gguf" "$work/heldout-pairs.jsonl" > "$work/margins-spin.jsonl"
fi

if part speed && part star; then
echo "train-bench: trainer throughput, retort and PyTorch + PEFT" >&2
peer_rows="$work/star/rounds/round-1/data.jsonl"
steps=10
cat > "$work/speed-spec.json" <<JSON
{"model": "$model", "data": "$peer_rows", "out": "$work/speed",
 "settings": {"max_steps": $steps, "batch_size": 8, "rank": 8, "alpha": 16, "learning_rate": 0.0002, "threads": $THREADS}}
JSON
"$retort" __train "$work/speed-spec.json" | grep '"report"' > "$work/speed-retort.json"
if [ "$PEER" = 1 ]; then
    bench/train-peer-setup.sh >&2
    bench/.venv-train/bin/python bench/train/peer.py "$model" "$peer_rows" "$steps" 8 8 16 0.0002 "$THREADS" > "$work/speed-peer.json"
fi
fi
MODEL="$MODEL" python3 bench/train/report.py "$work" "$star_seconds" > "$OUT"
cat "$OUT"
