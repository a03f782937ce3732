"""The Chinese edition's machinery: catalogue checks, terminology check, edition switcher.

Each check is fed a catalogue (or a site) with a known fault and must find it, then runs
on the real catalogues of ``book/locales/zh_CN`` (and, when the book is built, on the
switcher links of both editions). The translation is complete: an untranslated or fuzzy
message fails (an English change lands only with its translation).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import attnkit_i18n  # noqa: E402
from check_terms import check_catalogues, message_problems, term_base  # noqa: E402
from i18n_catalogues import (  # noqa: E402
    catalogue_problems,
    catalogue_stats,
    read_catalogues,
    switcher_problems,
    sync_problems,
)

CATALOGUES = ROOT / "book" / "locales" / "zh_CN" / "LC_MESSAGES"
GLOSSARY = ROOT / "book" / "glossary.md"
TERMS = term_base(GLOSSARY)


def _write(path: Path, entries: list[tuple[str, str, bool]], obsolete: tuple = ()) -> Path:
    """A catalogue with (msgid, msgstr, fuzzy) entries and obsolete msgids."""
    catalogue = Catalog(locale="zh_CN")
    for msgid, msgstr, fuzzy in entries:
        catalogue.add(msgid, msgstr, flags=("fuzzy",) if fuzzy else ())
    for msgid in obsolete:
        catalogue.obsolete[msgid] = catalogue.add(msgid, "旧的翻译")
        del catalogue[msgid]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalogue, width=0)
    return path


# ---------------------------------------------------------------- the term base


def test_term_base_reads_the_glossary():
    terms = {t.english: t for t in TERMS}
    assert "多头注意力" in terms["Multi-head attention"].accepted()
    assert "多头自注意力" in terms["Multi-head attention"].accepted()  # table 中文 → English
    assert terms["Transformer"].accepted() == ["Transformer"]  # no Chinese: kept
    assert {"查询", "键", "值"} <= {c for t in TERMS for c in t.chinese}  # split parts
    assert "注意力" in terms["Attention"].accepted()  # 注意力机制 without 机制
    assert "RoPE" in terms["RoPE"].accepted()  # an abbreviation may stay
    assert "Attention rollout" in terms["Attention rollout"].accepted()  # the glossary says so
    assert "Token" not in terms["Token"].accepted()  # 词元, not token
    assert len(TERMS) >= 100


@pytest.mark.parametrize(
    ("english", "chinese", "problem"),
    [
        ("The Transformer has no recurrence.", "变压器没有循环结构。", "变压器"),
        ("The Transformer has no recurrence.", "变换器没有循环结构。", "Transformer"),
        ("Multi-head attention runs H heads.", "多个头的关注并行运行。", "Multi-head attention"),
        ("Each token gets a vector.", "每个 token 得到一个向量。", "Token"),
        ("Positional encodings add order.", "位置嵌入加入了顺序。", "Positional encoding"),
        ("Queries and keys are compared.", "把查询与钥匙比较。", "key"),
        ("Pre-LN trains deep stacks.", "前置归一化能训练很深的堆叠。", "pre-LN"),
    ],
)
def test_terminology_check_finds_a_wrong_term(english, chinese, problem):
    problems = message_problems(english, chinese, TERMS)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("The Transformer has no recurrence.", "Transformer 没有循环结构。"),
        ("Multi-head attention runs H heads.", "多头注意力并行运行 H 个头。"),
        ("Each token gets a vector.", "每个词元得到一个向量。"),
        ("Queries and keys are compared.", "把查询与键相比较。"),
        ("RoPE rotates queries.", "RoPE 旋转查询向量。"),
        ("Rotary position embedding rotates queries.", "旋转位置编码旋转查询向量。"),
        ("Normalise to zero mean.", "归一化为零均值。"),  # zero is not ZeRO
        # terms inside formulas, code and roles are not prose
        (
            "See {doc}`transformer <../notebooks/03_transformer>` and `ak.Transformer`.",
            "见 {doc}`这一章 <../notebooks/03_transformer>` 和 `ak.Transformer`。",
        ),
    ],
)
def test_terminology_check_accepts_the_glossary_term(english, chinese):
    assert message_problems(english, chinese, TERMS) == []


def test_terminology_check_reads_a_catalogue(tmp_path):
    po = tmp_path / "LC_MESSAGES"
    _write(
        po / "book" / "x.po", [("Self-attention in a Transformer.", "变压器中的自注意力。", False)]
    )
    problems = check_catalogues(po, GLOSSARY)
    assert len(problems) == 2 and all("book/x" in p for p in problems), problems
    # untranslated and fuzzy messages are not checked for terms (not shown as Chinese)
    _write(po / "book" / "x.po", [("Self-attention in a Transformer.", "变压器", True)])
    assert check_catalogues(po, GLOSSARY) == []


# ---------------------------------------------------------------- the catalogues


def test_catalogue_check_finds_obsolete_untranslated_fuzzy_and_broken_markup(tmp_path):
    po = tmp_path / "LC_MESSAGES"
    _write(
        po / "book" / "intro.po",
        [
            ("Scores are divided by $\\sqrt{d_k}$.", "分数除以 $\\sqrt{d}$。", False),
            ("See {ref}`ch01-masks`.", "见 {ref}`ch02-masks`。", False),
            ("Call `ak.attention`.", "调用 ak.attention。", False),
            ("Read [the docs](https://example.org).", "阅读[文档](https://example.com)。", False),
            ("Untouched.", "", False),
            ("Changed in English.", "旧译文", True),
            (
                "Fine: {doc}`the intro <intro>` and $x$.",
                "没问题：{doc}`引言 <intro>` 和 $x$。",
                False,
            ),
        ],
        obsolete=("A sentence the English no longer has.",),
    )
    problems = catalogue_problems(po, complete=False)
    joined = "\n".join(problems)
    assert "1 obsolete entries" in joined
    assert sum("markup changed" in p for p in problems) == 4, joined
    assert "Fine:" not in joined and "untranslated" not in joined and "fuzzy" not in joined
    complete = "\n".join(catalogue_problems(po, complete=True))
    assert "untranslated: 'Untouched.'" in complete
    assert "fuzzy: 'Changed in English.'" in complete


def test_catalogue_of_a_removed_document_is_a_problem(tmp_path):
    po = tmp_path / "LC_MESSAGES"
    _write(po / "book" / "gone.po", [("Hello.", "你好。", False)])
    (tmp_path / "src" / "book").mkdir(parents=True)
    problems = catalogue_problems(po, complete=False, source_root=tmp_path / "src")
    assert problems == ["book/gone: catalogue of a document the book no longer has"]
    (tmp_path / "src" / "book" / "gone.md").write_text("# Hello\n", encoding="utf-8")
    assert catalogue_problems(po, complete=False, source_root=tmp_path / "src") == []


def test_the_real_catalogues_pass_every_check():
    """Every message translated, none fuzzy, no obsolete entries, no broken markup or
    emphasis, no catalogue without its document, and the glossary's terms everywhere."""
    assert catalogue_problems(CATALOGUES, complete=True, source_root=ROOT) == []
    assert check_catalogues(CATALOGUES, GLOSSARY) == []


