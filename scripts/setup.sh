#!/usr/bin/env bash
# Installs what retort needs on a fresh machine: system packages for building llama.cpp and
# for the trainer's BLAS,
# and the local models (scripts/setup-models.sh). Safe to run again: it skips what is there.
#
# Usage: scripts/setup.sh [--all]   (--all also fetches Qwen2.5-Coder-0.5B)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_packages=()
command -v cmake >/dev/null 2>&1 || need_packages+=(cmake)
# bindgen needs libclang itself (libclang.so or libclang-N.so), not libclang-cpp, which some images carry alone.
have_libclang() {
    local f
    for f in /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
             /usr/lib/*-linux-gnu/libclang.so* /usr/lib/*-linux-gnu/libclang-[0-9]*.so*; do
        [ -e "$f" ] && return 0
    done
    return 1
}
if ! have_libclang; then
    need_packages+=(libclang-dev)
fi
command -v python3 >/dev/null 2>&1 || need_packages+=(python3 python3-pip)
# The built-in trainer's matrix products (crates/retort-train/src/blas.rs loads it at run time;
# without it the trainer runs on candle's own, slower matmul).
optional_packages=()
ls /usr/lib/*-linux-gnu/libopenblas.so.0 >/dev/null 2>&1 || optional_packages+=(libopenblas0-pthread)
if [ "${#need_packages[@]}" -gt 0 ]; then
    echo "setup: installing ${need_packages[*]}" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi
if [ "${#optional_packages[@]}" -gt 0 ]; then
    # Optional: without it the trainer runs on candle's matmul, slower; a failed install says so.
    echo "setup: installing ${optional_packages[*]}" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    { $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${optional_packages[@]}" >/dev/null; } \
        || echo "setup: could not install ${optional_packages[*]}: the trainer will use candle's slower matmul" >&2
fi

models_args=(--embed)
[ "${1:-}" = "--all" ] && models_args=(--all)
"$repo/scripts/setup-models.sh" "${models_args[@]}"
