"""The Chinese edition: message catalogues, the zh build and their checks (Sphinx gettext).

The English sources stay the single source of truth. Sphinx's internationalisation cuts
every translatable piece of prose (paragraphs, headings, list items, table cells, figure
captions, admonitions, glossary terms; the markdown cells of chapters and exercises) into
a *message*; translators write the Chinese of each message in a gettext catalogue,
``book/locales/zh_CN/LC_MESSAGES/<document>.po``; the Chinese build replaces each message
by its translation. Code, code outputs and formulas are not messages.

The Chinese build reads the executed chapters from the execution cache (``_build/.jupyter_cache``,
filled by ``tools/execute_chapters.py``): no chapter is executed again. A chapter that is
not in the cache stops the command (run ``tools/build_book.sh`` or
``tools/execute_chapters.py`` first).

    python tools/i18n.py extract        # English sources -> _build/gettext/*.pot
    python tools/i18n.py update         # extract, then merge into the zh_CN catalogues
    python tools/i18n.py build          # the Chinese edition -> _build/html/zh_CN
    python tools/i18n.py stats          # messages per document: translated, fuzzy, ...
    python tools/i18n.py check          # obsolete entries, English changed under a
                                        # translation, terminology, markup, switcher
    python tools/i18n.py check --complete   # ... and fail on untranslated or fuzzy too

After an English change a translator runs ``update``, translates the new messages (the
entries without a ``msgstr``, and those marked ``#, fuzzy``: a changed sentence whose old
translation gettext kept as a guess, to be reviewed and the flag removed), then
``update --prune`` drops the entries of messages that no longer exist.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

LANGUAGE = "zh_CN"
LOCALES = ROOT / "book" / "locales"
CATALOGUES = LOCALES / LANGUAGE / "LC_MESSAGES"
BUILD = ROOT / "_build"
POT = BUILD / "gettext"
HTML_EN = BUILD / "html"
# The Chinese edition lives inside the English one, so that one local server (or the
# file system) holds both and the switcher's links are plain relative links.
HTML_ZH = HTML_EN / LANGUAGE


def sphinx_build(builder: str, outdir: Path, doctrees: Path, **overrides: object) -> int:
    """Run Sphinx on the book with Jupyter Book's configuration (``_config.yml``,
    ``_toc.yml``), as ``jupyter-book build --warningiserror --nitpick --keep-going``
    does, plus ``overrides`` of the Sphinx configuration. Returns Sphinx's status."""
    from jupyter_book.sphinx import build_sphinx

    config = {
        "external_toc_path": (ROOT / "_toc.yml").as_posix(),
        "latex_individualpages": False,
        "nitpicky": True,
        **overrides,
    }
    result = build_sphinx(
        str(ROOT),
        str(outdir),
        noconfig=True,
        path_config=str(ROOT / "_config.yml"),
        confoverrides=config,
        builder=builder,
        doctreedir=str(doctrees),
        warningiserror=True,
        keep_going=True,
    )
    if isinstance(result, Exception):
        return 1
    return int(result)


def require_executed_chapters() -> None:
    """Stop unless every chapter is in the execution cache (the build would run it)."""
    import nbformat
    from execute_chapters import CACHE, chapter_paths
    from jupyter_cache import get_cache

    cache = get_cache(str(CACHE))
    missing = []
    for path in chapter_paths([]):
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            missing.append(path.name)
    if missing:
        raise SystemExit(
            f"error: {len(missing)} chapter(s) not in the execution cache ({', '.join(missing)});"
            " run `python tools/execute_chapters.py` (or tools/build_book.sh) first:"
            " the Chinese edition never executes a chapter itself."
        )


def extract() -> int:
    """English sources -> ``_build/gettext/<document>.pot`` (one template per document).

    Messages come from the markdown only (code and outputs are never messages), so the
    extraction reads the notebooks without executing them or reading the cache."""
    start = time.perf_counter()
    status = sphinx_build(
        "gettext",
        POT,
        BUILD / ".doctrees-gettext",
        nb_execution_mode="off",
        # without outputs the glued values are missing; they are not part of any message
        suppress_warnings=["mystnb.unknown_mime_type", "mystnb.glue", "mystnb.glue_ref"],
    )
    from i18n_catalogues import UNTRANSLATED_DOCUMENTS, read_templates

    for folder in UNTRANSLATED_DOCUMENTS:  # also after a failed run: never offered to translate
        shutil.rmtree(POT / folder, ignore_errors=True)
    if status == 0:
        templates = read_templates(POT)
        total = sum(len(t) for t in templates.values())
        print(
            f"==> {total} messages in {len(templates)} documents -> {POT} "
            f"({time.perf_counter() - start:.0f} s)"
        )
    return status


