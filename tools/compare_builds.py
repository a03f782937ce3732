"""Compare the outputs of two executions of the chapters: are the numbers the same?

    python tools/compare_builds.py BUILD_A BUILD_B

Each argument is a book's root (a clone that ran ``tools/build_book.sh``: each chapter's
outputs are read from its execution cache, ``_build/.jupyter_cache``, merged into the
chapter as the book does), or a folder of executed chapter notebooks (the ``--out`` folder
of ``tools/execute_chapters.py``). Not ``_build/jupyter_execute``: in cache mode myst-nb
writes the chapters there without their outputs, so a comparison of those would find
nothing; a chapter without any output is an error here. For every chapter found in both,
code cell by code cell, the text outputs (printed text, results, errors, glued values) are
compared. Cells that measure time carry the marker ``# NBVAL_IGNORE_OUTPUT``
(nbval's, which the tests already honour): they are counted but not compared. Figures are
compared by their PNG bytes and reported apart (a figure of timings may differ).

Prints each difference and a summary; exits 1 if any untimed text output differs.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import re
import sys
from pathlib import Path

import nbformat

TIMING_MARK = "NBVAL_IGNORE_OUTPUT"


def executed_chapters(path: Path) -> dict[str, nbformat.NotebookNode]:
    """The executed chapters of a book root (from its cache) or of a folder, by file name."""
    cache_dir = path / "_build" / ".jupyter_cache"
    if cache_dir.is_dir():
        from jupyter_cache import get_cache

        cache = get_cache(str(cache_dir))
        chapters = {}
        for source in sorted((path / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            try:
                _, merged = cache.merge_match_into_notebook(nbformat.read(source, as_version=4))
            except KeyError:  # not executed in this build (or changed since)
                continue
            chapters[source.name] = merged
        return chapters
    return {p.name: nbformat.read(p, as_version=4) for p in sorted(path.glob("[0-9][0-9]_*.ipynb"))}


def output_count(notebook: nbformat.NotebookNode) -> int:
    return sum(len(c.get("outputs", [])) for c in notebook.cells if c.cell_type == "code")


# The elapsed time, remaining time and rate of a progress bar ("[00:01<00:06, 158.46step/s,"):
# they measure the machine, the step counts and losses after them do not.
PROGRESS_TIMES = re.compile(r"\[\d+:\d+(?::\d+)?<[^,\]]*, *[^,\]]*(?:/s|s/\w+)")


def cell_text(cell) -> str:
    """The text a reader sees under a code cell (streams, results, errors), without the
    times of progress bars and without blank lines (how a bar's updates are split)."""
    return "".join(
        PROGRESS_TIMES.sub("[time]", line).rstrip() + "\n"
        for line in _cell_text(cell).splitlines()
        if line.strip()
    )


def _cell_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(out.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            for mime in ("text/plain", "text/markdown", "text/html", "text/latex"):
                if mime in data:
                    parts.append(f"[{mime}] {data[mime]}")
                    break
        elif kind == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def cell_images(cell) -> list[str]:
    digests = []
    for out in cell.get("outputs", []):
        png = out.get("data", {}).get("image/png")
        if png:
            digests.append(hashlib.sha256(png.encode()).hexdigest()[:12])
    return digests


def compare(name: str, a, b) -> tuple[int, int, int, int]:
    """Print one chapter's differences; return (compared, differing, timed, figures differing)."""
    cells_a = [c for c in a.cells if c.cell_type == "code"]
    cells_b = [c for c in b.cells if c.cell_type == "code"]
    if [c.source for c in cells_a] != [c.source for c in cells_b]:
        print(f"{name}: the two executions ran different code; not compared")
        return 0, 1, 0, 0
    compared = differing = timed = figures = 0
    for i, (ca, cb) in enumerate(zip(cells_a, cells_b)):
        if TIMING_MARK in ca.source:
            timed += 1
            continue
        compared += 1
        ta, tb = cell_text(ca), cell_text(cb)
        if ta != tb:
            differing += 1
            first = ca.source.strip().splitlines()[0][:70] if ca.source.strip() else ""
            print(f"{name}, code cell {i} ({first!r}): outputs differ")
            diff = difflib.unified_diff(ta.splitlines(), tb.splitlines(), lineterm="", n=0)
            for line in list(diff)[2:14]:
                print(f"    {line[:160]}")
        if cell_images(ca) != cell_images(cb):
            figures += 1
            print(f"{name}, code cell {i}: a figure differs (PNG bytes)")
    return compared, differing, timed, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_a", type=Path)
    parser.add_argument("build_b", type=Path)
    args = parser.parse_args(argv)
    runs = {}
    for path, name in ((args.build_a, "BUILD_A"), (args.build_b, "BUILD_B")):
        if not path.is_dir():
            parser.error(f"{name} must be a book root or a folder of executed notebooks: {path}")
        runs[name] = executed_chapters(path)
        empty = [chapter for chapter, nb in runs[name].items() if not output_count(nb)]
        if empty:
            parser.error(f"{name}: {', '.join(empty)} hold no outputs (not executed notebooks)")
    common = [n for n in runs["BUILD_A"] if n in runs["BUILD_B"]]
    if not common:
        parser.error(f"no executed chapter is in both {args.build_a} and {args.build_b}.")
    totals = [0, 0, 0, 0]
    for name in common:
        for k, v in enumerate(compare(name, runs["BUILD_A"][name], runs["BUILD_B"][name])):
            totals[k] += v
    compared, differing, timed, figures = totals
    print(
        f"{len(common)} chapters: {compared} code cells compared, {differing} differ; "
        f"{timed} timing cells not compared; {figures} figures differ"
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
