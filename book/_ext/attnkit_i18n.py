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
* **Tables in a ``{table}`` directive are messages.** MyST parses such a table's cells
  without a source, and Sphinx extracts no message from a node without one: the intro's
  map of the book (a ``{table}`` for its column widths in the PDF) would stay English.
* **Part captions translated.** ``_toc.yml``'s part captions become toctree captions in
  sphinx-external-toc's transform (priority 100), after Sphinx's i18n transform (20):
  the catalogue has them (the root page's), but nothing applied the translation, so the
  Chinese sidebar and PDF kept English part names.
* **English renderings of Chinese text** (``EnglishOnly``): the seed's quotations and the
  interview questions are given in Chinese, then in English for the English reader. The
  English rendering is shown in the English edition only and is not a message: the
  Chinese edition shows the original once, never a back-translation of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sphinx.search.zh
from docutils import nodes
from myst_nb.ext.glue.domain import NbGlueDomain
from myst_nb.ext.glue.roles import PasteTextRole
from sphinx import addnodes
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util.docutils import SphinxDirective
from sphinx.util.i18n import docname_to_domain

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


def _in_cell_output(node: nodes.Node) -> bool:
    parent = node.parent
    while parent is not None:
        if "cell_output" in parent.get("classes", []):
            return True
        parent = parent.parent
    return False


class SourcesForTableCells(SphinxTransform):
    """Give the cells of a table written in the page (a ``{table}`` directive's too) the
    source of the document, before the i18n transform; tables a code cell printed are left
    alone."""

    default_priority = 10  # sphinx.transforms.i18n.Locale is 20

    def apply(self, **kwargs: Any) -> None:
        for table in self.document.findall(nodes.table):
            if _in_cell_output(table):  # a table a code cell printed is not text to translate
                continue
            source = table.source or self.document["source"]
            line = table.line
            for node in table.findall(nodes.TextElement):
                if not node.source:
                    node.source, node.line = source, node.line or line


class TranslatePartCaptions(SphinxTransform):
    """Apply the catalogue's translation to the toctree captions (the parts of the book)."""

    default_priority = 101  # sphinx_external_toc.events.InsertToctrees is 100

    def apply(self, **kwargs: Any) -> None:
        if not is_chinese(self.config.language):
            return
        toctrees = [node for node in self.document.findall(addnodes.toctree) if node.get("caption")]
        if not toctrees:
            return
        dirs = [str(Path(self.env.srcdir, d)) for d in self.config.locale_dirs]
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        catalogue, found = init_locale(dirs, self.config.language, domain)
        if not found:
            return
        for node in toctrees:
            caption = node["rawcaption"] or node["caption"]
            translated = catalogue.gettext(caption)
            if translated != caption:
                node.apply_translated_message(caption, translated)


class EnglishOnly(SphinxDirective):
    """``:::{english-only}``: the English rendering of the Chinese text just before it.

    The English edition shows the content (in a ``div.english-only``) and the message
    extraction skips it; the Chinese edition leaves it out, since the original it renders
    is already on the page. Text only: a label, footnote or citation inside would be
    missing from the Chinese edition.

        > 缩放因子通常是一个键序列长度的倒数。 (line 16)
        >
        > :::{english-only}
        > "The scaling factor is usually the reciprocal of the length of the key sequence."
        > :::
    """

    has_content = True

    def run(self) -> list[nodes.Node]:
        self.assert_has_content()
        if is_chinese(self.config.language):
            return []
        container = nodes.container(classes=["english-only"])
        container += self.parse_content_to_nodes()
        for node in container.findall(nodes.TextElement):
            node["translatable"] = False
        return [container]


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
    app.add_directive("english-only", EnglishOnly)
    app.add_transform(TranslatePartCaptions)
    app.add_transform(SourcesForTableCells)
    app.add_search_language(SearchChinese)
    app.connect("config-inited", add_templates)
    app.add_css_file("edition-switch.css")
    # before pydata-sphinx-theme (priority 500) turns the template names into its list
    app.connect("html-page-context", add_switcher, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