def update(prune: bool) -> int:
    """Extract, then merge the templates into the zh_CN catalogues (sphinx-intl)."""
    status = extract()
    if status:
        return status
    from i18n_catalogues import prune_obsolete
    from sphinx_intl.basic import update as intl_update

    intl_update(str(LOCALES), str(POT), (LANGUAGE,), line_width=-1, ignore_obsolete=prune)
    if prune:
        prune_obsolete(CATALOGUES)
    return 0


def translated_title() -> str | None:
    """The book's title (``_config.yml``) as the intro's catalogue translates it."""
    import yaml
    from i18n_catalogues import read_catalogue

    title = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["title"]
    intro = CATALOGUES / "book" / "intro.po"
    if not intro.is_file():
        return None
    message = read_catalogue(intro).get(title)
    return message.string if message is not None and message.string else None


def write_search_dictionary() -> Path:
    """The glossary's Chinese terms as a jieba user dictionary (one word a line)."""
    from check_terms import term_base

    words = sorted(
        {
            form
            for term in term_base(ROOT / "book" / "glossary.md")
            for form in term.chinese
            if " " not in form
            and any("\u4e00" <= c <= "\u9fff" for c in form)
            # X机制 is X + 机制: as one word it would hide X (自 + 注意力机制)
            and not form.endswith("机制")
        }
    )
    path = BUILD / "jieba_glossary.txt"
    path.parent.mkdir(exist_ok=True)
    # a high count: a glossary term beats the general dictionary's ways to cut it
    path.write_text("".join(f"{word} 1000000 n\n" for word in words), encoding="utf-8")
    return path


def build() -> int:
    """The Chinese edition -> ``_build/html/zh_CN`` (after the English one)."""
    require_executed_chapters()
    start = time.process_time(), time.perf_counter()
    overrides: dict[str, object] = {"language": LANGUAGE}
    title = translated_title()
    if title:
        overrides["html_title"] = title
    # Chinese search: Sphinx cuts the text into words with jieba; its dictionary does not
    # know the field's terms (自注意力 would become 自 + 注意力), so add the glossary's.
    overrides["html_search_options"] = {"dict": str(write_search_dictionary())}
    status = sphinx_build("html", HTML_ZH, BUILD / ".doctrees-zh_CN", **overrides)
    print(
        f"==> Chinese edition rendered in {time.perf_counter() - start[1]:.0f} s "
        f"({time.process_time() - start[0]:.0f} s CPU in this process): {HTML_ZH / 'index.html'}"
    )
    return status


def stats() -> int:
    from i18n_catalogues import catalogue_stats, format_stats

    print(format_stats(catalogue_stats(CATALOGUES)))
    return 0


def check(complete: bool, html: bool) -> int:
    from check_terms import check_catalogues
    from i18n_catalogues import catalogue_problems, switcher_problems, sync_problems

    problems = catalogue_problems(CATALOGUES, complete=complete, source_root=ROOT)
    problems += sync_problems(POT, CATALOGUES, complete=complete)
    problems += check_catalogues(CATALOGUES, ROOT / "book" / "glossary.md")
    if html:
        problems += switcher_problems(HTML_EN, HTML_ZH)
    for problem in problems:
        print(problem)
    print(f"==> {len(problems)} problem(s)" if problems else "==> catalogues OK")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("extract", help="English sources -> _build/gettext/*.pot")
    p_update = sub.add_parser("update", help="extract, then merge into the zh_CN catalogues")
    p_update.add_argument("--prune", action="store_true", help="drop obsolete entries")
    sub.add_parser("build", help="the Chinese edition -> _build/html/zh_CN")
    sub.add_parser("stats", help="messages per document")
    p_check = sub.add_parser("check", help="check the catalogues (and the switcher links)")
    p_check.add_argument(
        "--complete", action="store_true", help="also fail on untranslated or fuzzy messages"
    )
    p_check.add_argument(
        "--no-html", action="store_true", help="do not check the built HTML's switcher links"
    )
    args = parser.parse_args(argv)
    if args.command == "extract":
        return extract()
    if args.command == "update":
        return update(args.prune)
    if args.command == "build":
        return build()
    if args.command == "stats":
        return stats()
    return check(args.complete, not args.no_html)


if __name__ == "__main__":
    sys.exit(main())
