"""The built book read in a real browser: headless Chromium driven by Playwright.

Every page of ``_build/html`` is served from 127.0.0.1 and opened in Debian's Chromium
(``/usr/bin/chromium``, or ``ATTNKIT_CHROMIUM``; Playwright never downloads a browser
here). For each page the test checks that

* it loads with no console error, no uncaught exception and no failed local request;
* **no request leaves the machine**: every request to another host is blocked and
  reported (the book must read offline, MathJax included);
* the math is typeset: MathJax ran, every ``math`` element holds MathJax output, and no
  raw TeX (``$...$``, ``\\(``, ``\\frac`` ...) is left in the prose;
* every image has loaded (a decoded image with a non-zero width).

Then the search page must find chapter 1 from a term, in each edition (the Chinese one,
``_build/html/zh_CN``, from a Chinese query); every page of both editions is checked.
``tools/run_tests.sh`` installs Chromium when it is missing; without it the tests skip,
except in CI where they fail.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import pytest
from book_site import (
    BOOK_HTML,
    CHROMIUM,
    CHROMIUM_ARGS,
    IN_CI,
    book_pages,
    require_book,
    serve,
)

PAGES = book_pages()

# Jupyter Book's root index.html only redirects to the first page.
_REFRESH = re.compile(r'<meta http-equiv="Refresh" content="\d+; url=([^"]+)"', re.IGNORECASE)

# Runs in the page once MathJax is done: what a reader would see that is wrong.
_INSPECT = r"""
() => {
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight, .output, " +
               ".cell_output, .MathJax, kbd, samp";
  const article = document.querySelector("article") || document.body;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const rawTex = [];
  const pattern = /\$[^$\s][^$]*\$|\\\(|\\\[|\\(frac|sqrt|mathrm|mathbf|top|sum|times|cdot)\b/;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest(skip)) continue;
    const text = node.textContent;
    if (pattern.test(text)) rawTex.push(text.trim().slice(0, 80));
  }
  const maths = [...document.querySelectorAll(".math")];
  const untypeset = maths.filter((m) => !m.querySelector("mjx-container"))
                         .map((m) => m.textContent.trim().slice(0, 80));
  // TeX that MathJax could not turn into math: red error boxes (an unknown macro, say)
  // and macros printed as text (\_ inside \text{} shows a backslash).
  const texErrors = [...document.querySelectorAll("mjx-merror")]
    .map((e) => "error: " + e.textContent.slice(0, 80))
    .concat([...document.querySelectorAll("mjx-assistive-mml mtext")]
      .map((e) => e.textContent).filter((t) => t.includes("\\"))
      .map((t) => "literal macro: " + t.slice(0, 80)));
  const images = [...document.images].map((img) => ({
    src: img.getAttribute("src").slice(0, 120),
    ok: img.complete && img.naturalWidth > 0,
  }));
  return {
    mathjax: typeof window.MathJax === "object" && !!window.MathJax.startup,
    maths: maths.length,
    typeset: document.querySelectorAll("mjx-container").length,
    untypeset, rawTex, texErrors, images,
  };
}
"""


@pytest.fixture(scope="module")
def site():
    """The book served on 127.0.0.1: yields the base URL."""
    book = require_book()
    with serve(book) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not Path(CHROMIUM).is_file():
        message = (
            f"Chromium not found at {CHROMIUM}: install Debian's chromium "
            "(tools/run_tests.sh does it when it can) or set ATTNKIT_CHROMIUM."
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageVisit:
    """One visit of one page, with everything the browser reported on the way."""

    def __init__(self, browser, base: str) -> None:
        self.base_host = urlsplit(base).netloc
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.external: list[str] = []
        self.console_errors: list[str] = []
        self.failed: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.console_errors.append(f"uncaught: {exc}"))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)

    def _route(self, route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in {"data", "blob", "about"} or parts.netloc == self.base_host:
            route.continue_()
        else:
            self.external.append(url)
            route.abort("blockedbyclient")

    def _console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _request_failed(self, request) -> None:
        if urlsplit(request.url).netloc == self.base_host:
            self.failed.append(f"{request.url}: {request.failure}")

    def _response(self, response) -> None:
        if response.status >= 400 and urlsplit(response.url).netloc == self.base_host:
            self.failed.append(f"{response.url}: HTTP {response.status}")

    def open(self, url: str, redirect_to: str | None = None) -> None:
        self.page.goto(url, wait_until="load", timeout=60_000)
        if redirect_to is not None:  # a <meta http-equiv="Refresh"> page
            self.page.wait_for_url(redirect_to, timeout=30_000)
            self.page.wait_for_load_state("load")
        # MathJax typesets after load; its startup promise resolves when it is done.
        self.page.evaluate(
            "() => (window.MathJax && MathJax.startup && MathJax.startup.promise) "
            "? MathJax.startup.promise.then(() => true) : false"
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, site):
    opened = PageVisit(browser, site)
    yield opened
    opened.close()


@pytest.mark.parametrize("page", PAGES or ["<the book is not built>"])
def test_page_reads_offline_and_typeset(visit, site, page):
    redirect = _REFRESH.search((BOOK_HTML / page).read_text(encoding="utf-8")[:2000])
    target = urljoin(site + page, redirect.group(1)) if redirect else None
    visit.open(site + page, redirect_to=target)
    report = visit.page.evaluate(_INSPECT)
    assert visit.external == [], f"{page} asked another host: {visit.external}"
    assert visit.console_errors == [], f"{page}: console errors {visit.console_errors}"
    assert visit.failed == [], f"{page}: failed requests {visit.failed}"
    if report["maths"]:  # Sphinx loads MathJax only on pages that have math
        assert report["mathjax"], f"{page}: MathJax is not loaded"
    assert report["untypeset"] == [], f"{page}: math left untypeset {report['untypeset']}"
    assert report["typeset"] >= report["maths"]
    assert report["rawTex"] == [], f"{page}: raw TeX in the text {report['rawTex']}"
    assert report["texErrors"] == [], f"{page}: TeX MathJax could not render {report['texErrors']}"
    broken = [image["src"] for image in report["images"] if not image["ok"]]
    assert broken == [], f"{page}: images that did not load {broken}"


def test_chapters_have_math_and_figures(visit, site):
    """The checks above are not vacuous: chapter 1 has typeset math and loaded figures."""
    visit.open(site + "notebooks/01_scaled_dot_product_attention.html")
    report = visit.page.evaluate(_INSPECT)
    assert report["maths"] >= 20 and report["typeset"] >= report["maths"]
    assert sum(image["ok"] for image in report["images"]) >= 3


def test_search_finds_a_term(visit, site):
    visit.open(site + "search.html?q=softmax")
    results = visit.page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=30_000)
    links = visit.page.locator("#search-results ul.search li a").evaluate_all(
        "(anchors) => anchors.map((a) => a.getAttribute('href'))"
    )
    assert any("01_scaled_dot_product_attention" in href for href in links), links
    assert visit.console_errors == [] and visit.external == []


def test_chinese_search_finds_chapter_1(visit, site):
    """The Chinese edition's search indexes Chinese words (Sphinx's zh search with jieba):
    a query of two Chinese words from chapter 1's quotations of the source finds it."""
    if not (BOOK_HTML / "zh_CN" / "search.html").is_file():
        message = "the Chinese edition is not built (_build/html/zh_CN): bash tools/build_book.sh"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    visit.open(site + "zh_CN/search.html?q=" + quote("基本概念"))
    results = visit.page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=30_000)
    links = visit.page.locator("#search-results ul.search li a").evaluate_all(
        "(anchors) => anchors.map((a) => a.getAttribute('href'))"
    )
    assert any("01_scaled_dot_product_attention" in href for href in links), links
    assert visit.console_errors == [] and visit.external == []


