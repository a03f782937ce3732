"""Take the README's screenshots: the book in both editions, the Chinese PDF, a grade.

    python tools/screenshots.py            # after tools/build_book.sh (and build_pdf.sh)

1. ``book/images/readme-book.png``: chapter 1 of ``_build/html`` opened in headless
   Chromium (the system's, as in the browser tests), scrolled to the section on the
   scaling factor, after MathJax has typeset it.
2. ``book/images/readme-grading.png``: what a learner sees after writing the first
   exercise of chapter 1 with the source text's own mistake, scores divided by d_k
   instead of sqrt(d_k). A copy of the untouched exercise (``exercises/`` is not
   modified) gets that ``attention_scores``; ``python -m attnkit.grade 01 --file``
   grades it (the report names the misconception); its real output is shown in a
   terminal-like page and photographed.
3. ``book/images/readme-book-zh.png``: the same section of chapter 1 in the Chinese
   edition (``_build/html/zh_CN``).
4. ``book/images/readme-pdf-zh.png``: the first page of chapter 1 in
   ``_build/pdf/book-zh.pdf`` (found with pdftotext, rendered by pdftoppm); skipped with a
   note when the PDF is not built.

Nothing is downloaded; Chinese text needs a CJK font installed (Debian: fonts-noto-cjk).
"""

from __future__ import annotations

import argparse
import html
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from book_site import CHROMIUM, CHROMIUM_ARGS, serve  # noqa: E402
from test_learner_journey import fill_first_exercise  # noqa: E402

# The seed's scaling mistake (1/d_k instead of 1/sqrt(d_k)), a catalogued misconception.
SCALED_BY_D_K = (
    "    if scale is None:\n"
    "        scale = 1 / q.shape[-1]\n"
    "    return (q @ k.transpose(-2, -1)) * scale\n"
)

OUT = ROOT / "book" / "images"
CHAPTER_1 = "01_scaled_dot_product_attention.html"
TERMINAL = """<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #1e1e1e; }}
pre {{ margin: 0; padding: 18px 22px; color: #d4d4d4; font: 15px/1.45 "DejaVu Sans Mono",
      monospace; white-space: pre; display: inline-block; }}
.prompt {{ color: #6a9955; }} .ok {{ color: #4ec9b0; }} .todo {{ color: #ce9178; }}
.hint {{ color: #dcdcaa; }}
</style></head><body><pre id="term">{body}</pre></body></html>"""


def grading_output() -> str:
    """The grader's report for chapter 1 with only its first exercise written, wrongly."""
    exercise = next((ROOT / "exercises").glob("01_*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        learner = Path(tmp) / exercise.name
        learner.write_text(exercise.read_text(encoding="utf-8"), encoding="utf-8")
        fill_first_exercise(learner, SCALED_BY_D_K)
        done = subprocess.run(
            [sys.executable, "-m", "attnkit.grade", "01", "--file", str(learner)],
            cwd=ROOT,
            # a staged attempt: keep it out of the reader's own progress file
            env={**os.environ, "ATTNKIT_PROGRESS_FILE": str(Path(tmp) / "progress.json")},
            capture_output=True,
            text=True,
            timeout=300,
        )
    return done.stdout.replace(str(learner), f"exercises/{exercise.name}")


def colour(line: str) -> str:
    text = html.escape(line)
    if line.rstrip().endswith(" passed"):
        return f'<span class="ok">{text}</span>'
    if line.rstrip().endswith("not attempted"):
        return f'<span class="todo">{text}</span>'
    if "> " in line:  # the named misconception or what differs
        return f'<span class="hint">{text}</span>'
    return text


# the opening words of chapter 1 in the Chinese edition, to find its first PDF page
ZH_CHAPTER_1 = "自注意力是 Transformer 的核心运算"


def pdf_page(pdf: Path, needle: str, out: Path) -> int:
    """Render the first page of ``pdf`` whose text holds ``needle`` to ``out`` (PNG)."""
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    wanted = "".join(needle.split())  # pdftotext breaks lines and spaces Chinese freely
    for number, page in enumerate(text.split("\f"), 1):
        if wanted in "".join(page.split()):
            subprocess.run(
                ["pdftoppm", "-f", str(number), "-l", str(number), "-r", "80", "-png",
                 "-singlefile", str(pdf), str(out.with_suffix(""))],
                check=True,
            )  # fmt: skip
            return number
    raise SystemExit(f"error: no page of {pdf} contains {needle!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, default=ROOT / "_build" / "html")
    args = parser.parse_args(argv)
    chapter = args.book / "notebooks" / CHAPTER_1
    if not chapter.is_file():
        print(f"error: {chapter} not found; build the book first.", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    report = grading_output()
    lines = ["$ python -m attnkit.grade 01", *report.rstrip().splitlines()]
    body = "\n".join(
        f'<span class="prompt">{html.escape(line)}</span>' if i == 0 else colour(line)
        for i, line in enumerate(lines)
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        with serve(args.book) as base:
            for edition, png in (("", "readme-book.png"), ("zh_CN/", "readme-book-zh.png")):
                page.goto(f"{base}{edition}notebooks/{CHAPTER_1}#ch01-scaling")
                page.evaluate("() => MathJax.startup.promise")
                page.locator("#ch01-scaling").scroll_into_view_if_needed()
                page.screenshot(path=str(OUT / png))
        page.set_content(TERMINAL.format(body=body))
        page.locator("#term").screenshot(path=str(OUT / "readme-grading.png"))
        browser.close()
    print(report)
    print(f"wrote {OUT / 'readme-book.png'}, {OUT / 'readme-book-zh.png'} and")
    print(f"      {OUT / 'readme-grading.png'}")
    pdf = args.book.parent / "pdf" / "book-zh.pdf"
    if pdf.is_file():
        number = pdf_page(pdf, ZH_CHAPTER_1, OUT / "readme-pdf-zh.png")
        print(f"wrote {OUT / 'readme-pdf-zh.png'} (page {number} of {pdf})")
    else:
        print(f"note: {pdf} is not built (tools/build_pdf.sh): no PDF screenshot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
