"""Every catalogued misconception fails its exercise's grader and is named in the report.

For each chapter with a catalogue (``tests/grading/misconceptions/NN_slug.py``) one
subprocess runs this file as a script: for every misconception it substitutes the wrong
function into the chapter's solution (:func:`attnkit.grading.misconceptions.variant`) and
runs that exercise's grading tests in the same process (``pytest.main`` with the grading
plugin), then reads the plugin's records. One process per chapter, not per misconception.

A misconception passes when at least one test of its exercise fails and the name the
report gives the exercise (:func:`attnkit.grading.misconceptions.named_for_exercise`) is
it, or one that behaves identically on every recorded input (listed in ``also``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = sorted((ROOT / "tests" / "grading" / "misconceptions").glob("[0-9][0-9]_*.py"))
MIN_PER_EXERCISE = 3
# plugins a grading run does not need; unraisableexception alone costs ~0.3 s of
# gc.collect() per pytest.main call
_LEAN = [
    arg
    for plugin in (
        "cacheprovider",
        "nbval",
        "xdist",
        "anyio",
        "hypothesispytest",
        "unraisableexception",
        "threadexception",
    )
    for arg in ("-p", f"no:{plugin}")
]


def run_chapter(catalogue: Path, out: Path) -> None:
    """(In the subprocess.) Grade every misconception of ``catalogue``; write the results."""
    import ast
    import builtins

    from attnkit.grading import misconceptions as mc
    from attnkit.grading.loader import load_definitions

    slug = catalogue.stem
    test_file = ROOT / "tests" / "grading" / f"test_{slug}.py"
    solution = load_definitions(ROOT / "solutions" / f"{slug}.py", module_name="solution")
    tree = ast.parse((ROOT / "solutions" / f"{slug}.py").read_text(encoding="utf-8"))
    exercises = [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and "# BEGIN SOLUTION" in (
            ast.get_source_segment((ROOT / "solutions" / f"{slug}.py").read_text(), node) or ""
        )
    ]  # fmt: skip
    catalogue_map = mc.load_catalogue(catalogue)
    problems: list[str] = []
    for name in exercises:
        n = len(catalogue_map.get(name, []))
        if n < MIN_PER_EXERCISE:
            problems.append(f"{name}: {n} misconception(s), at least {MIN_PER_EXERCISE} needed")
    for name in catalogue_map:
        if name not in exercises:
            problems.append(f"misconceptions of {name}, which is not an exercise of {slug}")
    ids = [m.id for ms in catalogue_map.values() for m in ms]
    problems += [f"{i}: id used twice" for i in {i for i in ids if ids.count(i) > 1}]
    problems += [f"{i}: id is an exercise's name" for i in ids if hasattr(solution, i)]
    for ms in catalogue_map.values():
        for m in ms:
            free = {
                n
                for n in _names(m.fn.__code__)
                if n not in m.fn.__globals__ and not hasattr(builtins, n)
            }
            problems += [f"{m.id}: unknown name {n}" for n in free if not hasattr(solution, n)]

    class OnlyExercise:
        def __init__(self, exercise: str) -> None:
            self.exercise = exercise

        def pytest_collection_modifyitems(self, config, items) -> None:
            keep, drop = [], []
            for item in items:
                marker = item.get_closest_marker("exercise")
                mine = marker is not None and marker.args and marker.args[0] == self.exercise
                (keep if mine else drop).append(item)
            items[:] = keep
            config.hook.pytest_deselected(items=drop)

    results = {}
    os.environ.pop("ATTNKIT_LEARNER_FILE", None)
    os.environ["ATTNKIT_GRADE_TARGET"] = "solutions"
    with tempfile.TemporaryDirectory() as tmp:
        for exercise, ms in catalogue_map.items():
            for m in ms:
                report = Path(tmp) / f"{m.id}.jsonl"
                mc._VARIANT[:] = [m]
                start = time.process_time()
                pytest.main(
                    [str(test_file), "-p", "attnkit.grading.plugin", *_LEAN, "-q", "--no-header",
                     f"--attnkit-report={report}", "--tb=native", "--timeout=60"],
                    plugins=[OnlyExercise(exercise)],
                )  # fmt: skip
                mc._VARIANT.clear()
                records = [
                    json.loads(line)
                    for line in (report.read_text().splitlines() if report.exists() else [])
                ]
                results[m.id] = {
                    "exercise": exercise,
                    "statuses": [r["status"] for r in records],
                    "named": mc.named_for_exercise(records),
                    "records": records,
                    "cpu_s": round(time.process_time() - start, 3),
                }
    out.write_text(json.dumps({"problems": problems, "results": results}), encoding="utf-8")


def _names(code) -> set[str]:
    """The global names a function's code (and its nested functions) reads."""
    import dis

    names = {i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_GLOBAL"}
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= _names(const)
    return names


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=[p.stem[:2] for p in CATALOGUES])
def test_every_misconception_fails_and_is_named(catalogue, tmp_path):
    out = tmp_path / "results.json"
    env = {**os.environ, "ATTNKIT_GRADE_LANG": "en", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("ATTNKIT_LEARNER_FILE", None)
    done = subprocess.run(
        [sys.executable, __file__, str(catalogue), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0 and out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert not data["problems"], data["problems"]
    bad = []
    for mid, r in data["results"].items():
        if "failed" not in r["statuses"]:
            bad.append(f"{mid} ({r['exercise']}): the grader does not fail it: {r['statuses']}")
            continue
        named = r["named"]
        if named is None or mid not in named["ids"]:
            what = "nothing" if named is None else named["ids"] or named["text"]
            bad.append(f"{mid} ({r['exercise']}): the report names {what}")
    assert not bad, "\n".join(bad)


if __name__ == "__main__":
    run_chapter(Path(sys.argv[1]).resolve(), Path(sys.argv[2]))
