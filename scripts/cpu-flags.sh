#!/usr/bin/env bash
# Prints the rustc flag that release builds use for this machine's CPU: `-C target-cpu=native`
# (llama.cpp's build then compiles ggml with -march=native), except where the CPU lists AMX.
# There ggml's native build takes the matmuls into its AMX kernels, and on a VM whose
# /proc/cpuinfo lists amx_tile the local model's first matmul died with SIGSEGV (in
# ggml_backend_amx_mul_mat); x86-64-v4 (AVX-512) or x86-64-v3 (AVX2) keeps the vector
# instructions without AMX. Run by scripts/main.sh, scripts/recipes-local.sh and bench/*.sh.
if grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
    if grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo && grep -qw avx512dq /proc/cpuinfo; then
        echo "-C target-cpu=x86-64-v4"
    else
        echo "-C target-cpu=x86-64-v3"
    fi
else
    echo "-C target-cpu=native"
fi
