#!/usr/bin/env bash
# Build the book: set up the environment if needed, execute every chapter notebook
# (two at a time, one thread each, by tools/execute_chapters.py; results cached in
# _build/.jupyter_cache, so unchanged chapters are not re-run) and write the static HTML
# to _build/html, then the Chinese edition (tools/i18n.py build: the English sources with
# the translations of book/locales/zh_CN, the same executed chapters) to _build/html/zh_CN.
# A chapter that fails, or whose results no longer support its text (an
# assert of the chapter), fails the build. Sphinx warnings are errors. Works offline.
#
#   bash tools/build_book.sh            # incremental build
#   bash tools/build_book.sh --clean    # remove _build/html first (keeps the cache)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

if [ "${1:-}" = "--clean" ]; then
    rm -rf "$ROOT/_build/html"   # only build output; sources are never touched
fi

python tools/nbsync.py --check
start=$(date +%s)
echo "==> executing the chapters (a few minutes the first time; cached chapters are skipped)"
python tools/execute_chapters.py
executed=$(date +%s)
echo "==> rendering the book (chapters executed in $(( executed - start )) s)"
jupyter-book build "$ROOT" --warningiserror --nitpick --keep-going
english=$(date +%s)
# The Chinese render and the message extraction are two single-threaded Sphinx runs, side
# by side: they read the same sources and execution cache and write apart (the Chinese
# edition into _build/html/zh_CN, its notebooks into _build/html/jupyter_execute and the
# compiled catalogues into book/locales; the extraction into _build/gettext and
# _build/jupyter_execute, after the English render is done with it).
echo "==> rendering the Chinese edition into _build/html/zh_CN (same executed chapters), and"
echo "    extracting the English messages (_build/gettext, for tools/i18n.py check and the tests)"
extract_log="$ROOT/_build/extract.log"
python tools/i18n.py extract > "$extract_log" 2>&1 &
extract=$!
trap 'kill "$extract" 2> /dev/null || true' EXIT   # Ctrl-C or a failure: stop it too
python tools/i18n.py build || { wait "$extract" || true; exit 1; }
chinese=$(date +%s)
wait "$extract" || { tail -40 "$extract_log" >&2; echo "error: message extraction failed" >&2; exit 1; }
trap - EXIT
grep "^==> " "$extract_log" || true
echo "==> built in $(( $(date +%s) - start )) s (rendering: English $(( english - executed )) s," \
     "Chinese $(( chinese - english )) s, with the messages extracted beside it)."
echo "    Open these files in a browser (they work offline; each page links to the other edition):"
echo "    $ROOT/_build/html/index.html          (English)"
echo "    $ROOT/_build/html/zh_CN/index.html    (中文)"