def test_the_real_catalogues_cover_the_book_and_are_translated():
    documents = set(read_catalogues(CATALOGUES))
    sources = {
        p.relative_to(ROOT).with_suffix("").as_posix()
        for folder in ("notebooks", "exercises")
        for p in (ROOT / folder).glob("[0-9][0-9]_*.ipynb")
    }
    assert sources <= documents, sorted(sources - documents)
    assert {"book/intro", "book/glossary", "book/errata", "book/interview"} <= documents
    stats = {s.document: s for s in catalogue_stats(CATALOGUES)}
    assert all(st.translated == st.total and st.fuzzy == 0 for st in stats.values()), [
        (st.document, st.translated, st.total) for st in stats.values() if st.translated < st.total
    ]
    assert sum(st.total for st in stats.values()) > 4000
    assert not any(s.document.startswith("book/api/") for s in stats.values())


# ---------------------------------------------------------------- the switcher


@pytest.mark.parametrize(
    ("page", "language", "href"),
    [
        ("book/intro", "en", "../zh_CN/book/intro.html"),
        ("book/intro", "zh_CN", "../../book/intro.html"),
        ("book/api/core", "en", "../../zh_CN/book/api/core.html"),
        ("genindex", "en", "zh_CN/genindex.html"),
        ("genindex", "zh_CN", "../genindex.html"),
    ],
)
def test_switcher_link_is_relative_to_the_same_page(page, language, href):
    assert attnkit_i18n.other_edition_href(page, language) == href


