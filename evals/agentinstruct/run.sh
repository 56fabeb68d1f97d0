#!/usr/bin/env bash
# AgentInstruct on the local model: the recipe's three flows over LIMIT seeds (half text, half
# code), with every item kept (vars.verify=false) so that the checks can be counted:
# - text: the share of multiple-choice items whose key the teacher's independent answer agrees with;
# - code: the share of problems whose teacher solution passes the item's own tests in the sandbox;
# - diversity: mean cosine similarity (all-MiniLM-L6-v2) of each text to the most similar earlier
#   one, over the instructions (one per seed) and over the seeds they came from, and each
#   instruction's similarity to its own seed.
# Figures printed as Markdown for docs/evals.md.
#
# Usage: evals/agentinstruct/run.sh   (MODEL=qwen2.5-coder-0.5b LIMIT=16 OUT=target/evals/agentinstruct)
set -euo pipefail
MODELS_EXTRA="${MODELS_EXTRA:---embed}"
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
LIMIT="${LIMIT:-16}"
OUT="${OUT:-$repo/target/evals/agentinstruct}"
OUT="$(abspath "$OUT")"
mkdir -p "$OUT"
start=$(date +%s.%N)
"$retort" run agentinstruct --model "$MODEL" --set "llms.teacher.model=$MODEL" --set vars.verify=false \
    --limit "$LIMIT" --out "$OUT/run" --quiet >/dev/null || true
seconds "$start" > "$OUT/run/seconds.txt"
# The texts to compare: the first instruction of each seed, and those seeds.
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
seeds = {}
for line in open("recipes/agentinstruct/data/seeds.jsonl"):
    row = json.loads(line)
    seeds[row["seed_id"]] = row
firsts = {}
for line in open(os.path.join(out, "run", "records.jsonl")):
    row = json.loads(line)
    firsts.setdefault(row["seed_id"], row)
with open(os.path.join(out, "instructions.jsonl"), "w") as f, open(os.path.join(out, "seeds.jsonl"), "w") as g, \
        open(os.path.join(out, "pairs.jsonl"), "w") as h:
    for seed_id, row in firsts.items():
        kind = seeds[seed_id]["kind"]
        f.write(json.dumps({"text": row["instruction"], "group": kind}) + "\n")
        g.write(json.dumps({"text": seeds[seed_id]["text"], "group": kind}) + "\n")
        h.write(json.dumps({"text": row["instruction"], "seed": seeds[seed_id]["text"], "group": kind}) + "\n")
PY
for set in instructions seeds; do
    "$retort" run evals/agentinstruct/diversity.yaml --set "steps[0].load.path=$OUT/$set.jsonl" --out "$OUT/diversity-$set" --quiet >/dev/null
done
"$retort" run evals/agentinstruct/to_seed.yaml --set "steps[0].load.path=$OUT/pairs.jsonl" --out "$OUT/to-seed" --quiet >/dev/null
python3 - "$OUT" "$MODEL" "$LIMIT" <<'PY'
import collections, json, os, sys
out, model, limit = sys.argv[1], sys.argv[2], sys.argv[3]
run = os.path.join(out, "run")
records = [json.loads(l) for l in open(os.path.join(run, "records.jsonl"))]
failed = [json.loads(l) for l in open(os.path.join(run, "failed.jsonl"))] if os.path.exists(os.path.join(run, "failed.jsonl")) else []
dropped = [json.loads(l) for l in open(os.path.join(run, "dropped.jsonl"))] if os.path.exists(os.path.join(run, "dropped.jsonl")) else []
by = collections.defaultdict(list)
for r in records:
    by[r["skill"]].append(r)
div = {s: json.load(open(os.path.join(out, f"diversity-{s}", "diversity.json")))["by"] for s in ("instructions", "seeds")}
to_seed = json.load(open(os.path.join(out, "to-seed", "to_seed.json")))["by"]
secs = open(os.path.join(run, "seconds.txt")).read().strip()
print(f"AgentInstruct, {limit} seeds (alternately text and code), model {model} (GGUF, in-process) as every agent and as the teacher, seed 0, {secs} s:\n")
print("| skill | items written | kept whole after refinement | independent check agrees | instructions' nearest-neighbour cosine | seeds' nearest-neighbour cosine | instruction to its own seed |")
print("|---|---:|---:|---:|---:|---:|---:|")
for skill, kind, check in (("reading comprehension", "text", "teacher's answer = key"), ("coding", "code", "teacher's solution passes the item's tests")):
    rows = by.get(skill, [])
    agree = sum(1 for r in rows if r["agrees"])
    share = f"{agree}/{len(rows)} ({agree / len(rows):.0%}; {check})" if rows else "–"
    written = len(rows) + sum(1 for d in dropped if d.get("record", {}).get("kind") == kind) + sum(1 for d in failed if d.get("record", {}).get("kind") == kind and "item" in d.get("record", {}))
    d_i = div["instructions"].get(kind, {}).get("nearest")
    d_s = div["seeds"].get(kind, {}).get("nearest")
    t_s = to_seed.get(kind, {}).get("similarity")
    f = lambda x: f"{x:.3f}" if x is not None else "–"
    print(f"| {skill} | {written} | {len(rows)} | {share} | {f(d_i)} | {f(d_s)} | {f(t_s)} |")
reasons = collections.Counter()
for d in failed + dropped:
    reasons[(d["step"], d["reason"].split(" (")[0][:70])] += 1
print("\nWhere the rest went (step: reason × count):\n")
for (step, reason), n in reasons.most_common(8):
    print(f"- {step}: {reason} × {n}")
PY
