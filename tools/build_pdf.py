"""The PDFs of both editions: ``_build/pdf/book-en.pdf`` and ``_build/pdf/book-zh.pdf``.

Sphinx's LaTeX builder writes each edition with the book's own configuration
(``_config.yml``, ``_toc.yml``, as ``tools/i18n.py build`` does for the Chinese HTML),
then ``latexmk`` runs XeLaTeX on it until the table of contents and the cross-references
are resolved. The Chinese edition is the English sources with the translations of
``book/locales/zh_CN`` (``language: zh_CN``). Chinese text (all of the zh edition, and the
glossary's 中文 column, the seed's quotations in both) is set with xeCJK in the Noto CJK
fonts (Debian's ``fonts-noto-cjk``); Latin text in FreeSerif/FreeSans/FreeMono, Sphinx's
default for XeLaTeX (``fonts-freefont-otf``).

The executed chapters come from the execution cache (``_build/.jupyter_cache``), as for the
HTML: no chapter is executed here; a chapter missing from the cache stops the command.

    python tools/build_pdf.py           # both editions, side by side on 2 cores or more
    python tools/build_pdf.py zh        # one edition (en or zh)
    python tools/build_pdf.py --jobs 1  # both editions, one after the other

Each build is single-threaded (Sphinx, then XeLaTeX), so two editions built side by side
take about as long as the slower one. Side by side, each edition's output goes to
``_build/pdf/build-<edition>.log`` and its last lines are printed if it fails.

``tools/build_pdf.sh`` installs the TeX packages first when they are missing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from i18n import BUILD, LANGUAGE, require_executed_chapters, sphinx_build, translated_title  # noqa: E402
from nbcommon import cores  # noqa: E402

PDF = BUILD / "pdf"
EDITIONS = ("en", "zh")

# Sphinx's XeLaTeX fonts for Latin text (sphinx.builders.latex.constants), plus the
# Noto CJK fonts for Chinese. The English edition also holds Chinese (the glossary's
# 中文 column, the seed's quotations on the errata and interview pages).
CJK_FONTS = r"""
\setCJKmainfont{Noto Serif CJK SC}
\setCJKsansfont{Noto Sans CJK SC}
\setCJKmonofont{Noto Sans Mono CJK SC}
"""


# The chapter heading of Sphinx's fncychap style (Sonny) prints \chaptername and the number,
# "CHAPTER 1": the Chinese edition says 第 1 章, the usual form.
CHINESE_CHAPTER_HEADING = r"""
\makeatletter
\renewcommand{\DOCH}{%
  \raggedleft\CNV\FmN{第}\,\CNoV\thechapter\,\CNV\FmN{章}\par\nobreak\vskip 40\p@}
