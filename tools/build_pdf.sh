#!/usr/bin/env bash
# Build the PDFs of both editions with XeLaTeX: _build/pdf/book-en.pdf and
# _build/pdf/book-zh.pdf (tools/build_pdf.py), with the executed outputs and figures of the
# execution cache, a table of contents and resolved cross-references. Run
# tools/build_book.sh first (it executes the chapters; this command never does).
# Installs Debian's TeX Live XeLaTeX, xeCJK, latexmk and the fonts first when they are
# missing (tools/install_tex.sh), as tools/install_browser.sh does for the browser. Works
# offline once they are installed. The two editions are built side by side when the
# machine has two cores or more (about 2 minutes on 2 cores).
#
#   bash tools/build_pdf.sh         # both editions
#   bash tools/build_pdf.sh zh      # one edition (en or zh)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$ROOT/tools/install_tex.sh" || exit 1

start=$(date +%s)
python tools/build_pdf.py "$@"
echo "==> PDFs built in $(( $(date +%s) - start )) s: $ROOT/_build/pdf/"
