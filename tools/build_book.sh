#!/usr/bin/env bash
# Build the book: set up the environment if needed, execute every chapter notebook
# (results cached in _build/.jupyter_cache, so unchanged chapters are not re-run) and
# write the static HTML to _build/html. Sphinx warnings are errors. Works offline.
#
#   bash tools/build_book.sh            # incremental build
#   bash tools/build_book.sh --clean    # remove _build/html first (keeps the cache)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

if [ "${1:-}" = "--clean" ]; then
    rm -rf "$ROOT/_build/html"   # only build output; sources are never touched
fi

python tools/nbsync.py --check
echo "==> building the book (executing notebooks; this takes a few minutes the first time)"
start=$(date +%s)
jupyter-book build "$ROOT" --warningiserror --nitpick --keep-going
echo "==> built in $(( $(date +%s) - start )) s. Open this file in a browser (works offline):"
echo "    $ROOT/_build/html/index.html"
