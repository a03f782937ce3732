"""The built book as a web site: where it is, its pages, a local server, the browser.

Shared by ``tests/test_book_links.py`` (static crawl of every link) and
``tests/test_book_browser.py`` (every page in headless Chromium). Both test the HTML that
``bash tools/build_book.sh`` wrote to ``_build/html``; set ``ATTNKIT_BOOK_HTML`` to test
another build. In CI (``CI=true``) a missing build is an error, elsewhere the tests skip
with a message saying how to build it.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK_HTML = Path(os.environ.get("ATTNKIT_BOOK_HTML", ROOT / "_build" / "html"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# The browser of the browser tests (and of tools/screenshots.py): the system's Chromium.
CHROMIUM = os.environ.get("ATTNKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Headless and quiet: no GPU, no sandbox (CI runs as root), and none of Chromium's own
# background traffic (updates, sync, safe browsing), which would leave the machine.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
]

# Folders of the build that hold assets or copies of sources, not pages of the book.
_NOT_PAGES = {"_static", "_sources", "_images", "_downloads", ".doctrees", "_panels_static"}


def book_pages(book: Path = BOOK_HTML) -> list[str]:
    """Every HTML page of the built book, as paths relative to ``book`` (sorted): both
    editions, the Chinese one under ``zh_CN/``."""
    if not (book / "index.html").is_file():
        return []
    pages = []
    for path in book.rglob("*.html"):
        rel = path.relative_to(book)
        folders = rel.parts[:-1]  # the Chinese edition has its own: zh_CN/_static/...
        if any(part in _NOT_PAGES or part.startswith(".") for part in folders):
            continue
        pages.append(rel.as_posix())
    return sorted(pages)


def require_book() -> Path:
    """The build directory, or skip (fail in CI) when the book has not been built."""
    if (BOOK_HTML / "index.html").is_file():
        return BOOK_HTML
    message = (
        f"the book is not built: {BOOK_HTML / 'index.html'} does not exist. "
        "Build it first with `bash tools/build_book.sh`."
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class PageParser(HTMLParser):
    """Collects the ids (link targets) and the links and image sources of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if values.get(key):
                self.ids.add(values[key])
        if tag == "a" and values.get("href") is not None:
            self.hrefs.append(values["href"])
        if tag in {"img", "script"} and values.get("src"):
            self.srcs.append(values["src"])
        if tag == "link" and values.get("href"):
            self.srcs.append(values["href"])


@functools.cache
def parse_page(path: Path) -> PageParser:
    """Parse one HTML file of the build (cached: the crawl asks for targets many times)."""
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
