"""The PDFs of both editions (``bash tools/build_pdf.sh`` -> ``_build/pdf/book-{en,zh}.pdf``).

Read back with poppler's ``pdftotext``: each edition has a table of contents and every
chapter's title (the Chinese edition the title's translation from ``book/locales/zh_CN``),
the Chinese edition is in Chinese, and no cross-reference was left unresolved (LaTeX
prints ``??`` for those). The tests skip when the PDFs are not built, unless they are asked
for (``ATTNKIT_REQUIRE_PDF=1``, as ``.ci/run`` does after building them): then a missing
PDF is a failure. Set ``ATTNKIT_PDF_DIR`` to test PDFs elsewhere.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PDF_DIR = Path(os.environ.get("ATTNKIT_PDF_DIR", ROOT / "_build" / "pdf"))
REQUIRED = os.environ.get("ATTNKIT_REQUIRE_PDF", "").lower() in {"1", "true", "yes"}
EDITIONS = ("en", "zh")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _missing(message: str) -> None:
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


@functools.cache
def pdf_text(edition: str) -> str:
    """The PDF's text (pdftotext, reading order), or skip/fail when it is not built."""
    path = PDF_DIR / f"book-{edition}.pdf"
    if not path.is_file():
        _missing(f"{path} does not exist: build the PDFs with `bash tools/build_pdf.sh`")
    if shutil.which("pdftotext") is None:
        _missing("pdftotext is missing (Debian's poppler-utils; tools/build_pdf.sh installs it)")
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, check=True
    )
    return result.stdout


def squeeze(text: str) -> str:
    """Compatibility forms folded (ligatures, full-width punctuation) and every space
    removed: a title broken over two lines, or spaced by the PDF, still matches."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def chapter_titles() -> list[str]:
    """Each chapter's title, as its ``# `` heading in ``notebooks/NN_*.py``."""
    titles = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# # "):
                titles.append(line[4:].strip())
                break
        else:
            raise AssertionError(f"{path.name} has no '# ' heading")
    return titles


def translated(title: str) -> str:
    """The zh_CN catalogues' translation of a chapter title."""
    for catalogue in _catalogues().values():
        message = catalogue.get(title)
        if message is not None and message.string:
            return message.string
    raise AssertionError(f"no translation of the chapter title {title!r} in book/locales/zh_CN")


@functools.cache
def _catalogues() -> dict:
    sys.path.insert(0, str(ROOT / "tools"))
    from i18n_catalogues import read_catalogues

    return read_catalogues(ROOT / "book" / "locales" / "zh_CN" / "LC_MESSAGES")


def test_there_are_nineteen_chapters() -> None:
    assert len(chapter_titles()) == 19


@pytest.mark.parametrize("edition", EDITIONS)
def test_every_chapter_is_in_the_pdf(edition: str) -> None:
    text = squeeze(pdf_text(edition))
    titles = chapter_titles()
    if edition == "zh":
        titles = [translated(title) for title in titles]
    missing = [title for title in titles if squeeze(title) not in text]
    assert not missing, f"book-{edition}.pdf lacks the chapter(s) {missing}"


@pytest.mark.parametrize(("edition", "heading"), [("en", "Contents"), ("zh", "目录")])
def test_the_pdf_has_a_table_of_contents(edition: str, heading: str) -> None:
    text = pdf_text(edition)
    # (the heading's style may set it in capitals)
    assert heading.casefold() in text[:5000].casefold(), (
        f"book-{edition}.pdf: no '{heading}' on its first pages"
    )
    # the table of contents lists the chapters before the first chapter begins
    first = squeeze(chapter_titles()[0] if edition == "en" else translated(chapter_titles()[0]))
    squeezed = squeeze(text)
    assert squeezed.count(first) >= 2, f"book-{edition}.pdf: chapter 1 is not in its contents"


@pytest.mark.parametrize("edition", EDITIONS)
def test_no_unresolved_reference(edition: str) -> None:
    text = pdf_text(edition)
    lines = [line for line in text.splitlines() if "??" in line]
    assert not lines, f"book-{edition}.pdf has unresolved references (??): {lines[:5]}"


def test_the_chinese_edition_is_in_chinese() -> None:
    zh, en = pdf_text("zh"), pdf_text("en")
    zh_cjk, en_cjk = len(CJK.findall(zh)), len(CJK.findall(en))
    # the English edition holds some Chinese too (glossary, the seed's quotations)
    assert zh_cjk > 10 * max(en_cjk, 1), (
        f"book-zh.pdf has {zh_cjk} Chinese characters, book-en.pdf {en_cjk}"
    )
    assert "自注意力" in zh and "多头注意力" in zh


def image_count(edition: str) -> int:
    """Images in the PDF (pdfimages -list), masks not counted."""
    pdf_text(edition)  # skip or fail first when the PDF is missing
    if shutil.which("pdfimages") is None:
        _missing("pdfimages is missing (Debian's poppler-utils)")
    listing = subprocess.run(
        ["pdfimages", "-list", str(PDF_DIR / f"book-{edition}.pdf")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[2:]  # two header lines
    return sum(1 for row in listing if row.split()[2] == "image")


def test_both_editions_hold_the_same_figures() -> None:
    """The executed outputs' figures are in both PDFs, all of them: the same images."""
    en, zh = image_count("en"), image_count("zh")
    assert en > 0, "book-en.pdf holds no image: the chapters' figures are missing"
    assert zh == en, f"book-zh.pdf holds {zh} images, book-en.pdf {en}"
