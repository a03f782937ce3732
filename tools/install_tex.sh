#!/usr/bin/env bash
# Make sure what tools/build_pdf.sh needs is installed: Debian's TeX Live XeLaTeX (with the
# fonts hyperref needs and the LaTeX packages Sphinx uses), xeCJK (and the ctexhook.sty it
# loads, from texlive-lang-chinese, which texlive-lang-cjk only recommends), latexmk, the
# Noto CJK and FreeFont fonts, and poppler-utils (pdftotext, for tests/test_pdf.py). Installs the
# missing ones with apt-get in one run, as root (or with sudo when it needs no password);
# otherwise prints what to do and fails. Nothing to do (and no network needed) when they
# are all present. CI (.ci/run) runs it in the background while the chapters execute.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"

# package:a file it installs (present: nothing to do)
needs=(
    "texlive-xetex:/usr/bin/xelatex"
    "latexmk:/usr/bin/latexmk"
    "texlive-fonts-recommended:/usr/share/texlive/texmf-dist/fonts/tfm/adobe/zapfding/pzdr.tfm"
    "texlive-latex-extra:/usr/share/texlive/texmf-dist/tex/latex/fncychap/fncychap.sty"
    "texlive-lang-cjk:/usr/share/texlive/texmf-dist/tex/xelatex/xecjk/xeCJK.sty"
    "texlive-lang-chinese:/usr/share/texlive/texmf-dist/tex/latex/ctex/ctexhook.sty"
    "fonts-noto-cjk:/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
    "fonts-freefont-otf:/usr/share/fonts/opentype/freefont/FreeSerif.otf"
    "poppler-utils:/usr/bin/pdftotext"
)
missing=()
for need in "${needs[@]}"; do
    if [ ! -e "${need#*:}" ]; then
        missing+=("${need%%:*}")
    fi
done
if [ "${#missing[@]}" = 0 ]; then
    exit 0
fi
start=$(date +%s)
apt_install "${missing[*]}" "for the PDFs" "the PDFs cannot be built without them"
echo "==> TeX and fonts for the PDFs installed in $(( $(date +%s) - start )) s (${missing[*]})"
