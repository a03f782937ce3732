"""Generate the learner's exercise notebooks from the complete solutions.

    python tools/make_exercises.py           # write exercises/ and tests/grading/expected/
    python tools/make_exercises.py --check   # CI: fail if anything committed differs

The solutions are executed side by side, one kernel per core (``--jobs``).

For every ``solutions/NN_name.py`` (a jupytext percent notebook):

1. Each region between a ``# BEGIN SOLUTION`` line and an ``# END SOLUTION`` line is
   replaced by ``raise NotImplementedError(...)`` at the same indentation, giving
   ``exercises/NN_name.py`` and its paired ``.ipynb``.
2. The solution is executed (in a temporary folder) and the outputs of its check cells,
   the code cells containing ``# NBVAL_CHECK_OUTPUT``, are copied into the exercise
   ``.ipynb`` (so the learner sees what to aim for) and into
   ``tests/grading/expected/NN_name.json`` (the grader's untouchable copy). Every other
   output stays stripped.

Exercise files are never edited by hand: change the solution and run this tool.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbcommon import CHECK_MARK, ROOT, cores, ipynb_text, pair_sources, rel, strip_outputs

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
STUB = 'raise NotImplementedError("Exercise: replace this line with your code.")'
EXPECTED_DIR = ROOT / "tests" / "grading" / "expected"
ALLOWED_OUTPUTS = {"stream", "execute_result"}


class ExerciseError(Exception):
    """A solution file that the tool cannot turn into an exercise."""


def strip_solutions(text: str, name: str) -> str:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region by a stub."""
    out: list[str] = []
    inside_since: int | None = None
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if inside_since is None:
            if end:
                raise ExerciseError(f"{name}:{lineno}: END SOLUTION without BEGIN SOLUTION")
            if begin:
                inside_since = lineno
                out.append(f"{begin['indent']}{STUB}\n")
            else:
                out.append(line)
        elif begin:
            raise ExerciseError(
                f"{name}:{lineno}: BEGIN SOLUTION inside another one (line {inside_since})"
            )
        elif end:
            inside_since = None
    if inside_since is not None:
        raise ExerciseError(f"{name}:{inside_since}: BEGIN SOLUTION is never closed")
    return "".join(out)


def execute(nb: nbformat.NotebookNode, timeout: int) -> nbformat.NotebookNode:
    """Run a copy of ``nb`` in a temporary folder and return it with outputs."""
    nb = copy.deepcopy(nb)
    with tempfile.TemporaryDirectory() as tmp:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": tmp}}
        )
        client.execute()
    return nb


def coalesce_streams(outputs: list) -> list:
    """Merge consecutive stream outputs of the same stream: how the kernel splits one
    cell's prints into messages depends on timing, and the stored file must not."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and out.output_type == "stream"
            and prev.output_type == "stream"
            and prev.name == out.name
        ):
            prev["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def check_records(executed: nbformat.NotebookNode, name: str) -> list[dict]:
    """The source, outputs and execution count of each check cell of an executed solution."""
    checks = []
    for cell in executed.cells:
        if cell.cell_type != "code" or CHECK_MARK not in cell.source:
            continue
        if "BEGIN SOLUTION" in cell.source:
            raise ExerciseError(f"{name}: a check cell must not contain a solution region")
        outputs = []
        for out in cell.outputs:
            if out.output_type not in ALLOWED_OUTPUTS:
                raise ExerciseError(
                    f"{name}: check cells may only print text, got {out.output_type}"
                )
            out = copy.deepcopy(out)
            out.pop("metadata", None)
            if out.output_type == "execute_result":
                out["data"] = {"text/plain": out["data"]["text/plain"]}
                out["metadata"] = {}
            outputs.append(out)
        checks.append(
            {
                "source": cell.source,
                "outputs": coalesce_streams(outputs),
                "execution_count": cell.execution_count,
            }
        )
    return checks


def build(solution: Path, timeout: int) -> dict[Path, str]:
    """Everything generated from one solution: ``{path: text}``."""
    text = solution.read_text(encoding="utf-8")
    exercise_py = strip_solutions(text, rel(solution))
    if exercise_py == text:
        raise ExerciseError(f"{rel(solution)} has no '# BEGIN SOLUTION' region")
    executed = execute(jupytext.reads(text, fmt="py:percent"), timeout)
    checks = check_records(executed, rel(solution))

    nb = strip_outputs(jupytext.reads(exercise_py, fmt="py:percent"))
    by_source = {c["source"]: c for c in checks}
    for cell in nb.cells:
        ref = by_source.get(cell.source) if cell.cell_type == "code" else None
        if ref is not None:
            cell.outputs = [nbformat.from_dict(o) for o in ref["outputs"]]
            cell.execution_count = ref["execution_count"]
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"

    stem = solution.stem
    expected = {"solution": rel(solution), "checks": checks}
    return {
        ROOT / "exercises" / f"{stem}.py": exercise_py,
        ROOT / "exercises" / f"{stem}.ipynb": ipynb_text(nb),
        EXPECTED_DIR / f"{stem}.json": json.dumps(expected, indent=1, ensure_ascii=False) + "\n",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; write nothing")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per solution cell")
    parser.add_argument(
        "--jobs", type=int, default=cores(), help="solutions executed at once (default: cores)"
    )
    parser.add_argument("only", nargs="*", help="chapter numbers to process (default: all)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive number of solutions, not {args.jobs}")
    solutions = [s for s in pair_sources("solutions") if not args.only or s.name[:2] in args.only]
    stale = []
    try:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            built = pool.map(build, solutions, [args.timeout] * len(solutions))
            generated = [item for files in built for item in files.items()]  # in order
        for path, text in generated:
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current == text:
                continue
            if args.check:
                stale.append(rel(path))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                print(f"make_exercises: wrote {rel(path)}")
    except ExerciseError as exc:
        print(f"make_exercises: {exc}", file=sys.stderr)
        return 1
    for path in stale:
        print(
            f"make_exercises: {path} is out of date; run python tools/make_exercises.py",
            file=sys.stderr,
        )
    if args.check and not stale:
        print(f"make_exercises: {len(solutions)} chapter(s) of exercises up to date")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
