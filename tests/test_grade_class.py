"""Instructor mode (``python -m attnkit.grade 01 --class DIR --out gradebook.csv``).

A class of 20 submissions for chapter 1, generated here from the solution and the
exercise (right, wrong, partial, hanging, crashing, memory-hungry, library-calling and
tampering), is graded into a gradebook, and every row is checked. Each tamper case
(patching the test module's ``assert_close``/``torch.equal`` from a class body or at
import, rebinding the grading plugin's classification, replaying the expected outputs
in notebook cells, a ``conftest.py`` in the submission, edited tests and expected
outputs in the submission's folder, a graded function that writes into the repository)
must score exactly what the same submission scores without the trick.

The instructor's repository is a temporary copy (``tests/grading``, ``solutions``,
``_toc.yml``), so that a write that got through could only damage the copy; the test
checks that the copy is unchanged. One case is also graded by the learner's own command,
where the learner's code shares the test process, to show that the trick does raise the
score there (so the class result is not vacuous). The fallback without bubblewrap
(``ATTNKIT_BWRAP=none``: rlimits alone) is checked on a small class.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnkit.grading import classroom
from attnkit.grading.sandbox import Limits, Sandbox, bwrap_binary, probe_bwrap

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "01"
STEM = "01_scaled_dot_product_attention"
EXERCISES = [
    "attention_scores",
    "masked_softmax",
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "additive_scores",
]
ALL = dict.fromkeys(EXERCISES, 100.0)
NONE = dict.fromkeys(EXERCISES, 0.0)
PART = "some tests passed, not all"  # an exercise score strictly between 0 and 100
# Short limits: every legitimate call of chapter 1 takes milliseconds.
CALL_TIMEOUT = 3.0
LIMITS = Limits(memory_bytes=3 << 30, cpu_seconds=60, processes=512, file_bytes=1 << 20)

SOLUTION = (ROOT / "solutions" / f"{STEM}.py").read_text(encoding="utf-8")
EXERCISE = (ROOT / "exercises" / f"{STEM}.py").read_text(encoding="utf-8")


def _edit(source: str, old: str, new: str) -> str:
    """``source`` with ``old`` replaced once (fails loudly if the solution changed)."""
    assert source.count(old) == 1, f"the solution no longer contains {old!r}"
    return source.replace(old, new)


def _copy_instructor_repo(dest: Path) -> Path:
    """The parts of the repository the grader reads, copied to ``dest``."""
    shutil.copytree(ROOT / "tests" / "grading", dest / "tests" / "grading")
    shutil.copytree(ROOT / "solutions", dest / "solutions")
    shutil.copyfile(ROOT / "_toc.yml", dest / "_toc.yml")
    return dest


# --------------------------------------------------------------- the tricks
WRONG_SCALE = _edit(
    SOLUTION, "scale = 1.0 / math.sqrt(q.shape[-1])", "scale = 1.0 / q.shape[-1]  # 1/d_k"
)

PATCH_FROM_CLASS_BODY = '''

class _Helpers:
    """Looks harmless; its body runs when the definitions are loaded."""

    import sys as _sys

    import torch as _torch
    import torch.testing as _testing

    _torch.equal = lambda *a, **k: True
    _testing.assert_close = lambda *a, **k: None
    for _m in list(_sys.modules.values()):
        if getattr(_m, "__name__", "").startswith("test_"):
            _m.assert_close = lambda *a, **k: None
'''

PATCH_AT_IMPORT = """

PATCHED = [
    setattr(m, "assert_close", lambda *a, **k: None)
    for m in list(__import__("sys").modules.values())
    if getattr(m, "__name__", "").startswith(("test_", "torch.testing"))
] + [setattr(__import__("torch"), "equal", lambda *a, **k: True)]
"""

REBIND_CLASSIFICATION = """

class _Grading:
    import attnkit.grading.plugin as _plugin

    _plugin._classify = lambda excinfo, text: "passed"
"""

CONFTEST = """
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
    call.excinfo = None
"""

EDITED_TEST = """
import pytest

CHAPTER = "01"


@pytest.mark.exercise("attention_scores")
@pytest.mark.parametrize("i", range(30))
def test_everything(i):
    assert True
