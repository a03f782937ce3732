"""The interview page (``book/interview.md``) keeps its promise for every question.

Each question is a ``###`` section, with a MyST label, under one of the three question
parts of the page, and has three parts: an **Answer**, an **Evidence** paragraph whose
links go to labelled sections of the book, and the **Wrong answers**. The source's twelve
questions keep their Chinese and English wording, the English identical to the overview
table, whose Chinese edition shows the Chinese original (not a back-translation). The
questions the page promises (the seed's twelve, the canonical Transformer questions and
the modern ones) must all be there, so that none is lost silently in an edit.

A static parse of the markdown: no build needed. The built book's links are checked by
``test_book_links.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "interview.md"
PARTS = (
    "The source's twelve questions",
    "The Transformer questions",
    "Attention in today's language models",
)
SEED_LABELS = {
    "interview-seed-basics",
    "interview-seed-advantages",
    "interview-seed-applications",
    "interview-seed-trends",
    "interview-seed-challenges",
    "interview-seed-algorithms",
    "interview-seed-transformer",
    "interview-seed-tasks",
    "interview-papers",
    "interview-seed-bert",
    "interview-seed-vision",
    "interview-seed-summary",
}
CANONICAL_LABELS = {
    "interview-sqrt-dk",
    "interview-dot-vs-additive",
    "interview-q-k-projections",
    "interview-masks",
    "interview-heads",
    "interview-positions",
    "interview-embedding-scale",
    "interview-residual",
    "interview-layernorm",
    "interview-pre-post-ln",
    "interview-ffn",
    "interview-cross-attention",
    "interview-decoder-mask",
    "interview-parallel",
    "interview-bpe",
    "interview-warmup",
    "interview-dropout",
    "interview-label-smoothing",
}
MODERN_LABELS = {
    "interview-kv-memory",
    "interview-mqa-gqa-mla",
    "interview-flash",
    "interview-paged",
    "interview-sinks",
    "interview-rope-scaling",
    "interview-stability",
    "interview-hybrids",
}
REF = re.compile(r"\{ref\}`(?:[^`<]*<)?([A-Za-z0-9_-]+)>?`")
LABEL = re.compile(r"^\(([A-Za-z0-9_-]+)\)=$", re.M)


def book_labels() -> set[str]:
    """Every MyST label defined in the chapters (``# (label)=``) and the book's pages."""
    labels = set()
    for path in (ROOT / "notebooks").glob("*.py"):
        labels |= set(re.findall(r"^# \(([A-Za-z0-9_-]+)\)=$", path.read_text(), re.M))
    for path in (ROOT / "book").glob("*.md"):
        labels |= set(LABEL.findall(path.read_text()))
    return labels


def questions(text: str) -> dict[str, tuple[str, str, str]]:
    """``{label: (part, heading, body)}`` for every ``###`` question of the three parts."""
    found: dict[str, tuple[str, str, str]] = {}
    parts = re.split(r"^## ", text, flags=re.M)
    for part in parts[1:]:
        title = part.splitlines()[0].strip()
        if title not in PARTS:
            continue
        # a question: "(label)=" on its own line, then a "### " heading, then its body
        for match in re.finditer(
            r"^\(([A-Za-z0-9_-]+)\)=\n### ([^\n]+)\n(.*?)(?=^\([A-Za-z0-9_-]+\)=\n###|\Z)",
            part,
            re.M | re.S,
        ):
            label, heading, body = match.groups()
            assert label not in found, f"label {label} used twice"
            found[label] = (title, heading, body)
    return found


def split_parts(body: str) -> dict[str, str]:
    """The text of the **Answer.**, **Evidence.** and **Wrong answers.** paragraphs."""
    pieces = re.split(r"\*\*(Answer|Evidence|Wrong answers)\.\*\*", body)
    return {pieces[i]: pieces[i + 1].strip() for i in range(1, len(pieces) - 1, 2)}


TEXT = PAGE.read_text(encoding="utf-8")
QUESTIONS = questions(TEXT)


def test_every_promised_question_is_on_the_page():
    expected = SEED_LABELS | CANONICAL_LABELS | MODERN_LABELS
    assert set(QUESTIONS) == expected, (
        f"missing: {sorted(expected - set(QUESTIONS))}, "
        f"unexpected: {sorted(set(QUESTIONS) - expected)}"
    )
    parts = {label: part for label, (part, _, _) in QUESTIONS.items()}
    assert {lab for lab, p in parts.items() if p == PARTS[0]} == SEED_LABELS
    assert {lab for lab, p in parts.items() if p == PARTS[1]} == CANONICAL_LABELS
    assert {lab for lab, p in parts.items() if p == PARTS[2]} == MODERN_LABELS


@pytest.mark.parametrize("label", sorted(QUESTIONS))
def test_question_has_answer_evidence_and_wrong_answers(label):
    _, heading, body = QUESTIONS[label]
    parts = split_parts(body)
    assert list(parts) == ["Answer", "Evidence", "Wrong answers"], (
        f"{heading!r}: parts {list(parts)}, expected Answer, Evidence, Wrong answers in order"
    )
    assert len(parts["Answer"].split()) >= 50, f"{heading!r}: the answer is too short"
    evidence = REF.findall(parts["Evidence"])
    in_book = [ref for ref in evidence if re.match(r"(ch\d\d|summary)-", ref)]
    assert in_book, f"{heading!r}: the evidence links no chapter section ({evidence})"
    assert len(parts["Wrong answers"].split()) >= 8, f"{heading!r}: no wrong answers"


def test_the_sources_wrong_answers_are_quoted_with_their_erratum():
    """Where a wrong-answer part quotes the source (「...」), it links an erratum."""
    quoting = 0
    for _, heading, body in QUESTIONS.values():
        wrong = split_parts(body)["Wrong answers"]
        if "「" in wrong:
            quoting += 1
            assert re.search(r"\{ref\}`E\d+ <errata-e\d+>`", wrong), (
                f"{heading!r} quotes the source without linking its erratum"
            )
    assert quoting >= 15, f"only {quoting} questions quote the source's wrong answer"


def seed_question_rows() -> list[str]:
    """The English questions of the overview table (``| section | question | chapters |``)."""
    table = TEXT.split("(interview-table)=", 1)[1].split("(interview-seed-basics)=", 1)[0]
    return [
        row.split("|")[2].strip()
        for row in table.splitlines()
        if row.startswith("| ") and not row.startswith("| Source section")
    ]


SEED_QUESTION = re.compile(
    r"\*\*题目：\*\* (请[^\n]+)\n\n:::\{english-only\}\n\*\*Question:\*\* (.+?)\n:::\n", re.S
)


def seed_questions() -> dict[str, str]:
    """Each seed section's question: its English rendering -> the Chinese it renders."""
    out = {}
    for part, heading, body in QUESTIONS.values():
        if part == PARTS[0]:
            found = SEED_QUESTION.findall(body)
            assert len(found) == 1, f"{heading!r}: no **题目：** + english-only **Question:**"
            chinese, english = found[0]
            out[" ".join(english.split())] = chinese.strip()
    return out


def test_the_seed_questions_are_verbatim_and_match_the_table():
    """Each table row is one section's question, whose ``**Question:**`` rendering (shown in
    the English edition only) follows the Chinese ``**题目：**`` it renders."""
    rows = seed_question_rows()
    assert len(rows) == 12, f"the overview table has {len(rows)} question rows, not 12"
    questions = list(seed_questions())  # in the order of the sections
    assert len(questions) == 12, f"{len(questions)} distinct seed questions, not 12"
    assert rows == questions, (
        "the table's questions and the sections' (in order) differ: "
        f"{[(r, q) for r, q in zip(rows, questions) if r != q]}"
    )


def test_the_chinese_table_shows_the_seeds_own_questions():
    """The Chinese edition's table gives each question in the seed's words (the section's
    **题目：**, which quotes the seed), not a back-translation of the English."""
    sys.path.insert(0, str(ROOT / "tools"))
    from i18n_catalogues import read_catalogue

    catalogue = read_catalogue(ROOT / "book/locales/zh_CN/LC_MESSAGES/book/interview.po")
    for english, chinese in seed_questions().items():
        message = catalogue.get(english)
        assert message is not None and message.string, f"{english!r} is not in the catalogue"
        assert message.string == chinese, f"{english!r}: {message.string!r}, not {chinese!r}"


def test_every_link_on_the_page_resolves_to_a_label():
    labels = book_labels()
    missing = {ref for ref in REF.findall(TEXT) if ref not in labels}
    assert not missing, f"links to labels that no chapter or page defines: {sorted(missing)}"


def test_the_checker_fails_on_a_broken_question():
    """The parse is not vacuous: a question without evidence or wrong answers is caught."""
    broken = (
        "## The Transformer questions\n\n(interview-x)=\n### X?\n\n**Answer.** "
        + "word " * 60
        + "\n\n**Evidence.** nothing linked.\n\n**Wrong answers.** none\n"
    )
    ((label, (_, heading, body)),) = questions(broken).items()
    parts = split_parts(body)
    assert label == "interview-x" and heading == "X?"
    assert not REF.findall(parts["Evidence"]) and len(parts["Wrong answers"].split()) < 8
    assert set(split_parts("**Answer.** a\n\n**Wrong answers.** b")) == {"Answer", "Wrong answers"}


def test_every_number_glued_on_the_page_is_glued_by_its_chapter():
    """``{glue:text}`../notebooks/NN.ipynb::key:fmt``` needs ``glue("key", ...)`` in NN.py."""
    uses = re.findall(r"\{glue:text\}`\.\./notebooks/([\w.]+)\.ipynb::(\w+)(?::[^`]*)?`", TEXT)
    assert len(uses) >= 15, f"only {len(uses)} glued numbers on the page"
    for notebook, key in uses:
        source = (ROOT / "notebooks" / f"{notebook}.py").read_text()
        assert f'glue("{key}"' in source, f"{notebook}.py does not glue {key!r}"
