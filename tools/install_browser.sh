#!/usr/bin/env bash
# Make sure Debian's Chromium (and the Noto CJK fonts, for the Chinese edition's pages) is
# installed for the browser tests of the built book
# (tests/test_book_browser.py). Playwright drives this system browser; nothing is
# downloaded from a browser vendor. Installs with apt-get as root (or with sudo when it
# needs no password); otherwise prints what to do, and the browser tests skip (outside CI).
# Set ATTNKIT_CHROMIUM=/path/to/chromium to use another Chromium.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"

chromium="${ATTNKIT_CHROMIUM:-/usr/bin/chromium}"
# Chinese text of the zh edition shows as empty boxes without a CJK font
cjk_font=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
missing=()
[ -x "$chromium" ] || missing+=(chromium)
[ -e "$cjk_font" ] || missing+=(fonts-noto-cjk)
if [ "${#missing[@]}" = 0 ]; then
    exit 0
fi
start=$(date +%s)
if apt_install "${missing[*]}" "for the browser tests" "the browser tests skip until then; or set ATTNKIT_CHROMIUM=/path/to/chromium"; then
    echo "==> ${missing[*]} installed in $(( $(date +%s) - start )) s: $("$chromium" --version 2>/dev/null || true)"
fi
if [ ! -e "$cjk_font" ]; then
    echo "warning: no CJK font ($cjk_font): the Chinese pages show empty boxes in the browser" >&2
    [ -z "${CI:-}" ] || exit 1
fi
