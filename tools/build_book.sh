#!/usr/bin/env bash
# Build the book: set up the environment if needed, execute every chapter notebook
# (two at a time, one thread each, by tools/execute_chapters.py; results cached in
# _build/.jupyter_cache, so unchanged chapters are not re-run) and write the static HTML
# to _build/html and, beside it, the Chinese edition (tools/i18n.py build: the English sources with
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
# Three single-threaded Sphinx runs over the same sources and execution cache: the Chinese
# edition (into _build/html/zh_CN; its notebooks into _build/html/jupyter_execute, its
# compiled catalogues into book/locales) beside the English one, and the message extraction
# after the English one (both write the notebooks and glue data of _build/jupyter_execute).
echo "==> rendering the two editions side by side (chapters executed in $(( executed - start )) s):"
echo "    English into _build/html (here), Chinese into _build/html/zh_CN (log: _build/zh.log)"
mkdir -p "$ROOT/_build"
zh_log="$ROOT/_build/zh.log"
extract_log="$ROOT/_build/extract.log"
python tools/i18n.py build > "$zh_log" 2>&1 &
zh=$!
trap 'kill "$zh" 2> /dev/null || true' EXIT   # Ctrl-C or a failure: stop it too
jupyter-book build "$ROOT" --warningiserror --nitpick --keep-going
english=$(date +%s)
echo "==> extracting the English messages (_build/gettext, for tools/i18n.py check and the tests)"
python tools/i18n.py extract > "$extract_log" 2>&1 \
    || { tail -40 "$extract_log" >&2; echo "error: message extraction failed" >&2; exit 1; }
extracted=$(date +%s)
wait "$zh" || { tail -60 "$zh_log" >&2; echo "error: the Chinese edition failed (log: $zh_log)" >&2; exit 1; }
trap - EXIT
grep -h "^==> " "$extract_log" "$zh_log" || true
echo "==> built in $(( $(date +%s) - start )) s (the English render $(( english - executed )) s, then" \
     "the extraction $(( extracted - english )) s, beside the Chinese render)."
echo "    Open these files in a browser (they work offline; each page links to the other edition):"
echo "    $ROOT/_build/html/index.html          (English)"
echo "    $ROOT/_build/html/zh_CN/index.html    (中文)"
