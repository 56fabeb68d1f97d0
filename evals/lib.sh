# Sourced by every evals/*/run.sh: goes to the repository, installs the models (MODEL, default
# Qwen2.5-Coder-0.5B; MODELS_EXTRA for more, e.g. --embed), builds the release binary into
# $retort (or takes $RETORT_BIN), and defines `seconds START` (seconds since START, a
# `date +%s.%N`) and `abspath PATH`.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
MODEL="${MODEL:-qwen2.5-coder-0.5b}"
# shellcheck disable=SC2086
scripts/setup-models.sh ${MODELS_EXTRA:-} $([ "$MODEL" = smollm2-135m ] || echo --all) >/dev/null
# RETORT_BIN: a retort binary to use instead of building one (a long chain of evaluations
# keeps one binary while the sources change).
if [ -n "${RETORT_BIN:-}" ]; then
    retort="$RETORT_BIN"
else
    RUSTFLAGS="$("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli >/dev/null
    retort="$repo/target/release/retort"
fi
# Paths given relative to where the command was typed, made absolute (they end up in
# recipes' `--set` values, which are read relative to the recipe).
abspath() { realpath -m -- "$1"; }
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:--1}"
seconds() { python3 -c "import time; print(round(time.time() - $1))"; }
