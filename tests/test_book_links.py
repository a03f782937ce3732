"""Every internal link of the built book resolves: the file exists and so does the anchor.

A static crawl of ``_build/html`` (no browser needed): for each page, each ``<a href>``
that stays inside the book must name an existing file, and its ``#fragment`` an ``id``
on that page; each image, script and stylesheet the page loads from the book must exist.
Links that leave the book (``https://``, ``mailto:``) are only listed, never followed:
the book must read offline, and the browser tests check that no page *loads* anything
from outside.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from book_site import BOOK_HTML, book_pages, parse_page, require_book

PAGES = book_pages()


def _resolve(page: Path, ref: str, book: Path) -> tuple[Path, str] | None:
    """The file and fragment an in-book reference points to; None if it leaves the book."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc:
        return None
    target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def broken_links(page_rel: str, book: Path = BOOK_HTML) -> list[str]:
    """Human-readable problems with the links and assets of one page (empty if none)."""
    page = (book / page_rel).resolve()
    parsed = parse_page(page)
    problems = []
    for href in parsed.hrefs:
        if href.startswith("javascript:"):
            problems.append(f"javascript: link {href!r}")
            continue
        resolved = _resolve(page, href, book)
        if resolved is None:
            continue
        target, fragment = resolved
        if not target.is_relative_to(book.resolve()):
            problems.append(f"{href!r} points outside the book ({target})")
        elif not target.is_file():
            problems.append(f"{href!r}: no file {target.relative_to(book.resolve())}")
        elif fragment and target.suffix == ".html" and fragment not in parse_page(target).ids:
            problems.append(f"{href!r}: no id {fragment!r} in {target.name}")
    for src in parsed.srcs:
        resolved = _resolve(page, src, book)
        if resolved is None:
            continue  # external assets are caught by the browser test (blocked requests)
        target, _ = resolved
        if not target.is_file():
            problems.append(f"asset {src!r} is missing")
    return problems


def test_the_book_is_built_with_every_chapter():
    book = require_book()
    pages = book_pages(book)
    chapters = [p for p in pages if p.startswith("notebooks/")]
    exercises = [p for p in pages if p.startswith("exercises/")]
    assert len(chapters) >= 16, chapters
    assert len(exercises) == len(chapters), (chapters, exercises)
    for required in ("index.html", "search.html", "genindex.html", "book/errata.html"):
        assert required in pages


@pytest.mark.parametrize("page", PAGES or ["<the book is not built>"])
def test_internal_links_resolve(page):
    book = require_book()
    assert broken_links(page, book) == []


def test_the_crawl_finds_a_broken_link(tmp_path):
    """The checker itself can fail: a page with a dead link, a dead anchor, a lost image."""
    (tmp_path / "index.html").write_text(
        '<a id="top" href="#top">ok</a> <a href="other.html#nowhere">dead anchor</a> '
        '<a href="missing.html">dead page</a> <img src="_images/none.png"> '
        '<a href="https://example.org">external, not followed</a>',
        encoding="utf-8",
    )
    (tmp_path / "other.html").write_text('<h1 id="here">other</h1>', encoding="utf-8")
    problems = broken_links("index.html", tmp_path)
    assert len(problems) == 3, problems
    assert any("nowhere" in p for p in problems)
    assert any("missing.html" in p for p in problems)
    assert any("none.png" in p for p in problems)
