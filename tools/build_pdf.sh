#!/usr/bin/env bash
# Build the PDFs of both editions with XeLaTeX: _build/pdf/book-en.pdf and
# _build/pdf/book-zh.pdf (tools/build_pdf.py), with the executed outputs and figures of the
# execution cache, a table of contents and resolved cross-references. Run
# tools/build_book.sh first (it executes the chapters; this command never does).
# Installs Debian's TeX Live XeLaTeX (with the fonts hyperref needs and the LaTeX
# packages Sphinx uses), xeCJK, latexmk, the Noto CJK and FreeFont fonts and
# poppler-utils (pdftotext, for tests/test_pdf.py) when they are missing, as
# tools/install_browser.sh does for the browser. Works offline once they are installed.
#
#   bash tools/build_pdf.sh         # both editions
#   bash tools/build_pdf.sh zh      # one edition (en or zh)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
source "$ROOT/tools/apt_install.sh"

# package: a file it installs (present: nothing to do)
needs=(
    "texlive-xetex:/usr/bin/xelatex"
    "latexmk:/usr/bin/latexmk"
    "texlive-fonts-recommended:/usr/share/texlive/texmf-dist/fonts/tfm/adobe/zapfding/pzdr.tfm"
    "texlive-latex-extra:/usr/share/texlive/texmf-dist/tex/latex/fncychap/fncychap.sty"
    "texlive-lang-cjk:/usr/share/texlive/texmf-dist/tex/xelatex/xecjk/xeCJK.sty"
    "fonts-noto-cjk:/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
    "fonts-freefont-otf:/usr/share/fonts/opentype/freefont/FreeSerif.otf"
    "poppler-utils:/usr/bin/pdftotext"
)
for need in "${needs[@]}"; do
    package="${need%%:*}"
    if [ ! -e "${need#*:}" ]; then
        apt_install "$package" "for the PDFs" "the PDFs cannot be built without it" || exit 1
    fi
done

start=$(date +%s)
python tools/build_pdf.py "$@"
echo "==> PDFs built in $(( $(date +%s) - start )) s: $ROOT/_build/pdf/"
