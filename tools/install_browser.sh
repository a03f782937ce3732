#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests of the built book
# (tests/test_book_browser.py). Playwright drives this system browser; nothing is
# downloaded from a browser vendor. Installs with apt-get as root (or with sudo when it
# needs no password); otherwise prints what to do, and the browser tests skip (outside CI).
# Set ATTNKIT_CHROMIUM=/path/to/chromium to use another Chromium.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"

chromium="${ATTNKIT_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
    exit 0
fi
start=$(date +%s)
if apt_install chromium "for the browser tests" "the browser tests skip until then; or set ATTNKIT_CHROMIUM=/path/to/chromium"; then
    echo "==> chromium installed in $(( $(date +%s) - start )) s: $("$chromium" --version 2>/dev/null || true)"
fi
