#!/usr/bin/env bash
# Installs a headless browser for the page tests (crates/retort-report/tests/browser.rs):
# Chromium and its WebDriver from the system's package manager. Safe to run again. Where it
# cannot install (no apt, no network), it says so and exits 0: the browser tests then skip
# with that message.
set -uo pipefail
have() { command -v "$1" >/dev/null 2>&1; }
if (have chromium || have chromium-browser) && have chromedriver; then
    exit 0
fi
if ! have apt-get; then
    echo "setup-browser: no apt-get here; the browser tests will be skipped" >&2
    exit 0
fi
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
echo "setup-browser: installing chromium and chromium-driver" >&2
if ! { $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
    echo "setup-browser: could not install chromium; the browser tests will be skipped" >&2
fi
exit 0
