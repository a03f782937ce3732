"""The two editions of the book, English and Chinese (``tools/i18n.py``).

* **Edition switcher.** Every page gets a link in its header to the same page in the
  other edition: the Chinese edition is built into ``zh_CN/`` inside the English one
  (``_build/html/zh_CN``), so the link is relative (``zh_CN/<page>.html`` from the
  English root, ``../<page>.html`` from the Chinese root) and works from the file system
  and from any local server alike.
* **Chinese search in linear time** (``SearchChinese``, same index as Sphinx's).
* **Glue from a named notebook without a format** (``{glue:text}`01_x.ipynb::key```, the
  form translations use, ``tools/i18n_catalogues.py``): myst-nb 1.4 splits the format off
  at the last colon first, so it read the key as ``01_x.ipynb:`` ("No key ... found in glue
  data") and the value was lost. Read as ``01_x.ipynb::key:s``, the format myst-nb
  defaults to for ``{glue:text}`key```.
* **Formulas are not messages.** Display math is the same in both editions; Sphinx would
  otherwise offer every ``$$...$$`` block to the translators.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sphinx.search.zh
from docutils import nodes
from myst_nb.ext.glue.domain import NbGlueDomain
from myst_nb.ext.glue.roles import PasteTextRole
from sphinx.transforms import SphinxTransform

# The edition a build writes, by Sphinx language, and the other one.
EDITIONS = {"en": "English", "zh_CN": "中文"}
ZH_FOLDER = "zh_CN"  # where the Chinese edition lives inside the English build


class SearchChinese(sphinx.search.zh.SearchChinese):
    """Sphinx's Chinese search indexer, with its list of Latin words made a set.

    Sphinx 7.4 appends every Latin word of the book to ``latin_terms`` (a list, shared by
    the class) and looks each word up in it when stemming: quadratic, it made the Chinese
    render take about 4 times as long as the English one. The index is the same."""

    def init(self, options: dict[str, str]) -> None:
        super().init(options)
        self.latin_terms: set[str] = set()  # type: ignore[assignment]

    def split(self, input: str) -> list[str]:
        chinese = (
            list(sphinx.search.zh.jieba.cut_for_search(input)) if sphinx.search.zh.JIEBA else []
        )
        latin = [term.strip() for term in self.latin1_letters.findall(input)]
        self.latin_terms.update(latin)
        return chinese + latin


class MathIsNotAMessage(SphinxTransform):
    """Mark display math untranslatable (before the i18n transform and the extraction)."""

    default_priority = 10  # sphinx.transforms.i18n.Locale is 20

    def apply(self, **kwargs: Any) -> None:
        for node in self.document.findall(nodes.math_block):
            node["translatable"] = False


def is_chinese(language: str | None) -> bool:
    return (language or "en").lower().replace("-", "_").startswith("zh")


def other_edition_href(pagename: str, language: str | None) -> str:
    """The relative URL, from page ``pagename``, of the same page in the other edition."""
    depth = pagename.count("/")
    up = "../" * depth
    if is_chinese(language):
        return f"{up}../{pagename}.html"
    return f"{up}{ZH_FOLDER}/{pagename}.html"


def add_switcher(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Put the switcher template first among the article header's buttons."""
    if app.builder.format != "html":
        return
    chinese = is_chinese(app.config.language)
    context["edition_switch"] = {
        "href": other_edition_href(pagename, app.config.language),
        "label": "English" if chinese else "中文",
        "hreflang": "en" if chinese else "zh-CN",
        "title": "Read this page in English" if chinese else "阅读本页的中文版",
    }
    section = "theme_article_header_end"
    items = context.get(section) or []
    if isinstance(items, str):
        items = [item.strip() for item in items.split(",") if item.strip()]
    if "edition-switch.html" not in items:
        context[section] = ["edition-switch.html", *items]


def add_templates(app, config) -> None:
    """Before the builder makes its template loader from ``templates_path``."""
    config.templates_path.append(str(Path(__file__).parent / "templates"))
    config.html_static_path.append(str(Path(__file__).parent / "static"))


class PasteTextFromNotebook(PasteTextRole):
    """``{glue:text}`path::key``` with no format read as ``path::key:s``."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        _, named, key = self.text.partition("::")
        if named and ":" not in key:
            self.text += ":s"
        return super().run()


def setup(app) -> dict[str, Any]:
    NbGlueDomain.roles["text"] = PasteTextFromNotebook()
    app.add_transform(MathIsNotAMessage)
    app.add_search_language(SearchChinese)
    app.connect("config-inited", add_templates)
    app.add_css_file("edition-switch.css")
    # before pydata-sphinx-theme (priority 500) turns the template names into its list
    app.connect("html-page-context", add_switcher, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
