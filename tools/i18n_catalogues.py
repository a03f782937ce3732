"""Reading and checking the gettext catalogues of the Chinese edition (tools/i18n.py).

A catalogue ``book/locales/zh_CN/LC_MESSAGES/<document>.po`` holds, for each message of
one document, the English ``msgid`` and its Chinese ``msgstr``. Checks:

* every entry is current: no obsolete entries (``#~``: messages the English no longer has);
* with ``complete``: every message translated and none fuzzy;
* a translation keeps the markup that must not change: every formula ``$...$``, inline
  code, role (``{ref}``, ``{doc}``, ``{cite:p}``, ``{glue:text}`` ...) with its target,
  and link target of the English, as written; glued values name their document
  (``{glue:text}`01_x.ipynb::key```, see ``bare_glue``);
* bold and italic of a translation render (no asterisk left as text, see
  ``_stray_emphasis``);
* in the built HTML, every page's edition switcher points at a page that exists.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

# Documents whose messages are not translated (the API reference stays English: its
# text is attnkit's docstrings). tools/i18n.py extract drops their templates.
UNTRANSLATED_DOCUMENTS = ("book/api/",)


def read_catalogue(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, abort_invalid=True)


def read_templates(pot_dir: Path) -> dict[str, Catalog]:
    """Every template ``<document>.pot`` under ``pot_dir``, by document name."""
    return {
        p.relative_to(pot_dir).with_suffix("").as_posix(): read_catalogue(p)
        for p in sorted(pot_dir.rglob("*.pot"))
    }


def read_catalogues(po_dir: Path) -> dict[str, Catalog]:
    """Every catalogue ``<document>.po`` under ``po_dir``, by document name."""
    return {
        p.relative_to(po_dir).with_suffix("").as_posix(): read_catalogue(p)
        for p in sorted(po_dir.rglob("*.po"))
    }


def messages(catalogue: Catalog) -> list:
    """The real entries of a catalogue (not the header)."""
    return [m for m in catalogue if m.id]


def is_translated(message) -> bool:
    return bool(message.string) and not message.fuzzy


@dataclass
class Stats:
    document: str
    total: int
    translated: int
    fuzzy: int
    obsolete: int

    @property
    def untranslated(self) -> int:
        return self.total - self.translated - self.fuzzy


def catalogue_stats(po_dir: Path) -> list[Stats]:
    out = []
    for document, catalogue in read_catalogues(po_dir).items():
        entries = messages(catalogue)
        out.append(
            Stats(
                document,
                total=len(entries),
                translated=sum(is_translated(m) for m in entries),
                fuzzy=sum(bool(m.fuzzy and m.string) for m in entries),
                obsolete=len(catalogue.obsolete),
            )
        )
    return out


def format_stats(rows: list[Stats]) -> str:
    width = max([len(r.document) for r in rows] + [8])
    lines = [f"{'document':<{width}}  total  translated  fuzzy  untranslated  obsolete"]
    for r in [*rows, _total(rows)]:
        share = f"{r.translated / r.total:.0%}" if r.total else "-"
        lines.append(
            f"{r.document:<{width}}  {r.total:5d}  {r.translated:6d} {share:>4}  {r.fuzzy:5d}"
            f"  {r.untranslated:12d}  {r.obsolete:8d}"
        )
    return "\n".join(lines)


def _total(rows: list[Stats]) -> Stats:
    return Stats(
        "TOTAL",
        sum(r.total for r in rows),
        sum(r.translated for r in rows),
        sum(r.fuzzy for r in rows),
        sum(r.obsolete for r in rows),
    )


# Markup a translation must keep exactly as the English has it.
_MATH = re.compile(r"(?<![\\$])\$(?!\$)(?:[^$\\]|\\.)+?\$")
_LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")


# A role or an inline code span, whichever starts first: scanning left to right keeps
# "`{person} {city}`, joined by `;`" one code span, not a role "{city}`, joined by `".
_ROLE_OR_CODE = re.compile(r"(?P<role>\{[a-z][\w:.-]*\}`[^`]*`)|(?P<code>`[^`\n]+`)")


def _protected(text: str) -> Counter:
    """Formulas, roles, inline code and link targets of a message (a multiset)."""
    found: Counter = Counter()
    for match in _ROLE_OR_CODE.finditer(text):
        role = match.group("role")
        found[_role_key(role) if role else match.group()] += 1
    rest = _ROLE_OR_CODE.sub(" ", text)
    for match in _MATH.finditer(rest):
        found[match.group()] += 1
    rest = _MATH.sub(" ", rest)
    for match in _LINK_TARGET.finditer(rest):
        found["link " + match.group(1)] += 1
    return found


def _stray_emphasis(text: str) -> int:
    """Asterisks left as text once ``text`` is rendered as CommonMark inline markup (code,
    roles and formulas removed first). A closing ``**`` right after CJK punctuation and
    before a CJK character does not close (CommonMark's flanking rules), so the asterisks
    would show on the page: ``**更正：**把`` fails, ``**更正：** 把`` renders."""
    bare = _MATH.sub(" ", _ROLE_OR_CODE.sub(" ", text))
    return _commonmark().renderInline(bare).count("*")


def _blocks(text: str) -> list[str]:
    """What CommonMark reads ``text`` as, block by block (paragraph, ordered list, ...).

    Sphinx parses a translated paragraph on its own and applies it only if the result is a
    paragraph, and only its first block: a table cell or heading "1. Scaled dot-product
    attention" translated "1. 缩放点积注意力" reads as a list, and the page silently keeps
    the English. (Plain CommonMark, not MyST: the markers that matter are the same.)"""
    tokens = [t.type for t in _commonmark().parse(text) if t.level == 0 and t.nesting != -1]
    return [t.removesuffix("_open").replace("_", " ") for t in tokens] or ["paragraph"]


@functools.cache
def _commonmark():
    """One CommonMark parser for every message (markdown-it, the parser under MyST)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")


_GLUE = re.compile(r"\{glue(?::\w+)?\}`([^`]*)`")


def bare_glue(text: str) -> list[str]:
    """Glue roles of a translation that do not name their document.

    myst-nb resolves ``{glue:text}`key``` while it parses the notebook; Sphinx parses each
    translation later, on its own, where the notebook's outputs are gone ("No key ... found
    in glue data"). The form ``{glue:text}`01_x.ipynb::key``` (the notebook's file,
    relative to its folder) is resolved after reading, from the notebook's saved outputs, so
    translations must use it."""
    return [m.group() for m in _GLUE.finditer(text) if "::" not in m.group(1)]


def _glued(document: str, text: str) -> Counter:
    """The glued values of a message: (document they come from, key and format)."""
    found: Counter = Counter()
    for match in _GLUE.finditer(text):
        path, _, key = match.group(1).rpartition("::")
        source = posixpath.normpath(posixpath.join(posixpath.dirname(document), path))
        source = posixpath.splitext(source)[0]  # a path names the file: 01_x.ipynb
        found[(source if path else document, key)] += 1
    return found


def _role_key(role: str) -> str:
    """A role with its target: the link text of ``{doc}`text <target>``` may be translated,
    the target and the role may not; a role without explicit text is kept whole, except
    ``{term}`` (whose text is the English term)."""
    name, _, body = role.partition("`")
    body = body[:-1]
    if name.startswith("{glue"):  # the same value, named with or without its document
        body = body.split("::", 1)[-1]
    target = re.search(r"<([^<>]+)>$", body)
    if target:
        return f"{name}`<{target.group(1)}>`"
    return f"{name}`{body}`"


def markup_problems(document: str, message) -> list[str]:
    """What the translation of one message lost or added of the protected markup."""
    problems = [
        f"{document}: glue must name its document in a translation: write"
        f" {role.replace('`', '`' + Path(document).name + '.ipynb::', 1)}"
        f" in {_short(message.id)!r}"
        for role in bare_glue(message.string)
    ]
    if _glued(document, message.id) != _glued(document, message.string):
        problems.append(
            f"{document}: glued values differ from the English in {_short(message.id)!r}:"
            f" {sorted(_glued(document, message.string))}"
        )
    blocks = _blocks(message.string)
    if blocks[0] != "paragraph":
        problems.append(
            f"{document}: the translation reads as a {blocks[0]}, which Sphinx drops (it keeps"
            f" the English): escape the marker (1\\. on the page, 1\\\\. in the .po file) in"
            f" {_short(message.string)!r}"
        )
    elif len(blocks) > len(_blocks(message.id)):
        problems.append(
            f"{document}: the translation is {len(blocks)} blocks (a blank line?), of which"
            f" Sphinx keeps the first, in {_short(message.string)!r}"
        )
    if _stray_emphasis(message.string) > _stray_emphasis(message.id):
        problems.append(
            f"{document}: bold or italic does not close (put a space after a closing ** that"
            f" follows Chinese punctuation) in {_short(message.string)!r}"
        )
    expected, got = _protected(message.id), _protected(message.string)
    if expected == got:
        return problems
    # {term}`English` may become {term}`中文 <English (中文)>`: same target, other text
    missing, extra = expected - got, got - expected
    out = []
    if missing:
        out.append(f"missing {sorted(missing)}")
    if extra:
        out.append(f"added {sorted(extra)}")
    return [*problems, f"{document}: markup changed in {_short(message.id)!r}: {'; '.join(out)}"]


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def catalogue_problems(
    po_dir: Path, *, complete: bool, source_root: Path | None = None
) -> list[str]:
    """Obsolete entries and broken markup (and, when ``complete``, untranslated or fuzzy);
    with ``source_root``, catalogues of documents that no longer exist there."""
    problems = []
    catalogues = read_catalogues(po_dir)
    if not catalogues:
        return [f"no catalogues under {po_dir}"]
    for document, catalogue in catalogues.items():
        if source_root is not None and not any(
            (source_root / f"{document}{suffix}").is_file() for suffix in (".md", ".ipynb")
        ):
            problems.append(f"{document}: catalogue of a document the book no longer has")
        if catalogue.obsolete:
            problems.append(
                f"{document}: {len(catalogue.obsolete)} obsolete entries"
                " (run `python tools/i18n.py update --prune`)"
            )
        for message in messages(catalogue):
            if message.fuzzy and message.string:
                if complete:
                    problems.append(f"{document}: fuzzy: {_short(message.id)!r}")
                continue
            if not message.string:
                if complete:
                    problems.append(f"{document}: untranslated: {_short(message.id)!r}")
                continue
            problems += markup_problems(document, message)
    return problems


def prune_obsolete(po_dir: Path) -> int:
    """Drop the obsolete entries of every catalogue; returns how many were dropped."""
    dropped = 0
    for path in sorted(po_dir.rglob("*.po")):
        catalogue = read_catalogue(path)
        if catalogue.obsolete:
            dropped += len(catalogue.obsolete)
            catalogue.obsolete.clear()
            with path.open("wb") as f:
                write_po(f, catalogue, width=0, omit_header=False)
    return dropped


class _SwitchFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and "edition-switch" in (values.get("class") or "").split():
            self.hrefs.append(values.get("href") or "")


_NOT_PAGES = {
    "_static",
    "_sources",
    "_images",
    "_downloads",
    "_panels_static",
    "genindex.html",
    "search.html",
}


def edition_pages(html: Path, *, skip: str | None = None) -> list[Path]:
    """The content pages of one edition's build (not the search and index pages)."""
    pages = []
    for path in sorted(html.rglob("*.html")):
        rel = path.relative_to(html)
        if rel.parts[0] in _NOT_PAGES or rel.parts[0].startswith(".") or rel.parts[0] == skip:
            continue
        if rel.as_posix() == "index.html":  # Jupyter Book's redirect to the first page
            continue
        pages.append(path)
    return pages


def switcher_problems(html_en: Path, html_zh: Path) -> list[str]:
    """Pages of either edition whose switcher is missing or points at no page."""
    if not (html_en / "index.html").is_file() or not (html_zh / "index.html").is_file():
        return [f"the two editions are not built ({html_en}, {html_zh}): run tools/build_book.sh"]
    problems = []
    for html, skip in ((html_en, html_zh.name), (html_zh, None)):
        for page in edition_pages(html, skip=skip):
            finder = _SwitchFinder()
            finder.feed(page.read_text(encoding="utf-8"))
            rel = page.relative_to(html_en).as_posix()
            if len(finder.hrefs) != 1:
                problems.append(f"{rel}: {len(finder.hrefs)} edition switchers (expected 1)")
                continue
            href = finder.hrefs[0]
            if urlsplit(href).scheme or href.startswith("/"):
                problems.append(f"{rel}: switcher link {href!r} is not relative")
                continue
            target = (page.parent / unquote(urlsplit(href).path)).resolve()
            other = html_en if html is html_zh else html_zh
            if not target.is_file():
                problems.append(f"{rel}: switcher link {href!r} points at no page")
            elif (
                target.relative_to(other.resolve()).as_posix() != page.relative_to(html).as_posix()
            ):
                problems.append(f"{rel}: switcher link {href!r} is not the same page")
    return problems


def _same_page(target: Path, edition: Path, page: Path) -> bool:
    try:
        return target.relative_to(edition.resolve()) == page
    except ValueError:  # outside that edition
        return False


def sync_problems(pot_dir: Path, po_dir: Path, *, complete: bool) -> list[str]:
    """Catalogues out of step with the templates just extracted from the English.

    A *translated* message whose English is gone (the English changed under a finished
    translation) is always a problem: ``tools/i18n.py update`` turns it into a fuzzy entry
    for the translator to review. With ``complete``, so are English messages or pages that
    have no entry yet, and untranslated entries whose English is gone."""
    if not pot_dir.is_dir():
        return [f"no templates in {pot_dir}: run `python tools/i18n.py extract`"]
    templates = read_templates(pot_dir)
    catalogues = read_catalogues(po_dir)
    problems = []
    for document, template in templates.items():
        catalogue = catalogues.get(document)
        if catalogue is None:
            if complete:
                problems.append(f"{document}: no catalogue (run `python tools/i18n.py update`)")
            continue
        english = {m.id for m in messages(template)}
        for message in messages(catalogue):
            if message.id in english:
                continue
            if is_translated(message) or complete:
                problems.append(
                    f"{document}: the English of {_short(message.id)!r} has changed or gone"
                    " (run `python tools/i18n.py update` and review the fuzzy entries)"
                )
        if complete:
            known = {m.id for m in messages(catalogue)}
            missing = [m.id for m in messages(template) if m.id not in known]
            if missing:
                problems.append(
                    f"{document}: {len(missing)} English messages not in the catalogue"
                    " (run `python tools/i18n.py update`)"
                )
    return problems
