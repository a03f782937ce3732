"""Keep the jupytext pairs (``NN_name.py`` + ``NN_name.ipynb``) in sync, outputs stripped.

    python tools/nbsync.py           # sync notebooks/ and solutions/ (newer file wins)
    python tools/nbsync.py --check   # CI: fail if any pair differs or keeps outputs

Either file of a pair may be edited; ``sync`` rewrites the older one from the newer one
and strips outputs from the .ipynb. It never deletes a file. ``exercises/`` is generated
by ``tools/make_exercises.py`` and is only checked here, not synced.
"""

from __future__ import annotations

import argparse
import sys

import jupytext
from nbcommon import (
    CHECK_MARK,
    PAIR_DIRS,
    ROOT,
    cells_signature,
    ipynb_text,
    pair_sources,
    py_text,
    rel,
    strip_outputs,
)

SYNCED_DIRS = ("notebooks", "solutions")


def check() -> list[str]:
    """Every problem found with the pairs, as sentences."""
    problems = []
    for folder in PAIR_DIRS:
        for py in pair_sources(folder):
            ipynb = py.with_suffix(".ipynb")
            if not ipynb.exists():
                problems.append(f"{rel(py)} has no paired {ipynb.name}")
                continue
            a, b = jupytext.read(py), jupytext.read(ipynb)
            if cells_signature(a) != cells_signature(b):
                problems.append(f"{rel(py)} and {ipynb.name} differ (run tools/nbsync.py)")
            for i, cell in enumerate(b.cells):
                if cell.cell_type != "code":
                    continue
                expected_output = folder == "exercises" and CHECK_MARK in cell.source
                if (cell.outputs or cell.execution_count) and not expected_output:
                    problems.append(f"{rel(ipynb)} cell {i} has outputs; commit it stripped")
                    break
        for ipynb in sorted((ROOT / folder).glob("*.ipynb")):
            if not ipynb.with_suffix(".py").exists():
                problems.append(f"{rel(ipynb)} has no paired .py file")
    return problems


def sync() -> list[str]:
    """Bring each pair of notebooks/ and solutions/ in line; return what was written."""
    written = []
    for folder in SYNCED_DIRS:
        pys = set(pair_sources(folder))
        pys |= {p.with_suffix(".py") for p in (ROOT / folder).glob("[0-9][0-9]_*.ipynb")}
        for py in sorted(pys):
            ipynb = py.with_suffix(".ipynb")
            newer_ipynb = ipynb.exists() and (
                not py.exists() or ipynb.stat().st_mtime > py.stat().st_mtime
            )
            nb = strip_outputs(jupytext.read(ipynb if newer_ipynb else py))
            nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
            targets = {py: py_text(nb), ipynb: ipynb_text(nb)}
            for path, text in targets.items():
                if not path.exists() or path.read_text(encoding="utf-8") != text:
                    path.write_text(text, encoding="utf-8")
                    written.append(rel(path))
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; write nothing")
    args = parser.parse_args()
    if args.check:
        problems = check()
        for p in problems:
            print(f"nbsync: {p}", file=sys.stderr)
        if not problems:
            print("nbsync: all notebook pairs in sync and stripped")
        return 1 if problems else 0
    for path in sync():
        print(f"nbsync: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
