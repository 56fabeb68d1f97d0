#!/usr/bin/env bash
# Builds q4_1_gemm_test.cpp against the llama.cpp sources that llama-cpp-sys-2 vendors and runs
# it: the tiled Q4_1 kernel must equal llama.cpp's row-at-a-time product bit for bit. Needs a
# C++ compiler (llama.cpp's build needs one too); on a CPU without AVX2, F16C and FMA the kernel
# is not compiled in, and the test says so and passes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
for flag in avx2 f16c fma; do
  if ! grep -qw "$flag" /proc/cpuinfo 2>/dev/null; then
    echo "q4_1_gemm: skipped, this CPU has no $flag (the kernel is compiled out there)"
    exit 0
  fi
done
sys="$(cd "$repo" && cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, os, sys
for package in json.load(sys.stdin)["packages"]:
    if package["name"] == "llama-cpp-sys-2":
        print(os.path.dirname(package["manifest_path"]))
')"
ggml="$sys/llama.cpp/ggml"
[ -d "$ggml/src/ggml-cpu" ] || { echo "q4_1_gemm: llama.cpp sources not found under $sys" >&2; exit 1; }
out="$repo/target/q4_1_gemm"
mkdir -p "$out"
"${CXX:-c++}" -std=c++17 -O3 -mavx2 -mf16c -mfma -w -I"$ggml/include" -I"$ggml/src" -I"$ggml/src/ggml-cpu" \
  "$here/q4_1_gemm_test.cpp" "$here/q4_1_gemm.cpp" -o "$out/q4_1_gemm_test"
"$out/q4_1_gemm_test"
