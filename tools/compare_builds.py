"""Compare the outputs of two executions of the chapters: are the numbers the same?

    python tools/compare_builds.py BUILD_A BUILD_B

Each argument is a folder of executed chapter notebooks (``_build/jupyter_execute/notebooks``
of a book build, or the ``--out`` folder of ``tools/execute_chapters.py``), or a book's
root (then its ``_build/jupyter_execute/notebooks`` is used). For every chapter found in
both, code cell by code cell, the text outputs (printed text, results, errors, glued
values) are compared. Cells that measure time carry the marker ``# NBVAL_IGNORE_OUTPUT``
(nbval's, which the tests already honour): they are counted but not compared. Figures are
compared by their PNG bytes and reported apart (a figure of timings may differ).

Prints each difference and a summary; exits 1 if any untimed text output differs.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import sys
from pathlib import Path

import nbformat

TIMING_MARK = "NBVAL_IGNORE_OUTPUT"


def notebooks_dir(path: Path) -> Path:
    inner = path / "_build" / "jupyter_execute" / "notebooks"
    return inner if inner.is_dir() else path


def cell_text(cell) -> str:
    """The text a reader sees under a code cell (streams, results, errors)."""
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


def compare(a: Path, b: Path) -> tuple[int, int, int, int]:
    """Print one chapter's differences; return (compared, differing, timed, figures differing)."""
    cells_a = [c for c in nbformat.read(a, as_version=4).cells if c.cell_type == "code"]
    cells_b = [c for c in nbformat.read(b, as_version=4).cells if c.cell_type == "code"]
    if [c.source for c in cells_a] != [c.source for c in cells_b]:
        print(f"{a.name}: the two executions ran different code; not compared")
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
            print(f"{a.name}, code cell {i} ({first!r}): outputs differ")
            diff = difflib.unified_diff(ta.splitlines(), tb.splitlines(), lineterm="", n=0)
            for line in list(diff)[2:14]:
                print(f"    {line[:160]}")
        if cell_images(ca) != cell_images(cb):
            figures += 1
            print(f"{a.name}, code cell {i}: a figure differs (PNG bytes)")
    return compared, differing, timed, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_a", type=Path)
    parser.add_argument("build_b", type=Path)
    args = parser.parse_args(argv)
    dir_a, dir_b = notebooks_dir(args.build_a), notebooks_dir(args.build_b)
    for d, name in ((dir_a, "BUILD_A"), (dir_b, "BUILD_B")):
        if not d.is_dir():
            parser.error(f"{name} must be a folder of executed notebooks; {d} is not a folder.")
    names = sorted(p.name for p in dir_a.glob("[0-9][0-9]_*.ipynb"))
    common = [n for n in names if (dir_b / n).exists()]
    if not common:
        parser.error(f"no chapter notebook is in both {dir_a} and {dir_b}.")
    totals = [0, 0, 0, 0]
    for name in common:
        for k, v in enumerate(compare(dir_a / name, dir_b / name)):
            totals[k] += v
    compared, differing, timed, figures = totals
    print(
        f"{len(common)} chapters: {compared} code cells compared, {differing} differ; "
        f"{timed} timing cells not compared; {figures} figures differ"
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
