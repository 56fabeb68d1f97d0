#!/usr/bin/env bash
# The test command: set up what the tests need, check formatting and lints, build once and
# run every test.
#
# The engine's tests run in a cargo invocation of their own: selected alone, the engine links
# retort-llama's client side only (no llama.cpp), so its many test binaries link in seconds;
# with the CLI in the same invocation, cargo would unify features and link llama.cpp into each.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/setup.sh
scripts/setup-test-python.sh
scripts/setup-browser.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked
# The tiled Q4_1 kernel that retort adds to llama.cpp, against llama.cpp's own product.
crates/retort-llama/ggml/test.sh
cargo test --workspace --exclude retort-engine --locked
cargo test -p retort-engine --locked
