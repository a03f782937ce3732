"""Instructor mode: grade a class of submissions into a gradebook.

``python -m attnkit.grade 01 --class SUBMISSIONS --out gradebook.csv`` grades every entry
of ``SUBMISSIONS`` (a ``.py``/``.ipynb`` file, or a folder holding the chapter's file;
the learner id is the file's stem or the folder's name) and writes ``gradebook.csv``
(one row per learner: the share of each exercise's tests passed, the total, the library
flags, notes) and ``gradebook.json`` beside it (every message of every test).

Why the score cannot be forged (see :mod:`attnkit.grading.remote` for the mechanism):

* **Trusted inputs only.** The tests, the conftest, the grading plugin and the
  solutions come from the instructor's repository (the one holding this package, or
  ``root``), never from a submission or the working directory: the judge runs with
  the instructor's test file, ``--rootdir`` at the instructor's repository and its
  working directory in a fresh temporary folder. A ``conftest.py``, a ``tests/`` tree or
  an expected-output file inside a submission is never read: only the one learner file
  is copied into the sandbox.
* **The learner's code never shares a process with the tests.** It is loaded and run in
  a worker inside the sandbox (:mod:`attnkit.grading.sandbox`); the tests, their
  assertions and the plugin's classification run in the judge, which only receives
  plain values back. Patching ``assert_close``/``torch.equal``/the plugin from a class
  body, a constant or a graded function patches the worker's copies, which no test uses.
* **Definitions only, tests only.** As in the learner's own grading, only imports,
  ``def``/``class`` statements and UPPER_CASE constants are executed. The notebook's
  check cells are *not* part of the instructor's score (the learner's command counts
  them): they compare printed text, which the learner's code controls entirely (a cell
  can print the expected output, a function can return an object whose ``repr`` is it),
  so no sandbox can make them tamper-proof. The score is the share of tests passed.
* **Nothing writable that matters.** The repository is read-only inside bubblewrap;
  without bubblewrap the instructor's tests, solutions and package are fingerprinted
  before and after each submission and a change stops the class run.

Functions that call the library instead of implementing are flagged, from two sources:
static analysis of the submitted source (:func:`library_flags`: attnkit, torch's
``scaled_dot_product_attention``, ``solutions`` in a string, dynamic imports/exec) and
the worker's run-time audit (what each call reached), minus the uses the instructor's
own solution makes for that exercise (chapter 2 calls chapter 1's attention through
attnkit). A flag is evidence for a person to look at, not a verdict: obfuscated calls
can evade both, and the score does not depend on it.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .loader import LearnerFileError, chapter_files, source_of
from .sandbox import Limits, Sandbox

_SUFFIXES = (".py", ".ipynb")
_DYNAMIC = {"__import__", "exec", "eval", "compile", "open", "importlib", "globals", "setattr"}


@dataclass
class Submission:
    """One entry of the submissions folder: the learner id, the file to grade (None
    when there is none) and why not."""

    learner: str
    path: Path
    file: Path | None
    problem: str = ""


def find_submissions(folder: Path, chapter: str) -> list[Submission]:
    """Every gradable entry of ``folder``: a ``.py``/``.ipynb`` file, or a folder with the
    chapter's file (``NN_*.py``/``.ipynb``, in it or in its ``exercises/``; the newer of a
    pair; else its only ``.py``/``.ipynb``). Hidden entries are skipped."""
    found = []
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_file():
            if entry.suffix in _SUFFIXES:
                found.append(Submission(entry.stem, entry, entry))
            else:
                found.append(Submission(entry.name, entry, None, "not a .py or .ipynb file"))
            continue
        if not entry.is_dir():
            continue
        candidates = chapter_files(entry, chapter) or chapter_files(entry / "exercises", chapter)
        if not candidates:
            own = [p for p in entry.iterdir() if p.suffix in _SUFFIXES and p.is_file()]
            candidates = own if len(own) == 1 else []
        if candidates:
            best = max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.suffix == ".py"))
            found.append(Submission(entry.name, entry, best))
        else:
            found.append(
                Submission(entry.name, entry, None, f"no {chapter}_*.py or .ipynb in the folder")
            )
    return found


def exercises_of(test_file: Path) -> list[str]:
    """The exercise names of a grading test file, in order (``@ex("name")`` or
    ``@pytest.mark.exercise("name")`` decorators)."""
    tree = ast.parse(test_file.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for dec in node.decorator_list:
            if not (isinstance(dec, ast.Call) and dec.args):
                continue
            func = dec.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            arg = dec.args[0]
            named = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            if called in ("ex", "exercise") and named and arg.value not in names:
                names.append(arg.value)
    return names


# ------------------------------------------------------------ static analysis
def _library_aliases(tree: ast.Module) -> set[str]:
    """Names bound to attnkit (``import attnkit as ak``, ``from attnkit... import x``)."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in ("attnkit", "solutions"):
                    aliases.add((a.asname or a.name).split(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] in ("attnkit", "solutions")
            and node.level == 0
        ):
            aliases.update(a.asname or a.name for a in node.names)
    return aliases


