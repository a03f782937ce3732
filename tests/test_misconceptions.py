"""Every catalogued misconception fails its exercise's grader and is named in the report.

One subprocess runs this file as a script for all the catalogues
(``tests/grading/misconceptions/NN_slug.py``): for every misconception it substitutes the
wrong function into the chapter's solution (:func:`attnkit.grading.misconceptions.variant`)
and runs that exercise's grading tests in the same process (``pytest.main`` with the
grading plugin and nothing else), then reads the plugin's records. One process in all
(torch is imported once), not one per chapter or per misconception.

A misconception passes when at least one test of its exercise fails and the name the
report gives the exercise (:func:`attnkit.grading.misconceptions.named_for_exercise`) is
it, or one that behaves identically on every recorded input (listed in ``also``).
"""

from __future__ import annotations

import contextlib
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
        "warnings",
        "logging",
        "junitxml",
        "doctest",
        "pastebin",
        "stepwise",
        "faulthandler",
        "setuponly",
        "setupplan",
    )
    for arg in ("-p", f"no:{plugin}")
]


def run_chapter(catalogue: Path) -> dict:
    """(In the subprocess.) Grade every misconception of ``catalogue``: the problems of the
    catalogue itself, and per misconception the statuses and what the report names."""
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
    return {"problems": problems, "results": results}


def _names(code) -> set[str]:
    """The global names a function's code (and its nested functions) reads."""
    import dis

    names = {i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_GLOBAL"}
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= _names(const)
    return names


def test_every_misconception_fails_and_is_named(tmp_path):
    assert CATALOGUES, "no catalogue in tests/grading/misconceptions"
    out = tmp_path / "results.json"
    env = {**os.environ, "ATTNKIT_GRADE_LANG": "en", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("ATTNKIT_LEARNER_FILE", None)
    done = subprocess.run(
        [sys.executable, __file__, str(out), *map(str, CATALOGUES)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0 and out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    bad = []
    for slug, data in json.loads(out.read_text()).items():
        bad += [f"{slug}: {problem}" for problem in data["problems"]]
        for mid, r in data["results"].items():
            if "failed" not in r["statuses"]:
                bad.append(f"{slug}: {mid} ({r['exercise']}): the grader does not fail it")
                continue
            named = r["named"]
            if named is None or mid not in named["ids"]:
                what = "nothing" if named is None else named["ids"] or named["text"]
                bad.append(f"{slug}: {mid} ({r['exercise']}): the report names {what}")
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------ the engine's diagnosis
def _recorded(fn, *calls):
    """Calls of ``fn`` recorded as a graded test would record them."""
    import types

    from attnkit.grading.misconceptions import Recorder

    module = types.ModuleType("learner")
    module.f = fn
    with Recorder("f") as recorder:
        wrapped = recorder.wrap(module, "f", fn)
        for args in calls:
            with contextlib.suppress(Exception):  # a raising call is recorded too
                wrapped(*args)
    return recorder.calls


def test_diagnosis_says_what_differs_from_the_reference():
    import torch

    from attnkit.grading.misconceptions import diagnose

    def reference(x):
        return torch.softmax(x, dim=-1)

    def mutating(x):
        x.add_(1)  # right values, but the caller's tensor changes
        return torch.softmax(x - 1, dim=-1)

    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]])
    said = {
        "scale": diagnose(reference, _recorded(lambda x: 3 * torch.softmax(x, -1), (x,))),
        "shape": diagnose(reference, _recorded(lambda x: torch.softmax(x, -1).T, (x,))),
        "raised": diagnose(reference, _recorded(lambda x: x[5], (x,))),
        "mutated": diagnose(reference, _recorded(mutating, (x.clone(),))),
        "row": diagnose(reference, _recorded(
            lambda x: torch.cat([torch.softmax(x[:1], -1), torch.zeros(1, 3)]), (x,))),
        "same": diagnose(reference, _recorded(lambda x: torch.softmax(x, -1), (x,))),
    }  # fmt: skip
    assert "times 3" in said["scale"], said
    assert "shape (3, 2)" in said["shape"] and "swapped" in said["shape"], said
    assert "raised IndexError" in said["raised"], said
    assert "in place" in said["mutated"] and "`x`" in said["mutated"], said
    assert "in rows 1 " in said["row"], said
    assert "returns what the solution returns" in said["same"], said
    zh = diagnose(reference, _recorded(lambda x: 3 * torch.softmax(x, -1), (x,)), lang="zh")
    assert "3 倍" in zh, zh


if __name__ == "__main__":  # python tests/test_misconceptions.py OUT.json CATALOGUE...
    import torch

    # one thread: the graded tensors are tiny, and on a shared machine intra-op threads
    # only spin (chapter 12's catalogue: 59 s of CPU with 2 threads, 6 s with one)
    torch.set_num_threads(1)
    results = {Path(c).stem: run_chapter(Path(c).resolve()) for c in sys.argv[2:]}
    Path(sys.argv[1]).write_text(json.dumps(results), encoding="utf-8")
