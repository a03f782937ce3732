#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests of the built book
# (tests/test_book_browser.py). Playwright drives this system browser; nothing is
# downloaded from a browser vendor. Installs with apt-get as root (or with sudo when it
# needs no password); otherwise prints what to do, and the browser tests skip (outside CI).
# Set ATTNKIT_CHROMIUM=/path/to/chromium to use another Chromium.
set -euo pipefail

chromium="${ATTNKIT_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
    exit 0
fi
if ! command -v apt-get > /dev/null; then
    echo "note: no Chromium at $chromium and no apt-get: the browser tests will skip." >&2
    echo "      Install Chromium and set ATTNKIT_CHROMIUM=/path/to/chromium." >&2
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    sudo=()
elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
    sudo=(sudo -n)
else
    echo "note: no Chromium at $chromium; install it with" >&2
    echo "      sudo apt-get install --no-install-recommends chromium" >&2
    echo "      (the browser tests skip until then)." >&2
    exit 0
fi
echo "==> installing Debian's chromium for the browser tests (apt-get)"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium > /dev/null
echo "==> chromium installed in $(( $(date +%s) - start )) s: $("$chromium" --version 2>/dev/null || true)"