def _direct_flags(func: ast.AST, aliases: set[str]) -> list[tuple[str, str]]:
    """(key, evidence) pairs: the key names the kind of use (``attnkit:NAME`` for an
    attnkit function, ``sdpa``, ``string:solutions``, ``import:NAME``, ``dynamic:NAME``),
    so that uses the instructor's own solution makes can be told apart."""
    flags = []
    qualified = {  # ak.NAME: reported as NAME, not as a use of ak itself
        id(n.value)
        for n in ast.walk(func)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases
    }
    for node in ast.walk(func):
        line = getattr(node, "lineno", "?")
        if id(getattr(node, "value", None)) in qualified and isinstance(node, ast.Attribute):
            flags.append((f"attnkit:{node.attr}", f"uses attnkit's {node.attr} (line {line})"))
        elif isinstance(node, ast.Name) and id(node) in qualified:
            continue
        elif isinstance(node, ast.Name) and node.id in aliases:
            flags.append((f"attnkit:{node.id}", f"uses attnkit ({node.id}, line {line})"))
        elif isinstance(node, ast.Attribute) and node.attr == "scaled_dot_product_attention":
            flags.append(("sdpa", f"calls a library scaled_dot_product_attention (line {line})"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            for word in ("solutions", "attnkit"):
                if word in text:
                    flags.append((f"string:{word}", f"string {text[:40]!r} (line {line})"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            for n in names:
                if n.split(".")[0] in ("attnkit", "solutions", "importlib"):
                    flags.append((f"import:{n}", f"imports {n} (line {line})"))
        elif isinstance(node, ast.Name) and node.id in _DYNAMIC and isinstance(node.ctx, ast.Load):
            flags.append((f"dynamic:{node.id}", f"calls {node.id} (line {line})"))
    return flags


def library_uses(source: str, exercises: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """For each exercise the file defines, the (key, evidence) pairs of
    :func:`_direct_flags` in its body and in the file's own helper functions it calls;
    an exercise bound by ``from attnkit... import name`` gets ``attnkit:name``.
    Module-level code that patches a library (``torch.equal = ...``, ``setattr(...)``)
    is under ``"(module)"``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    aliases = _library_aliases(tree)
    functions = {
        n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    direct = {name: _direct_flags(fn, aliases) for name, fn in functions.items()}
    calls = {
        name: {
            n.id
            for n in ast.walk(fn)
            if isinstance(n, ast.Name) and n.id in functions and n.id != name
        }
        for name, fn in functions.items()
    }
    uses: dict[str, list[tuple[str, str]]] = {}
    for name in exercises:
        if name in aliases and name not in functions:
            uses[name] = [(f"attnkit:{name}", f"is attnkit's {name}, imported")]
        if name not in functions:
            continue
        seen, todo, found = {name}, [name], []
        while todo:
            current = todo.pop()
            for key, text in direct[current]:
                found.append((key, text if current == name else f"via {current}: {text}"))
            for callee in calls[current]:
                if callee not in seen and callee not in exercises:
                    seen.add(callee)
                    todo.append(callee)
        if found:
            uses[name] = sorted(set(found))
    module_level = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Assign, ast.AugAssign)):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                for t in targets:
                    if isinstance(t, ast.Attribute):
                        text = f"assigns {ast.unparse(t)} (line {sub.lineno})"
                        module_level.append(("patch", text))
            elif isinstance(sub, ast.Name) and sub.id in _DYNAMIC:
                module_level.append(("patch", f"calls {sub.id} at import (line {sub.lineno})"))
    if module_level:
        uses["(module)"] = sorted(set(module_level))
    return uses


def library_flags(
    source: str, exercises: Sequence[str], allowed: dict[str, set[str]] | None = None
) -> dict[str, list[str]]:
    """For each exercise the learner defines, the evidence that it calls the library
    instead of implementing (see :func:`library_uses`), leaving out the kinds of use
    ``allowed`` for that exercise: those of the instructor's solution (chapter 2's
    solution calls chapter 1's attention through attnkit, for example)."""
    allowed = allowed or {}
    flags = {}
    for name, found in library_uses(source, exercises).items():
        texts = [text for key, text in found if key not in allowed.get(name, set())]
        if texts:
            flags[name] = sorted(set(texts))
    return flags


def allowed_uses(solution: Path | None, exercises: Sequence[str]) -> dict[str, set[str]]:
    """The kinds of library use of the instructor's solution, per exercise."""
    if solution is None or not solution.is_file():
        return {}
    found = library_uses(solution.read_text(encoding="utf-8"), exercises)
    return {name: {key for key, _ in uses} for name, uses in found.items()}


def _audit_flags(
    audit: dict[str, list[str]], allowed: dict[str, set[str]] | None = None
) -> dict[str, list[str]]:
    """The worker's run-time audit, kept where it shows library use or file access that
    the instructor's solution does not make for that exercise."""
    allowed = allowed or {}
    out = {}
    for name, events in audit.items():
        ok = allowed.get(name, set())
        keep = []
        for e in events:
            if not e.startswith(("attnkit.", "torch ", "open ", "socket", "subprocess", "os.")):
                continue
            if e.startswith("attnkit.") and f"attnkit:{e.rsplit('.', 1)[-1]}" in ok:
                continue
            if e.startswith("torch ") and "sdpa" in ok:
                continue
            keep.append(e)
        if keep:
            out[name] = keep
    return out


# -------------------------------------------------------------- fingerprints
def fingerprint(folders: Sequence[Path]) -> str:
    """A hash of every file under ``folders`` (names and contents; caches skipped)."""
    digest = hashlib.sha256()
    for folder in folders:
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# ----------------------------------------------------------------- the judge
def _run(cmd: list[str], env: dict, cwd: Path, wall: float) -> tuple[str, str, str, float]:
    """Run the judge with :func:`attnkit.grading.runner.run` (own session, whole group
    killed at the end, wall-time limit). Returns (the runner's cause; how it ended in
    words, or "" for an ordinary end; its output; the CPU seconds of the children)."""
    from .runner import run

    before = os.times()
    outcome = run(cmd, timeout=wall, cwd=cwd, env=env)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    ordinary = outcome.cause == "exited" and outcome.returncode in (0, 1)
    return outcome.cause, ("" if ordinary else outcome.describe()), outcome.output, cpu


def grade_submission(
    sub: Submission,
    chapter: str,
    root: Path,
    test_file: Path,
    sandbox: Sandbox,
    call_timeout: float,
    exercises: Sequence[str],
    allowed: dict[str, set[str]] | None = None,
) -> dict:
    """Grade one submission in the sandbox; return its gradebook entry (``allowed``:
    the library uses of the instructor's solution, not flagged)."""
    from attnkit.grade import summarize

    start = time.monotonic()
    entry: dict = {
        "learner": sub.learner,
        "submission": str(sub.path),
        "file": str(sub.file) if sub.file else None,
        "records": [],
        "notes": [],
        "flags": {},
        "audit": {},
    }
    if sub.file is None:
        entry["notes"].append(sub.problem)
        return _finish(entry, exercises, start)
    try:
        source = source_of(sub.file)
        ast.parse(source)
    except LearnerFileError as exc:
        entry["notes"].append(f"unreadable: {exc}")
        return _finish(entry, exercises, start)
    except SyntaxError as exc:
        entry["notes"].append(f"syntax error at line {exc.lineno}: {exc.msg}")
        return _finish(entry, exercises, start)
    except (UnicodeDecodeError, ValueError) as exc:
        entry["notes"].append(f"unreadable: {type(exc).__name__}: {exc}")
        return _finish(entry, exercises, start)
    entry["flags"] = library_flags(source, exercises, allowed)

    tmp = Path(tempfile.mkdtemp(prefix=f"attnkit-class-{chapter}-"))
    try:
        box = tmp / "sandbox"  # the worker's /tmp: the learner's file and nothing else
        (box / "submission").mkdir(parents=True)
        learner_copy = box / "submission" / sub.file.name
        shutil.copyfile(sub.file, learner_copy)
        judge = tmp / "judge"  # the judge's working directory and outputs
        judge.mkdir()
        config = {
            "sandbox": sandbox.to_json(),
            "learner_file": str(learner_copy),
            "call_timeout": call_timeout,
            "tmp": str(box),
            "audit_file": str(judge / "audit.json"),
        }
        (judge / "config.json").write_text(json.dumps(config), encoding="utf-8")
        report, collected = judge / "report.jsonl", judge / "collected.json"
        cmd = [
            sys.executable, "-m", "pytest", "-p", "pytest_timeout",
            "-p", "attnkit.grading.plugin", "-p", "no:cacheprovider",
            str(test_file), f"--rootdir={root}",
            f"--attnkit-report={report}", f"--attnkit-collected={collected}",
            f"--timeout={call_timeout + 90:.0f}", "--timeout-method=signal", "-q",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATTNKIT_")}
        env.update(
            ATTNKIT_SANDBOX_CONFIG=str(judge / "config.json"),
            PYTHONDONTWRITEBYTECODE="1",
            # only the plugins grading needs (the installed ones cost ~2 s of CPU a run)
            PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
            ATTNKIT_GRADE_LANG=os.environ.get("ATTNKIT_GRADE_LANG", "en"),
        )
        n_tests = max(len(exercises) * 4, 10)
        wall = 120 + n_tests * (call_timeout + 10)
        cause, ended, log, cpu = _run(cmd, env, judge, wall)
        entry["cpu_s"] = round(cpu, 2)
        if ended:
            entry["notes"].append(f"the test run {ended}")
        records = [
            json.loads(line)
            for line in report.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ] if report.exists() else []  # fmt: skip
        expected = json.loads(collected.read_text()) if collected.exists() else []
        seen = {r["nodeid"] for r in records}
        for nodeid, exercise in expected:
            if nodeid not in seen:
                records.append(
                    {
                        "nodeid": nodeid,
                        "exercise": exercise,
                        "kind": "test",
                        "status": "timed out" if cause == "timeout" else "error",
                        "message": f"not reached: the test run {ended or 'ended early'}",
                    }
                )
        if not records:
            entry["notes"].append(f"the tests did not run: {log.strip()[-500:]}")
        entry["records"] = records
        audit_path = judge / "audit.json"
        if audit_path.exists():
            audit = json.loads(audit_path.read_text(encoding="utf-8"))
            entry["audit"] = _audit_flags(audit.get("audit", {}), allowed)
            entry["worker_starts"] = audit.get("worker_starts")
        summary = summarize(records) if records else {}
        entry["exercises"] = {
            k: {"tests": v["tests"], "passed": v["passed"], "status": v["status"]}
            for k, v in summary.items()
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _finish(entry, exercises, start)


def _finish(entry: dict, exercises: Sequence[str], start: float) -> dict:
    records = entry["records"]
    n_tests = len(records)
    passed = sum(r["status"] == "passed" for r in records)
    entry["tests"], entry["passed"] = n_tests, passed
    entry["score"] = round(100 * passed / n_tests, 1) if n_tests else 0.0
    per: dict[str, float] = {}
    for name in exercises:
        rs = [r for r in records if r["exercise"] == name]
        per[name] = (
            round(100 * sum(r["status"] == "passed" for r in rs) / len(rs), 1) if rs else 0.0
        )
    entry["per_exercise"] = per
    statuses: dict[str, set[str]] = {}
    for r in records:
        message = r.get("message") or ""
        if r["status"] in ("timed out", "error"):
            statuses.setdefault(r["status"], set()).add(r["exercise"])
        elif "LearnerCrash" in message:
            statuses.setdefault("crashed", set()).add(r["exercise"])
        elif "can't allocate memory" in message or "MemoryError" in message:
            statuses.setdefault("memory limit", set()).add(r["exercise"])
    for status, names in sorted(statuses.items()):
        entry["notes"].append(f"{status}: {', '.join(sorted(names))}")
    entry["seconds"] = round(time.monotonic() - start, 1)
    return entry


def _flag_text(entry: dict) -> str:
    parts = []
    names = sorted(set(entry["flags"]) | set(entry["audit"]) - {"(loading)"})
    for name in names:
        evidence = [f"ran {e}" for e in entry["audit"].get(name, [])]
        evidence += entry["flags"].get(name, [])
        if evidence:
            parts.append(f"{name}: {'; '.join(evidence[:6])}")
    return " | ".join(parts)


def write_gradebook(entries: list[dict], exercises: Sequence[str], out: Path, meta: dict) -> Path:
    """Write the CSV (one row per learner) and the JSON beside it; return the JSON path."""
    columns = ["learner", *exercises, "total", "tests_passed", "tests", "library_flags", "notes"]
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for e in entries:
            writer.writerow(
                [
                    e["learner"],
                    *(f"{e['per_exercise'][x]:.1f}" for x in exercises),
                    f"{e['score']:.1f}",
                    e["passed"],
                    e["tests"],
                    _flag_text(e),
                    "; ".join(e["notes"]),
                ]
            )
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps({**meta, "learners": entries}, indent=1), encoding="utf-8")
    return json_path


def grade_class(
    chapter: str,
    folder: Path,
    out: Path,
    *,
    root: Path,
    timeout: float = 20.0,
    jobs: int | None = None,
    limits: Limits | None = None,
    package_root: Path | None = None,
) -> int:
    """Grade every submission of ``folder`` for ``chapter``; write ``out`` (CSV) and
    ``out`` with ``.json``. Returns 0, or 2 when the instructor's copy changed during
    grading (only possible without bubblewrap)."""
    test_files = sorted((root / "tests" / "grading").glob(f"test_{chapter}_*.py"))
    if not test_files:
        raise ValueError(f"no grading tests for chapter {chapter} under {root}")
    test_file = test_files[0]
    exercises = exercises_of(test_file)
    solution = next(iter(sorted((root / "solutions").glob(f"{chapter}_*.py"))), None)
    allowed = allowed_uses(solution, exercises)
    package_root = package_root or Path(__file__).resolve().parents[2]
    repos = [root] if package_root == root else [root, package_root]
    # other learners' work and the gradebooks stay out of sight, even inside the repository
    sandbox = Sandbox.detect(repos, limits, hide=[folder, out, out.with_suffix(".json")])
    if sandbox.warning:
        print(f"warning: {sandbox.warning}", file=sys.stderr)
    submissions = find_submissions(folder, chapter)
    if not submissions:
        raise ValueError(f"{folder} holds no submissions (files or folders)")
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    watched = [root / "tests", root / "solutions", package_root / "attnkit"]
    before = fingerprint(watched)
    print(
        f"Grading {len(submissions)} submissions of chapter {chapter} with {test_file.name} "
        f"({sandbox.mode}, {jobs} at a time, {timeout:g} s per call)"
    )
    start = time.monotonic()
    changed: list[str] = []

    def one(sub: Submission) -> dict:
        entry = grade_submission(
            sub, chapter, root, test_file, sandbox, timeout, exercises, allowed
        )
        if fingerprint(watched) != before:
            entry["notes"].append("the instructor's repository changed while this was graded")
            changed.append(sub.learner)
        print(f"  {sub.learner:<24} {entry['score']:5.1f}%  ({entry['seconds']:.0f} s)", flush=True)
        return entry

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        entries = list(pool.map(one, submissions))
    meta = {
        "chapter": chapter,
        "test_file": str(test_file),
        "sandbox": sandbox.mode,
        "sandbox_warning": sandbox.warning,
        "limits": sandbox.to_json()["limits"],
        "call_timeout_s": timeout,
        "seconds": round(time.monotonic() - start, 1),
        "exercises": list(exercises),
    }
    json_path = write_gradebook(entries, exercises, out, meta)
    print(f"Gradebook: {out} (messages: {json_path}); {meta['seconds']:.0f} s")
    if changed:
        print(
            "error: the instructor's tests, solutions or package changed during grading "
            f"(while grading {', '.join(changed)}); restore them (git checkout) and grade again.",
            file=sys.stderr,
        )
        return 2
    return 0
