#!/usr/bin/env bash
# The test command: set up what the tests need, then build once and run every test.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/setup.sh
scripts/setup-test-python.sh
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