\makeatother
"""


def latex_elements(edition: str) -> dict[str, str]:
    from sphinx.builders.latex.constants import XELATEX_DEFAULT_FONTPKG

    elements = {"fontpkg": XELATEX_DEFAULT_FONTPKG + CJK_FONTS}
    if edition == "zh":
        elements["preamble"] = CHINESE_CHAPTER_HEADING
    if edition == "en":
        # what Sphinx does itself for language zh (xeCJK loads fontspec)
        elements["fontenc"] = (
            "\\usepackage{fontspec}\n"
            "\\defaultfontfeatures[\\rmfamily,\\sffamily,\\ttfamily]{}\n"
            "\\usepackage{xeCJK}\n"
            # xeCJK sets the curly quotes as CJK punctuation (full width): "source’ s"
            '\\xeCJKDeclareCharClass{Default}{"2018, "2019, "201C, "201D}'
        )
        elements["fvset"] = "\\fvset{fontsize=\\small,formatcom=\\xeCJKVerbAddon}"
    return elements


def latex_title(edition: str) -> str | None:
    """The PDF's title page: the Chinese title for the zh edition (None: ``_config.yml``'s)."""
    return translated_title() if edition == "zh" else None


def write_latex(edition: str) -> tuple[int, Path]:
    """Sphinx's LaTeX builder -> ``_build/latex-<edition>/tex/book.tex`` (and its images).

    One folder per edition, with the LaTeX one level down: myst-nb writes the notebooks and
    their glue data next to the output folder (``<outdir>/../jupyter_execute``) and reads
    the glue back while writing, so two editions built side by side must not share it."""
    outdir = BUILD / f"latex-{edition}" / "tex"
    doctrees = BUILD / f".doctrees-latex-{edition}"
    if not (outdir.parent / "jupyter_execute").is_dir():
        # the glue data is written when a notebook is read: read every document again
        shutil.rmtree(doctrees, ignore_errors=True)
    overrides: dict[str, object] = {
        "latex_engine": "xelatex",
        "latex_elements": latex_elements(edition),
        # the index sorted by makeindex (TeX Live's binaries), not xindy (one more package)
        "latex_use_xindy": False,
    }
    if edition == "zh":
        overrides["language"] = LANGUAGE
    # Jupyter Book sets latex_documents' title from _config.yml once Sphinx has started
    # (jupyter_book.sphinx.update_latex_documents): give it the edition's title.
    import jupyter_book.sphinx as jb_sphinx

    title = latex_title(edition)
    original = jb_sphinx.update_latex_documents

    def with_title(documents: list, latex_overrides: dict) -> list:
        return original(documents, {**latex_overrides, **({"title": title} if title else {})})

    jb_sphinx.update_latex_documents = with_title
    try:
        status = sphinx_build("latex", outdir, doctrees, **overrides)
    finally:
        jb_sphinx.update_latex_documents = original
    if status:
        # Sphinx keeps the documents it read with warnings and would not warn again:
        # read everything afresh next time
        shutil.rmtree(doctrees, ignore_errors=True)
    return status, outdir / "book.tex"


def run_xelatex(tex: Path) -> int:
    """latexmk (XeLaTeX, as many runs as the references need) in the LaTeX folder."""
    command = [
        "latexmk",
        "-xelatex",
        "-g",  # Sphinx has just written the .tex: always run (latexmk remembers failures)
        "-interaction=nonstopmode",
        "-file-line-error",
        "-halt-on-error",
        tex.name,
    ]
    return subprocess.run(command, cwd=tex.parent, stdout=subprocess.DEVNULL).returncode


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(edition: str) -> int:
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    status, tex = write_latex(edition)
    if status:
        print(f"error: Sphinx's LaTeX builder failed for the {edition} edition", file=sys.stderr)
        return status
    latex_wall, latex_cpu = time.perf_counter(), time.process_time()
    tex_cpu = children_cpu()
    status = run_xelatex(tex)
    tex_cpu = children_cpu() - tex_cpu
    done = time.perf_counter()
    log = tex.with_suffix(".log")
    if status:
        print(f"error: XeLaTeX failed for the {edition} edition; see {log}", file=sys.stderr)
        return status
    PDF.mkdir(parents=True, exist_ok=True)
    target = PDF / f"book-{edition}.pdf"
    shutil.copyfile(tex.with_suffix(".pdf"), target)
    load = os.getloadavg()[0]
    print(
        f"==> {target} ({target.stat().st_size / 1e6:.1f} MB) in {done - start_wall:.0f} s: "
        f"Sphinx {latex_wall - start_wall:.0f} s ({latex_cpu - start_cpu:.0f} s CPU), "
        f"XeLaTeX {done - latex_wall:.0f} s ({tex_cpu:.0f} s CPU); load average {load:.1f}",
        flush=True,
    )
    return 0


def build_side_by_side(editions: list[str]) -> int:
    """Each edition in a process of its own (``build_pdf.py <edition>``), at the same time."""
    PDF.mkdir(parents=True, exist_ok=True)
    runs = {}
    try:
        for edition in editions:
            log = PDF / f"build-{edition}.log"
            command = [sys.executable, str(Path(__file__).resolve()), edition, "--jobs", "1"]
            with log.open("w") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
            runs[edition] = (process, log)
        status = 0
        for edition, (process, log) in runs.items():
            code = process.wait()
            lines = log.read_text(errors="replace").splitlines()
            if code:
                print(f"error: the {edition} edition failed; the end of {log}:", file=sys.stderr)
                print("\n".join(lines[-40:]), file=sys.stderr)
                status = status or (code if code > 0 else 1)  # < 0: killed by a signal
            else:
                print("\n".join(line for line in lines if line.startswith("==> ")), flush=True)
        return status
    finally:  # an exception or Ctrl-C here: do not leave the other edition running
        for process, _ in runs.values():
            if process.poll() is None:
                process.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("editions", nargs="*", metavar="{en,zh}", help="default: both")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, cores()),
        help="editions built at the same time (default: 2 on 2 cores or more, else 1)",
    )
    args = parser.parse_args(argv)
    for edition in args.editions:
        if edition not in EDITIONS:
            parser.error(f"unknown edition {edition!r} (choose from {', '.join(EDITIONS)})")
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive number of editions, not {args.jobs}")
    for tool in ("latexmk", "xelatex"):
        if shutil.which(tool) is None:
            raise SystemExit(f"error: {tool} is missing; run tools/build_pdf.sh (installs it)")
    require_executed_chapters()
    editions = list(dict.fromkeys(args.editions or EDITIONS))
    if args.jobs > 1 and len(editions) > 1:
        return build_side_by_side(editions)
    status = 0
    for edition in editions:
        status |= build(edition)
    return status


if __name__ == "__main__":
    sys.exit(main())