def _page(path: Path, href: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    link = f'<a class="btn edition-switch" href="{href}">x</a>' if href else ""
    path.write_text(f"<html><body>{link}</body></html>", encoding="utf-8")


def test_switcher_check_finds_missing_and_broken_links(tmp_path):
    en, zh = tmp_path / "html", tmp_path / "html" / "zh_CN"
    for root in (en, zh):
        (root / "index.html").parent.mkdir(parents=True, exist_ok=True)
        (root / "index.html").write_text("<meta http-equiv='Refresh'>", encoding="utf-8")
    _page(en / "book" / "intro.html", "../zh_CN/book/intro.html")
    _page(zh / "book" / "intro.html", "../../book/intro.html")
    assert switcher_problems(en, zh) == []
    _page(en / "book" / "glossary.html", "../zh_CN/book/glossary.html")  # no zh page
    _page(zh / "book" / "errata.html", None)  # no switcher
    _page(zh / "book" / "errata2.html", "../../book/intro.html")  # another page
    problems = "\n".join(switcher_problems(en, zh))
    assert (
        "book/glossary.html: switcher link '../zh_CN/book/glossary.html' points at no" in problems
    )
    assert "zh_CN/book/errata.html: 0 edition switchers" in problems
    assert (
        "zh_CN/book/errata2.html: switcher link '../../book/intro.html' is not the same" in problems
    )


def _chinese_edition() -> Path:
    from book_site import IN_CI, require_book

    zh = require_book() / attnkit_i18n.ZH_FOLDER
    if not (zh / "index.html").is_file():
        message = f"the Chinese edition is not built ({zh}): bash tools/build_book.sh"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return zh


def test_switcher_links_of_the_built_book_resolve():
    zh = _chinese_edition()
    assert switcher_problems(zh.parent, zh) == []


def test_sync_check_finds_english_changed_under_a_translation(tmp_path):
    pot, po = tmp_path / "gettext", tmp_path / "LC_MESSAGES"
    _write(pot / "book" / "intro.pot", [("New sentence.", "", False), ("Kept.", "", False)])
    _write(pot / "book" / "new_page.pot", [("Hello.", "", False)])
    _write(
        po / "book" / "intro.po",
        [("Old sentence.", "旧句子。", False), ("Kept.", "保留。", False), ("Gone.", "", False)],
    )
    problems = sync_problems(pot, po, complete=False)
    assert len(problems) == 1 and "'Old sentence.' has changed or gone" in problems[0]
    complete = "\n".join(sync_problems(pot, po, complete=True))
    assert "'Gone.' has changed or gone" in complete
    assert "book/intro: 1 English messages not in the catalogue" in complete
    assert "book/new_page: no catalogue" in complete


def test_the_real_catalogues_match_the_english():
    """No translation whose English has changed since it was translated (the templates
    are extracted by tools/build_book.sh, or `python tools/i18n.py extract`)."""
    from book_site import IN_CI

    pot = ROOT / "_build" / "gettext"
    if not pot.is_dir():
        message = f"no templates in {pot}: bash tools/build_book.sh (or tools/i18n.py extract)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    assert sync_problems(pot, CATALOGUES, complete=True) == []


def _search_terms(html: Path) -> set[str]:
    text = (html / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(text[text.index("(") + 1 : text.rindex(")")])
    return set(index["terms"])


def test_chinese_search_index_has_chinese_words():
    """The Chinese edition's search index is cut into words (jieba, with the glossary's
    terms as a user dictionary): a query for a term matches it, not only a whole line."""
    from book_site import IN_CI, require_book

    html = require_book()
    zh = html / attnkit_i18n.ZH_FOLDER
    if not (zh / "searchindex.js").is_file():
        message = f"the Chinese edition is not built ({zh}): bash tools/build_book.sh"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    terms = _search_terms(zh)
    assert {"自注意力", "多头注意力", "注意力", "基本概念", "位置编码"} <= terms
    assert "基本概念" not in _search_terms(html)  # English cuts at spaces only


def test_glue_in_a_translation_must_name_its_document(tmp_path):
    """myst-nb resolves a bare {glue:text}`key` only while parsing the notebook; Sphinx
    parses translations afterwards, so they must use the form with the document's path."""
    po = tmp_path / "LC_MESSAGES"
    english = "The answer is {glue:text}`ch01_answer:.2f`."
    _write(
        po / "notebooks" / "01_x.po", [(english, "答案是 {glue:text}`ch01_answer:.2f`。", False)]
    )
    problems = catalogue_problems(po, complete=False)
    assert len(problems) == 1 and "{glue:text}`01_x.ipynb::ch01_answer:.2f`" in problems[0], (
        problems
    )
    good = "答案是 {glue:text}`01_x.ipynb::ch01_answer:.2f`。"
    _write(po / "notebooks" / "01_x.po", [(english, good, False)])
    assert catalogue_problems(po, complete=False) == []
    _write(po / "notebooks" / "01_x.po", [(english, good.replace(".2f", ".3f"), False)])
    assert "markup changed" in catalogue_problems(po, complete=False)[-1]
    wrong_path = good.replace("01_x.ipynb::", "notebooks/01_x.ipynb::")  # relative to notebooks/
    _write(po / "notebooks" / "01_x.po", [(english, wrong_path, False)])
    assert "glued values differ" in catalogue_problems(po, complete=False)[0]


def test_code_span_with_braces_is_code_not_a_role(tmp_path):
    """`{person} {city}`, joined by `;` holds two code spans, not a role {city}`...`."""
    po = tmp_path / "LC_MESSAGES"
    english = "Sentences `{person} {verb} {city}`, joined by `;`."
    _write(
        po / "book" / "x.po", [(english, "句子形如 `{person} {verb} {city}`，用 `;` 连接。", False)]
    )
    assert catalogue_problems(po, complete=False) == []
    _write(po / "book" / "x.po", [(english, "句子形如 `{person} {city}`，用 `;` 连接。", False)])
    assert "markup changed" in catalogue_problems(po, complete=False)[0]


def test_bold_that_cannot_close_after_chinese_punctuation_is_a_problem(tmp_path):
    """CommonMark: a closing ** after CJK punctuation and before a CJK character does not
    close, and the page shows the asterisks."""
    po = tmp_path / "LC_MESSAGES"
    english = "**Correction:** the scale is one over the square root."
    _write(po / "book" / "x.po", [(english, "**更正：**缩放因子是平方根的倒数。", False)])
    problems = catalogue_problems(po, complete=False)
    assert len(problems) == 1 and "does not close" in problems[0], problems
    _write(po / "book" / "x.po", [(english, "**更正：** 缩放因子是平方根的倒数。", False)])
    assert catalogue_problems(po, complete=False) == []


@pytest.mark.parametrize(
    ("english", "chinese", "block"),
    [
        ("1. Scaled dot-product attention", "1. 缩放点积注意力", "ordered list"),
        ("- the first bullet's text", "- 第一条", "bullet list"),
        ("> a quotation", "> 引文", "blockquote"),
    ],
)
def test_translation_that_reads_as_a_block_is_a_problem(tmp_path, english, chinese, block):
    """Sphinx parses each translation on its own and applies it only if it is a paragraph:
    a table cell or a heading "1. ..." translated "1. ..." kept the English silently."""
    po = tmp_path / "LC_MESSAGES"
    _write(po / "book" / "x.po", [(english, chinese, False)])
    problems = catalogue_problems(po, complete=False)
    assert len(problems) == 1 and f"reads as a {block}" in problems[0], problems
    escaped = chinese.replace(". ", "\\. ", 1) if block == "ordered list" else "\\" + chinese
    _write(po / "book" / "x.po", [(english, escaped, False)])
    assert catalogue_problems(po, complete=False) == []


def test_the_chinese_pages_show_the_translated_headings_table_cells_and_parts():
    """The built Chinese edition uses the translations the block check protects, and the
    part captions of the sidebar (translated after sphinx-external-toc inserts them)."""
    zh = _chinese_edition()
    interview = (zh / "book" / "interview.html").read_text()
    intro = (zh / "book" / "intro.html").read_text()
    chapter = (zh / "notebooks" / "01_scaled_dot_product_attention.html").read_text()
    assert "1. Basic concepts and principles" not in interview
    assert "1. 基本概念和原理" in interview
    assert "1. Scaled dot-product attention" not in intro
    assert "<p>1. 缩放点积注意力</p>" in intro
    captions = re.findall(r'caption-text">([^<]*)<', chapter)
    assert captions and "Foundations" not in captions and "基础" in captions, captions


def _sources() -> list[Path]:
    return [*sorted((ROOT / "book").glob("*.md")), *sorted((ROOT / "notebooks").glob("[0-9]*.py"))]


def test_every_english_rendering_of_chinese_is_english_only():
    """A seed quotation's English ('> "..."' after the Chinese) and an interview question's
    ('**Question:**' after '**题目：**') sit in an english-only block, so the Chinese
    edition shows the original once and nobody back-translates it."""
    loose = []
    for path in _sources():
        lines = path.read_text().splitlines()
        inside = False
        for number, line in enumerate(lines, 1):
            bare = re.sub(r"^(?:# )?(?:> )?", "", line)
            if bare.startswith(":::{english-only}"):
                inside = True
            elif inside and bare.startswith(":::"):
                inside = False
            elif not inside and (
                bare.startswith("**Question:**") or (line.lstrip("# ").startswith('> "'))
            ):
                loose.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:60]}")
    assert not loose, "English renderings outside an english-only block:\n" + "\n".join(loose)


def test_english_only_text_is_neither_a_message_nor_in_the_chinese_pages():
    pot = ROOT / "_build" / "gettext" / "book" / "errata.pot"
    zh = _chinese_edition()
    english = "To keep overly large values from causing vanishing gradients"
    assert english in (zh.parent / "book" / "errata.html").read_text()
    assert english not in (zh / "book" / "errata.html").read_text()
    assert "english-only" not in (zh / "book" / "interview.html").read_text()
    if pot.is_file():
        assert english not in pot.read_text()


def test_translation_of_one_paragraph_in_two_is_a_problem(tmp_path):
    """Sphinx keeps only the first block of a translation: the second would be lost."""
    po = tmp_path / "LC_MESSAGES"
    _write(po / "book" / "x.po", [("One sentence, then another.", "一句。\n\n又一句。", False)])
    problems = catalogue_problems(po, complete=False)
    assert len(problems) == 1 and "2 blocks" in problems[0], problems
    _write(po / "book" / "x.po", [("One sentence, then another.", "一句，又一句。", False)])
    assert catalogue_problems(po, complete=False) == []
