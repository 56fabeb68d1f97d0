# Sourced by every evals/*/run.sh: goes to the repository, installs the models (MODEL, default
# Qwen2.5-Coder-0.5B; MODELS_EXTRA for more, e.g. --embed), builds the release binary into
# $retort, and defines `seconds START` (seconds since START, a `date +%s.%N`).
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
MODEL="${MODEL:-qwen2.5-coder-0.5b}"
# shellcheck disable=SC2086
scripts/setup-models.sh ${MODELS_EXTRA:-} $([ "$MODEL" = smollm2-135m ] || echo --all) >/dev/null
RUSTFLAGS="$("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli >/dev/null
retort="$repo/target/release/retort"
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:--1}"
seconds() { python3 -c "import time; print(round(time.time() - $1))"; }
