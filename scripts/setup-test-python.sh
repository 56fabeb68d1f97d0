#!/usr/bin/env bash
# Makes the Python environment the tests read outputs with: Hugging Face `datasets` (and
# pyarrow), to check that every exported file loads as training tools load it.
#
# Where: $RETORT_TEST_VENV if set, else <repo>/.venv-test. Idempotent.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RETORT_TEST_VENV:-$repo/.venv-test}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import datasets" 2>/dev/null; then
    exit 0
fi
if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian ships venv separately.
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
fi
echo "setup: installing datasets into $venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check "datasets>=3" >&2
