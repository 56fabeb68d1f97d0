#!/usr/bin/env bash
# Smoke test of the TRL trainer path (`--set vars.trainer=trl`), on CPU: installs torch,
# transformers, peft, trl, datasets and gguf into bench/.venv-train, then runs a two-round
# recipe on the local model whose round 1 trains two steps of TRL's SFT trainer (PEFT LoRA on
# SmolLM2, loaded from the same GGUF file) and writes a GGUF adapter that round 2 answers with.
# Not part of CI (torch is large). Prints the adapter and round 2's lineage model.
#
# Usage: bench/trl-smoke.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/setup-models.sh >/dev/null
TRL=1 bench/train-peer-setup.sh >&2
cargo build --locked --workspace --all-targets >/dev/null  # the test command's build: nothing to rebuild after it
work="$repo/target/bench/trl-smoke"
rm -rf "$work"
mkdir -p "$work"
cat > "$work/recipe.yaml" <<'YAML'
name: trl-smoke
seed: 1
vars:
  trainer: trl
llm: {backend: local, model: smollm2-135m, max_sequences: 2}
steps:
  - load:
      records:
        - {q: "What is the secret word?", target: "The secret word is pineapple."}
        - {q: "Tell me the secret word.", target: "The secret word is pineapple."}
  - repeat:
      rounds: 2
      feed: input
      steps:
        - generate: {prompt: "{{ q }}", into: answer, temperature: 0.0, max_tokens: 24, allow_truncated: true}
        - train:
            command: "{{ vars.trainer }}"
            data: {shape: sft, prompt: q, response: target}
YAML
export RETORT_PYTHON="$repo/bench/.venv-train/bin/python" RETORT_TRL_MAX_STEPS=2
target/debug/retort run "$work/recipe.yaml" --out "$work/out"
adapter="$work/out/rounds/model-round-1/adapter.gguf"
test -s "$adapter" || { echo "trl-smoke: no adapter at $adapter" >&2; exit 1; }
python3 - "$work/out/data.lineage.jsonl" <<'PY'
import json, sys
models = sorted({entry["model"] for line in open(sys.argv[1]) for entry in json.loads(line)["lineage"] if "model" in entry})
print("trl-smoke: models that answered:", *models, sep="\n  ")
assert any("+lora:" in m for m in models), "round 2 did not answer with the TRL adapter"
PY
echo "trl-smoke: ok ($adapter, $(stat -c %s "$adapter") bytes)"