"""


def _write_into_repository(repo: Path) -> str:
    """``attention_scores`` that first tries to overwrite the instructor's test file and
    expected outputs (and to leave a file in the package), then is the exercise stub."""
    targets = [
        repo / "tests" / "grading" / f"test_{STEM}.py",
        repo / "tests" / "grading" / "expected" / f"{STEM}.json",
        repo / "solutions" / "planted.py",
        ROOT / "attnkit" / "planted_by_a_learner.py",
    ]
    body = "".join(
        f"    try:\n        open({str(t)!r}, 'w').write({EDITED_TEST!r})\n"
        f"    except OSError as exc:\n        print('write refused:', exc)\n"
        for t in targets
    )
    return _edit(
        EXERCISE,
        "def attention_scores(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) "
        "-> torch.Tensor:\n"
        '    """Scaled dot-product scores (..., n_q, n_k)."""\n',
        "def attention_scores(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) "
        "-> torch.Tensor:\n"
        '    """Scaled dot-product scores (..., n_q, n_k)."""\n' + body,
    )


def _replaying_notebook(dest: Path) -> None:
    """The untouched exercise notebook with a cell before each check cell printing the
    expected output (copied from the instructor's file)."""
    import jupytext
    import nbformat

    nb = jupytext.reads(EXERCISE, fmt="py:percent")
    expected = json.loads(
        (ROOT / "tests" / "grading" / "expected" / f"{STEM}.json").read_text(encoding="utf-8")
    )
    texts = {
        c["source"].strip(): "".join(o.get("text", "") for o in c["outputs"])
        for c in expected["checks"]
    }
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.strip() in texts:
            replay = f"print({texts[cell.source.strip()]!r}, end='')"
            cells.append(nbformat.v4.new_code_cell(replay))
        cells.append(cell)
    nb.cells = cells
    nbformat.write(nb, dest)


LIBRARY = _edit(
    _edit(
        SOLUTION,
        '    if mask is not None:\n        scores = scores.masked_fill(~mask, float("-inf"))\n',
        "    return ak.masked_softmax(scores, mask)\n"
        '    if mask is not None:\n        scores = scores.masked_fill(~mask, float("-inf"))\n',
    ),
    "    weights = masked_softmax(attention_scores(q, k), mask)  # (..., n_q, n_k)\n",
    "    if mask is None:\n"
    "        return torch.nn.functional.scaled_dot_product_attention(q, k, v)\n"
    "    weights = masked_softmax(attention_scores(q, k), mask)  # (..., n_q, n_k)\n",
)


def _reads_solutions() -> str:
    path = ROOT / "solutions" / f"{STEM}.py"
    return _edit(
        SOLUTION,
        "    if scale is None:\n        scale = 1.0 / math.sqrt(q.shape[-1])\n",
        f"    namespace = {{}}\n    exec(open({str(path)!r}).read(), namespace)\n"
        "    return namespace['attention_scores'](q, k, scale)\n"
        "    if scale is None:\n        scale = 1.0 / math.sqrt(q.shape[-1])\n",
    )


def build_class(folder: Path, repo: Path) -> dict[str, dict]:
    """Write the 20 submissions; return each learner's expected per-exercise scores,
    flags and notes."""
    folder.mkdir()
    expect: dict[str, dict] = {}

    def add(name: str, source: str, scores: dict, **more) -> None:
        (folder / f"{name}.py").write_text(source, encoding="utf-8")
        expect[name] = {"scores": scores, **more}

    add("right", SOLUTION, ALL)
    shutil.copyfile(ROOT / "solutions" / f"{STEM}.ipynb", folder / "right_notebook.ipynb")
    expect["right_notebook"] = {"scores": ALL}
    (folder / "right_folder" / "exercises").mkdir(parents=True)
    (folder / "right_folder" / "exercises" / f"{STEM}.py").write_text(SOLUTION)
    expect["right_folder"] = {"scores": ALL}
    add("untouched", EXERCISE, NONE)
    # 1/d_k instead of 1/sqrt(d_k): wrong for d_k = 4 and 8, right for d_k = 1 and scale=0.5
    wrong_scale = {**ALL, "attention_scores": PART}
    add("wrong_scale", WRONG_SCALE, wrong_scale)
    add(
        "wrong_axis",
        _edit(SOLUTION, "e.sum(dim=-1, keepdim=True)", "e.sum(dim=-2, keepdim=True)"),
        {**ALL, "masked_softmax": 0.0},
    )
    partial = _edit(
        _edit(SOLUTION, "    return k_pos <= q_pos\n", "    raise NotImplementedError\n"),
        "    return torch.tanh(hq + hk) @ w  # (..., n_q, n_k)\n",
        "    raise NotImplementedError\n",
    )
    add("partial", partial, {**ALL, "causal_mask": 0.0, "additive_scores": 0.0})
    add(
        "hangs",
        _edit(
            SOLUTION, "    hq = (q @ w_q.T)", "    while True:\n        pass\n    hq = (q @ w_q.T)"
        ),
        {**ALL, "additive_scores": 0.0},
        note="timed out: additive_scores",
    )
    add(
        "crashes",
        _edit(
            SOLUTION,
            "    if max_len is None:\n",
            "    import os\n    os._exit(3)\n    if max_len is None:\n",
        ),
        {**ALL, "padding_mask": 0.0},
        message="exit status 3",
        note="crashed: padding_mask",
    )
    add("syntax_error", SOLUTION.replace("def causal_mask(", "def causal_mask(("), NONE,
        note="syntax error")  # fmt: skip
    add(
        "memory_hog",
        _edit(
            SOLUTION,
            "    hq = (q @ w_q.T)",
            "    torch.ones(8 << 30, dtype=torch.float64)\n    hq = (q @ w_q.T)",
        ),
        {**ALL, "additive_scores": 0.0},
        note="memory limit: additive_scores",
    )
    # ---- tampering: each scores what the same submission scores without the trick
    add("tamper_class_body", WRONG_SCALE + PATCH_FROM_CLASS_BODY, wrong_scale)
    add("tamper_at_import", WRONG_SCALE + PATCH_AT_IMPORT, wrong_scale)
    add("tamper_plugin", EXERCISE + REBIND_CLASSIFICATION, NONE)
    _replaying_notebook(folder / "tamper_replay.ipynb")
    expect["tamper_replay"] = {"scores": NONE}
    (folder / "tamper_conftest").mkdir()
    (folder / "tamper_conftest" / f"{STEM}.py").write_text(EXERCISE)
    (folder / "tamper_conftest" / "conftest.py").write_text(CONFTEST)
    expect["tamper_conftest"] = {"scores": NONE}
    fake = folder / "tamper_tests"  # a clone with edited tests and expected outputs
    (fake / "tests" / "grading" / "expected").mkdir(parents=True)
    (fake / "exercises").mkdir()
    (fake / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (fake / "tests" / "grading" / f"test_{STEM}.py").write_text(EDITED_TEST)
    (fake / "tests" / "grading" / "conftest.py").write_text(CONFTEST)
    (fake / "tests" / "grading" / "expected" / f"{STEM}.json").write_text('{"checks": []}')
    (fake / "exercises" / f"{STEM}.py").write_text(EXERCISE)
    expect["tamper_tests"] = {"scores": NONE}
    add("tamper_writes_repo", _write_into_repository(repo), NONE)
    # ---- the library instead of an implementation: full marks, flagged
    add(
        "library_calls",
        LIBRARY,
        ALL,
        flags={"masked_softmax": "attnkit", "scaled_dot_product_attention": "scaled_dot_product"},
    )
    add(
        "reads_solutions",
        _reads_solutions(),
        {**ALL, "attention_scores": 0.0},  # solutions/ is hidden in the sandbox
        flags={"attention_scores": "ran open /"},
    )
    assert len(expect) == 20
    return expect


def _rows(csv_path: Path) -> dict[str, dict[str, str]]:
    with csv_path.open(encoding="utf-8") as fh:
        return {row["learner"]: row for row in csv.DictReader(fh)}


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


@pytest.fixture(scope="module")
def sandbox_mode() -> str:
    """bwrap is expected wherever it is installed (tools/install_sandbox.sh); this
    machine's answer is printed with -s."""
    binary = bwrap_binary()
    if binary is None:
        print("bwrap: not installed; the class is graded with rlimits alone")
        return "rlimits"
    works, seen = probe_bwrap(binary)
    print(f"bwrap: {binary}: {'works' if works else 'fails'}: {seen}")
    return "bwrap" if works else "rlimits"


def test_a_class_of_20_grades_into_the_expected_gradebook(tmp_path, sandbox_mode, capsys):
    repo = _copy_instructor_repo(tmp_path / "instructor")
    expect = build_class(tmp_path / "class", repo)
    out = tmp_path / "gradebook.csv"
    watched = [repo / "tests", repo / "solutions", ROOT / "attnkit"]
    before = classroom.fingerprint(watched)
    cpu0, start = _children_cpu(), time.monotonic()
    code = classroom.grade_class(
        CHAPTER, tmp_path / "class", out, root=repo, timeout=CALL_TIMEOUT, jobs=2, limits=LIMITS
    )
    wall, cpu = time.monotonic() - start, _children_cpu() - cpu0
    printed = capsys.readouterr()
    with capsys.disabled():
        print(f"\nclass of 20 ({sandbox_mode}): {wall:.0f} s wall, {cpu:.0f} s CPU of children")
    assert code == 0, printed.out + printed.err
    assert classroom.fingerprint(watched) == before, "a submission changed the instructor's copy"
    assert not (ROOT / "attnkit" / "planted_by_a_learner.py").exists()
    # The issue asks for under 5 minutes; on a shared machine wall time says little, so
    # the budget is checked in CPU seconds (2 cores: 150 s of CPU is 75 s of wall alone).
    assert cpu < 150, f"grading the class took {cpu:.0f} s of CPU (budget: 150 s)"

    rows = _rows(out)
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    entries = {e["learner"]: e for e in data["learners"]}
    assert data["sandbox"] == sandbox_mode
    assert set(rows) == set(expect)
    header = list(next(iter(rows.values())))
    assert header[: len(EXERCISES) + 2] == ["learner", *data["exercises"], "total"]
    assert set(data["exercises"]) == set(EXERCISES)
    for learner, want in expect.items():
        row, entry = rows[learner], entries[learner]
        got = {x: float(row[x]) for x in EXERCISES}
        shown = {x: PART if 0 < v < 100 else v for x, v in got.items()}
        assert shown == want["scores"], (learner, got, entry["notes"], entry["records"][:3])
        n_tests = int(row["tests"])
        if learner != "syntax_error":
            assert n_tests == int(rows["right"]["tests"]) >= 30, (learner, row)
            total = 100 * int(row["tests_passed"]) / n_tests
            assert float(row["total"]) == pytest.approx(total, abs=0.05)
        if "note" in want:
            assert want["note"] in row["notes"], (learner, row["notes"])
        if "message" in want:
            messages = " ".join(r["message"] for r in entry["records"])
            assert want["message"] in messages, (learner, messages[:500])
        flags = row["library_flags"]
        for exercise, evidence in want.get("flags", {}).items():
            assert f"{exercise}:" in flags and evidence in flags, (learner, flags)
        if learner in ("right", "right_notebook", "right_folder", "untouched", "wrong_scale"):
            assert flags == "", (learner, flags)
    # the tricks: exactly the score of the same work without the trick
    for tamper, plain in [
        ("tamper_class_body", "wrong_scale"),
        ("tamper_at_import", "wrong_scale"),
        ("tamper_plugin", "untouched"),
        ("tamper_replay", "untouched"),
        ("tamper_conftest", "untouched"),
        ("tamper_tests", "untouched"),
        ("tamper_writes_repo", "untouched"),
    ]:
        assert rows[tamper]["total"] == rows[plain]["total"], (tamper, rows[tamper])
        assert rows[tamper]["tests_passed"] == rows[plain]["tests_passed"], tamper
    # the hanging and crashing functions were stopped with their cause, the rest graded
    hung = [r for r in entries["hangs"]["records"] if r["exercise"] == "additive_scores"]
    assert {r["status"] for r in hung} == {"timed out"}, hung
    assert "did not finish within 3 s" in hung[0]["message"]
    # the run-time audit saw the library calls as well as the source analysis
    audit = entries["library_calls"]["audit"]
    assert any("masked_softmax" in e for e in audit.get("masked_softmax", [])), audit
    assert any(
        "scaled_dot_product_attention" in e for e in audit.get("scaled_dot_product_attention", [])
    ), audit


def test_the_trick_does_raise_the_score_when_the_code_shares_the_test_process(tmp_path):
    """Without instructor mode (the learner's own command) rebinding the plugin's
    classification turns an untouched exercise into 100%: the class test above is not
    vacuous."""
    learner = tmp_path / f"{STEM}.py"
    learner.write_text(EXERCISE + REBIND_CLASSIFICATION, encoding="utf-8")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "attnkit.grade", CHAPTER, "--file", str(learner),
         "--skip-notebook", "--json", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    records = json.loads(report.read_text())["tests"]
    assert records and all(r["status"] == "passed" for r in records), done.stdout[-2000:]


def test_without_bwrap_rlimits_alone_with_a_warning_and_writes_are_caught(
    tmp_path, monkeypatch, capsys
):
    """``ATTNKIT_BWRAP=none``: the fallback prints a warning, grades with rlimits, and a
    submission that writes into the instructor's copy is caught (exit status 2)."""
    monkeypatch.setenv("ATTNKIT_BWRAP", "none")
    repo = _copy_instructor_repo(tmp_path / "instructor")
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "tamper_plugin.py").write_text(EXERCISE + REBIND_CLASSIFICATION)
    (folder / "writes.py").write_text(_write_into_repository(repo))
    out = tmp_path / "gradebook.csv"
    try:
        code = classroom.grade_class(
            CHAPTER, folder, out, root=repo, timeout=CALL_TIMEOUT, jobs=2, limits=LIMITS
        )
    finally:
        (ROOT / "attnkit" / "planted_by_a_learner.py").unlink(missing_ok=True)
    printed = capsys.readouterr()
    assert "warning: no sandbox (ATTNKIT_BWRAP=none)" in printed.err
    assert code == 2 and "changed during grading" in printed.err, printed.err
    rows = _rows(out)
    assert float(rows["tamper_plugin"]["total"]) == 0.0
    assert float(rows["writes"]["total"]) == 0.0
    assert "changed while this was graded" in rows["writes"]["notes"]


def test_sandbox_command_line():
    """The bwrap prefix: no network, read-only repository, solutions hidden, /tmp the
    only writable place."""
    box = Sandbox(read_only=(ROOT,), hidden=(ROOT / "solutions",), mode="bwrap", bwrap="bwrap")
    cmd = box.wrapper(Path("/x/box"))
    text = " ".join(cmd)
    assert "--unshare-all" in cmd and "--die-with-parent" in cmd
    assert f"--ro-bind {ROOT} {ROOT}" in text
    assert f"--tmpfs {ROOT / 'solutions'}" in text
    # the private /tmp comes before the read-only binds, so a repository under /tmp
    # (a CI clone) is bound on top of it instead of hidden behind it
    assert text.index("--bind /x/box /tmp") < text.index(f"--ro-bind {ROOT} {ROOT}")
    assert "--chdir /tmp" in text
    assert [c for c in cmd if c == "--bind"] == ["--bind"]  # the one writable bind
    assert Sandbox(mode="rlimits").wrapper(Path("/x")) == []


def test_static_flags_follow_helpers_and_ignore_own_names():
    source = (
        "import attnkit as ak\nimport torch.nn.functional as F\n"
        "def helper(x):\n    return ak.masked_softmax(x)\n"
        "def masked_softmax(s, mask=None):\n    return helper(s)\n"
        "def scaled_dot_product_attention(q, k, v):\n"
        "    return F.scaled_dot_product_attention(q, k, v)\n"
        "def attention_scores(q, k, scale=None):\n"
        "    return scaled_dot_product_attention(q, k, k)\n"
        "class _X:\n    torch_equal = setattr(F, 'x', 1)\n"
    )
    flags = classroom.library_flags(source, EXERCISES)
    assert "via helper" in " ".join(flags["masked_softmax"])
    assert "scaled_dot_product_attention" in " ".join(flags["scaled_dot_product_attention"])
    assert "attention_scores" not in flags  # it calls the learner's own function
    assert "setattr" in " ".join(flags["(module)"])
    assert classroom.library_flags(SOLUTION, EXERCISES) == {}
    bound = classroom.library_flags(
        "from attnkit import masked_softmax as masked_softmax\n", EXERCISES
    )
    assert "masked_softmax" in bound
    # what the instructor's solution itself calls is not flagged (chapter 2's solution
    # calls chapter 1's attention through attnkit), anything beyond it is
    two = next((ROOT / "solutions").glob("02_*.py"))
    names = classroom.exercises_of(next((ROOT / "tests" / "grading").glob("test_02_*.py")))
    allowed = classroom.allowed_uses(two, names)
    assert classroom.library_flags(two.read_text(), names)  # flagged without the baseline
    assert classroom.library_flags(two.read_text(), names, allowed) == {}
    more = two.read_text().replace(
        "    heads = ak.scaled_dot_product_attention(",
        "    ak.split_heads\n    heads = ak.scaled_dot_product_attention(",
        1,
    )
    assert more != two.read_text()
    assert "split_heads" in str(classroom.library_flags(more, names, allowed))


def test_usage_errors_of_class_mode(tmp_path):
    from attnkit.grade import main

    assert main(["01", "--class", str(tmp_path)]) == 2  # no --out
    assert main(["01", "--class", str(tmp_path / "missing"), "--out", "x.csv"]) == 2
    assert main(["01", "--class", str(tmp_path), "--out", str(tmp_path / "g.csv")]) == 2
    assert main(["01", "--class", str(tmp_path), "--out", "g.csv", "--timeout", "nan"]) == 2


def test_a_bwrap_that_fails_falls_back_with_its_reason(tmp_path, monkeypatch):
    """Where user namespaces are off, bwrap fails at run time: detected by running it
    once, and the fallback's warning quotes bwrap's own error."""
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "bubblewrap 0.0"; exit 0; fi\n'
        'echo "bwrap: No permissions to create new namespace" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("ATTNKIT_BWRAP", str(fake))
    box = Sandbox.detect([ROOT])
    assert box.mode == "rlimits" and box.wrapper(tmp_path) == []
    assert "No permissions to create new namespace" in box.warning
