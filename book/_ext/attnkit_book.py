"""Small fixes to the HTML of the book, found by the browser tests (tests/test_book_browser.py).

* Inline ``<script>`` blocks are emitted once. sphinx-thebe 0.3.1 registers its inline
  configuration with ``app.add_js_file(None, body=...)`` after the HTML builder has read
  its list of scripts; Sphinx copies the registry into the builder again before writing,
  and scripts without a file name are not de-duplicated, so every page declared
  ``const THEBE_JS_URL`` twice (once with file name None, once "") and the browser
  reported a SyntaxError on every page.
"""

from __future__ import annotations

from typing import Any


def _script_key(script: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What makes two scripts the same: file name and attributes (inline body included)."""
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", None) or ""  # inline scripts: None or ""
    return filename, tuple(sorted((k, str(v)) for k, v in attributes.items()))


def unique_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated scripts (same file or same inline body) from a page, keeping order."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app) -> dict[str, Any]:
    # Early: an earlier handler that returns a template name would stop the event
    # (Sphinx emits html-page-context with emit_firstresult).
    app.connect("html-page-context", unique_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
