#!/usr/bin/env bash
# The main job: set up, build, and run the quickstart recipe offline on the in-process default
# model (SmolLM2-135M-Instruct through llama.cpp). No server, no network beyond the set-up.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/setup.sh
# llama.cpp runs several times faster with the CPU's vector instructions; the binary is built for this machine.
RUSTFLAGS="${RUSTFLAGS:-} $("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli
out="${1:-runs/quickstart-local}"
./target/release/retort run examples/quickstart/recipe.yaml --out "$out" --backend local --report
echo
echo "data: $out/data.jsonl and $out/data.parquet (lineage in $out/data.lineage.jsonl, card in $out/README.md, report in $out/report.html)"