def inspect_test_page(browser, folder: Path) -> tuple[PageVisit, dict]:
    """Serve ``folder``, open its index.html, inspect it; the visit keeps what it saw."""
    with serve(folder) as base:
        visit = PageVisit(browser, base)
        try:
            visit.open(base + "index.html")
            return visit, visit.page.evaluate(_INSPECT)
        finally:
            visit.close()


def test_the_checks_catch_a_broken_page(browser, tmp_path):
    """A page with an external script, raw TeX, a missing image and a JS error fails."""
    (tmp_path / "index.html").write_text(
        "<html><body><article><p>Scores $QK^T$ and \\(x\\)</p>"
        '<img src="missing.png"><script src="https://cdn.example.org/x.js"></script>'
        "<script>undefinedFunction()</script></article></body></html>",
        encoding="utf-8",
    )
    bad, report = inspect_test_page(browser, tmp_path)
    assert bad.external == ["https://cdn.example.org/x.js"]
    assert any("undefinedFunction" in error for error in bad.console_errors)
    assert any("missing.png" in failure for failure in bad.failed)
    assert len(report["rawTex"]) == 1 and not report["mathjax"]
    assert [image["ok"] for image in report["images"]] == [False]


def test_the_checks_catch_tex_that_mathjax_cannot_render(browser, tmp_path):
    """The book's own MathJax on a page with an unknown macro and a backslash in text."""
    book = require_book()
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "mathjax").symlink_to(book / "_static" / "mathjax")
    (tmp_path / "index.html").write_text(
        "<html><body><article><p><span class='math'>\\(\\text{a\\_b} + c\\)</span> "
        "<span class='math'>\\(\\notamacro{x}\\)</span> "
        "<span class='math'>\\(\\sqrt{d_k}\\)</span></p></article>"
        '<script src="_static/mathjax/tex-chtml.js"></script></body></html>',
        encoding="utf-8",
    )
    _, report = inspect_test_page(browser, tmp_path)
    assert report["mathjax"] and report["untypeset"] == [] and report["rawTex"] == []
    assert len(report["texErrors"]) == 2, report["texErrors"]
    assert any("notamacro" in error for error in report["texErrors"])
    assert any("a\\_b" in error for error in report["texErrors"])
