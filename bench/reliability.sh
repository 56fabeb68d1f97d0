#!/usr/bin/env bash
# The reliability figures of bench/RELIABILITY.md: every built-in recipe by --base-url, N
# records at 0/10/30% mixed faults, 20 kill -9 at random points, two runs on one directory.
# Builds the release binaries, then runs bench/reliability.py (standard library only).
#
#   bench/reliability.sh                                  # everything (about 5 minutes on 2 CPUs)
#   bench/reliability.sh --scenarios faults --records 1000
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# The same flags as bench/run.sh, so the two share one release build.
RUSTFLAGS="$("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli -p retort-mock
exec python3 bench/reliability.py --bin "$repo/target/release" "$@"
