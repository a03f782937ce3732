"""The grader on any input, as a new user tries it (issue 18, sections 2 and 3).

Most cases grade a small chapter made for the test (a "mini book": five one-line
exercises, graded by the book's own conftest, plugin and grader), so that each grading
costs one or two short pytest processes; the rest call the grader's functions or its
``main`` in this process, where no test process is needed (usage errors exit before).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from attnkit import grade as grader
from attnkit.grading import checks, hints, messages, progress
from attnkit.grading.chapters import all_exercises

ROOT = Path(__file__).resolve().parents[1]

MINI_TESTS = '''\
"""A chapter made for the grader's own tests: five exercises."""
import pytest
from attnkit.grading import require

CHAPTER = "01"
ex = pytest.mark.exercise


@ex("add")
@pytest.mark.parametrize("a,b", [(1, 2), (-3, 3)])
def test_add(learner, a, b):
    assert require(learner, "add")(a, b) == a + b


@ex("mul")
def test_mul(learner):
    assert require(learner, "mul")(2, 3) == 6


@ex("mul")
def test_mul_zero(learner):
    assert require(learner, "mul")(0, 5) == 0


@ex("neg")
def test_neg(learner):
    assert require(learner, "neg")(4) == -4


@ex("sq")
def test_sq(learner):
    assert require(learner, "sq")(3) == 9


@ex("half")
def test_half(learner):
    assert require(learner, "half")(8) == 4
'''

OTHER_TESTS = """\
import pytest
from attnkit.grading import require

CHAPTER = "02"


@pytest.mark.exercise("sub")
def test_sub(learner):
    assert require(learner, "sub")(3, 1) == 2
"""

SOLUTION = """\
# %% [markdown]
# # A small chapter

# %%
def add(a, b):
    return a + b


def mul(a, b):
    return a * b


def neg(x):
    return -x


def sq(x):
    return x * x


def half(x):
    return x // 2


# %%
print(add(1, 2))  # NBVAL_CHECK_OUTPUT
"""

CHECK = {
    "source": "print(add(1, 2))  # NBVAL_CHECK_OUTPUT",
    "outputs": [{"output_type": "stream", "name": "stdout", "text": "3\n"}],
    "execution_count": 2,
}


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """A repository with the layout the grader expects, and one graded chapter (01) plus
    a second (02) for the wrong-chapter cases."""
    root = tmp_path_factory.mktemp("book")
    (root / "_toc.yml").write_text("root: intro\n")
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nmarkers = ["exercise(name): graded exercise"]\n'
    )
    grading = root / "tests" / "grading"
    (grading / "expected").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "grading" / "conftest.py", grading / "conftest.py")
    (grading / "test_01_mini.py").write_text(MINI_TESTS)
    (grading / "test_02_other.py").write_text(OTHER_TESTS)
    (grading / "expected" / "01_mini.json").write_text(json.dumps({"checks": [CHECK]}))
    for folder in ("solutions", "exercises"):
        (root / folder).mkdir()
        (root / folder / "01_mini.py").write_text(SOLUTION)
    (root / "solutions" / "02_other.py").write_text("def sub(a, b):\n    return a - b\n")
    return root


@pytest.fixture(autouse=True)
def own_progress(tmp_path, monkeypatch) -> Path:
    """Every test keeps its progress in its own file (never the repository's)."""
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.PATH_VARIABLE, str(path))
    monkeypatch.setenv(messages.LANG_VARIABLE, "en")
    messages.set_lang(None)
    return path


def run_grader(cwd: Path, *args: str, timeout: float = 300) -> tuple[int, str]:
    """``python -m attnkit.grade ARGS`` in ``cwd``, as a learner runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "attnkit.grade", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return done.returncode, done.stdout + done.stderr


def main_in(cwd: Path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The grader's ``main`` in this process (for what exits before any test process)."""
    monkeypatch.chdir(cwd)
    code = grader.main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def alive(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


# ----------------------------------------------------- crashes, hangs, memory, children
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="Linux: signals, rlimits and /proc")
def test_crashes_hangs_and_memory_are_named_and_the_rest_is_graded(book, tmp_path):
    """os._exit, a SIGKILL (what the OOM killer sends), an allocation over the memory
    limit and a hang that no signal handler can end, each in one exercise; the children
    a function starts die with the grading; the report names each cause and exercise."""
    marker = f"attnkit-child-{uuid.uuid4().hex}"
    learner = tmp_path / "01_mine.py"
    learner.write_text(
        "import os, signal, subprocess, sys, time\n\n"
        "def add(a, b):\n    os._exit(3)\n\n"
        "def mul(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n\n"
        "def neg(x):\n    return bytearray(3 * 2**30)\n\n"
        # SIGALRM blocked: pytest-timeout cannot stop it, as inside one long C call
        "def sq(x):\n    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
        "    time.sleep(300)\n\n"
        "def half(x):\n"
        f"    cmd = [sys.executable, '-c', 'import time; time.sleep(300)', '{marker}']\n"
        "    subprocess.Popen(cmd)\n"
        "    subprocess.Popen(cmd, start_new_session=True)\n"
        "    return x // 2\n"
    )
    report = tmp_path / "report.json"
    start = time.monotonic()
    code, out = run_grader(
        book,
        "01",
        "--file",
        str(learner),
        "--skip-notebook",
        "--timeout",
        "1",
        "--memory",
        "1",
        "--json",
        str(report),
    )
    elapsed = time.monotonic() - start
    assert code == 1 and "Traceback" not in out, out
    by_test = {r["nodeid"].split("::")[-1]: r for r in json.loads(report.read_text())["tests"]}
    assert by_test["test_add[1-2]"]["status"] == "error"
    assert (
        "While `add` was being tested, the process exited with status 3"
        in by_test["test_add[1-2]"]["message"]
    )
    assert "os._exit" in by_test["test_add[1-2]"]["message"]
    assert "not run: test_add[1-2] of the same exercise" in by_test["test_add[-3-3]"]["message"]
    assert "SIGKILL" in by_test["test_mul"]["message"]
    assert "out-of-memory" in by_test["test_mul"]["message"]
    assert by_test["test_mul_zero"]["status"] == "error"
    assert by_test["test_neg"]["status"] == "failed"
    assert "used more than 1 GB of memory" in by_test["test_neg"]["message"]
    assert by_test["test_sq"]["status"] == "timed out"
    assert "`sq` did not return" in by_test["test_sq"]["message"]
    assert by_test["test_half"]["status"] == "passed"
    for r in by_test.values():
        assert "time limit" not in r["message"] or r["exercise"] == "sq", r
    # one hang costs timeout + grace (1 + 5.25 s), not timeout x tests + 60 s
    assert elapsed < 120, elapsed
    deadline = time.monotonic() + 5
    while alive(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(marker) == [], "children started by the learner's code survived"
    # progress was printed while it ran, and the report names its test file
    assert "[tests] add ..." in out and "[tests] half ..." in out
    assert "Tests: tests/grading/test_01_mini.py" in out


def test_a_crash_while_loading_the_file_is_named_once(book, tmp_path):
    learner = tmp_path / "01_mine.py"
    learner.write_text("import os\n\ndef add(a, b, c=os._exit(4)):\n    return a + b\n")
    code, out = run_grader(book, "01", "--file", str(learner), "--skip-notebook")
    assert code == 1 and "Traceback" not in out, out
    assert "loading your file hangs or crashes" in out and "status 4" in out, out


# ------------------------------------------------------------ the notebook and score
def test_failing_cells_are_named_and_score_agrees_with_exit_status(book, tmp_path):
    """A top-level raise, sys.exit and while True: each cell is named, the score is not
    100% and the exit status is 1. A lowercase helper's NameError says why."""
    learner = tmp_path / "01_mine.py"
    learner.write_text(
        SOLUTION.replace("    return a + b\n", "    return (a + b) * factor\n").replace(
            "# %%\ndef add", "# %%\nfactor = 1\n\n\n# %%\ndef add"
        )
        + "\n# %%\nraise RuntimeError('boom')\n"
        "\n# %%\nimport sys\nsys.exit(3)\n"
        "\n# %%\nwhile True:\n    pass\n"
    )
    report = tmp_path / "report.json"
    args = ["--timeout", "1", "--json", str(report)]
    code, out = run_grader(book, "01", "--file", str(learner), *args)
    data = json.loads(report.read_text())
    assert code == 1 and "Traceback (most recent call last)" not in out, out
    assert not data["score"]["complete"] and data["score"]["percent"] < 100
    assert "Score: 100%" not in out
    cells = {r["line"]: r for r in data["notebook"]["records"] if r["status"] != "passed"}
    assert "raise RuntimeError('boom')" in cells and "boom" in out
    assert "import sys" in cells and "while True:" in cells, cells
    assert cells["while True:"]["status"] == "timed out"
    add = [r for r in data["tests"] if r["exercise"] == "add"]
    assert add and all("Why: `factor` is set at line" in r["message"] for r in add), add
    assert "Rename it FACTOR" in out
    # the check cell still prints what the solution prints
    assert [r["status"] for r in data["notebook"]["records"] if r["kind"] == "check-cell"] == [
        "passed"
    ]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_empty_file_is_graded_not_a_crash(book, tmp_path, monkeypatch):
    """... and the only file grading writes in the repository is the progress file."""
    learner = tmp_path / "01_mine.py"
    learner.write_text("")
    report = tmp_path / "report.json"
    monkeypatch.delenv(progress.PATH_VARIABLE)  # the real place, in the (mini) repository
    before = snapshot(book)
    code, out = run_grader(book, "01", "--file", str(learner), "--json", str(report))
    after = snapshot(book)
    written = book / progress.FILE_NAME
    try:
        assert {k: v for k, v in after.items() if k != progress.FILE_NAME} == before
        assert json.loads(written.read_text())["chapters"]["01"]["attempts"] == 1
    finally:
        written.unlink(missing_ok=True)
    data = json.loads(report.read_text())
    assert code == 1 and "Traceback" not in out and "RuntimeError" not in out, out
    assert data["tests"] and all(r["status"] == "failed" for r in data["tests"])
    assert "does not define `add`" in out
    assert "no code cells" in out and data["score"]["percent"] == 0


def test_score_is_floored_so_100_means_everything_passed():
    records = [{"status": "passed"}] * 199 + [{"status": "failed"}]
    assert grader.score(records, None) == {
        "passed": 199,
        "total": 200,
        "percent": 99,
        "complete": False,
    }
    assert grader.score(records[:199], None)["percent"] == 100


# ------------------------------------------------------------------ usage errors (exit 2)
@pytest.mark.parametrize(
    "args,words",
    [
        (["--timeout", "nan"], "--timeout must be a finite number > 0"),
        (["--timeout", "inf"], "--timeout must be a finite number > 0"),
        (["--timeout", "-1"], "--timeout must be a finite number > 0"),
        (["--memory", "0"], "--memory must be a finite number > 0"),
    ],
)
def test_bad_numbers_are_refused(book, monkeypatch, capsys, args, words):
    code, out = main_in(book, monkeypatch, capsys, "01", *args)
    assert code == 2 and words in out


def test_file_given_a_folder_names_the_files_in_it(book, monkeypatch, capsys):
    code, out = main_in(book, monkeypatch, capsys, "01", "--file", str(book / "solutions"))
    assert code == 2 and "is a folder" in out and "01_mini.py" in out


def test_a_chapter_02_file_graded_as_01_is_refused(book, tmp_path, monkeypatch, capsys):
    code, out = main_in(
        book, monkeypatch, capsys, "01", "--file", str(book / "solutions" / "02_other.py")
    )
    assert code == 2 and "chapter 02's file" in out and "attnkit.grade 02" in out
    renamed = tmp_path / "mine.py"  # by its content, when the name says nothing
    renamed.write_text((book / "solutions" / "02_other.py").read_text())
    code, out = main_in(book, monkeypatch, capsys, "01", "--file", str(renamed))
    assert code == 2 and "some of chapter 02's" in out


def test_non_utf8_file_is_a_message_and_exit_2(book, tmp_path, monkeypatch, capsys):
    learner = tmp_path / "01_mine.py"
    learner.write_bytes("# 注意力\ndef add(a, b):\n    return a + b\n".encode("gbk"))
    code, out = main_in(book, monkeypatch, capsys, "01", "--file", str(learner))
    assert code == 2 and "not UTF-8" in out and "Traceback" not in out


def test_json_with_cells_but_no_nbformat_keys_is_a_message(book, tmp_path, monkeypatch, capsys):
    learner = tmp_path / "01_mine.ipynb"
    cell = {"cell_type": "code", "source": "def add(a, b):\n    return a + b", "metadata": {}}
    learner.write_text(json.dumps({"cells": [cell]}))
    code, out = main_in(book, monkeypatch, capsys, "01", "--file", str(learner))
    assert code == 2 and "not a valid Jupyter notebook" in out and "Traceback" not in out


def test_json_never_overwrites_learner_or_source_files(book, tmp_path, monkeypatch, capsys):
    learner = book / "exercises" / "01_mini.py"
    nb = learner.with_suffix(".ipynb")
    nb.write_text("{}")
    os.utime(nb, (1, 1))  # older than the .py, which is graded
    try:
        before = {p: p.read_bytes() for p in (learner, nb)}
        refused = [
            (learner, "would overwrite"),
            (nb, "would overwrite"),  # the twin of the graded file
            (book / "tests" / "grading" / "expected" / "new.json", "inside the book's sources"),
            (book / "solutions" / "report.json", "inside the book's sources"),
            (tmp_path / "missing" / "report.json", "does not exist"),
            (tmp_path, "is a folder"),
        ]
        for path, words in refused:
            code, out = main_in(book, monkeypatch, capsys, "01", "--json", str(path))
            assert code == 2 and words in out, (path, out)
        assert {p: p.read_bytes() for p in (learner, nb)} == before
    finally:
        nb.unlink()


def test_json_refuses_files_tracked_by_git():
    assert checks.tracked_by_git(ROOT, ROOT / "README.md") == (ROOT / ".git").exists()
    with pytest.raises(checks.UsageError, match="inside the book's sources"):
        checks.check_json_path(ROOT / "README.md", ROOT, ROOT / "x.py")
    ok = ROOT / f"report-{uuid.uuid4().hex}.json"  # untracked, beside the sources
    assert checks.check_json_path(ok, ROOT, ROOT / "x.py") == ok


def test_py_and_ipynb_that_differ_give_a_warning_naming_the_graded_one(tmp_path):
    import jupytext

    py = tmp_path / "01_x.py"
    py.write_text("# %%\ndef add(a, b):\n    return a + b\n")
    nb = jupytext.read(py)
    jupytext.write(nb, tmp_path / "01_x.ipynb")
    assert checks.pair_warning(py) is None
    nb.cells[0].source = "def add(a, b):\n    raise NotImplementedError"
    jupytext.write(nb, tmp_path / "01_x.ipynb")
    os.utime(py, (1, 1))  # the .ipynb is newer: it is graded
    warning = checks.pair_warning(tmp_path / "01_x.ipynb")
    assert "grading 01_x.ipynb" in warning and "01_x.py" in warning and "saved last" in warning


def test_report_names_the_test_file_and_its_commit():
    test_file = next((ROOT / "tests" / "grading").glob("test_01_*.py"))
    identity = checks.test_file_identity(ROOT, test_file)
    assert identity["path"] == f"tests/grading/{test_file.name}"
    if (ROOT / ".git").exists():
        assert identity["commit"] and len(identity["commit"].split()[0]) >= 7


# ------------------------------------------------------------------ hints and progress
HINTS = """\
[add]
en = ["Add them.", "Both are numbers.", "return a ? b"]
zh = ["把它们加起来。", "两个都是数。", "return a ? b"]
[mul]
en = ["Multiply."]
zh = ["相乘。"]
"""


def test_hints_come_one_at_a_time_and_are_recorded(book, own_progress, monkeypatch, capsys):
    path = book / "solutions" / "01_mini.hints.toml"
    path.write_text(HINTS)
    try:
        seen = [main_in(book, monkeypatch, capsys, "01", "--hint", "add") for _ in range(4)]
        assert [c for c, _ in seen] == [0, 0, 0, 0]
        assert "Hint 1 of 3 for add:\nAdd them." in seen[0][1]
        assert "Hint 2 of 3" in seen[1][1] and "Hint 3 of 3" in seen[2][1]
        assert "seen all 3 hints" in seen[3][1]
        data = json.loads(own_progress.read_text())
        assert data["chapters"]["01"]["exercises"]["add"]["hints"] == 3
        code, out = main_in(book, monkeypatch, capsys, "01", "--hint", "mul", "--lang", "zh")
        assert code == 0 and "相乘。" in out and "提示 1/1" in out
        code, out = main_in(book, monkeypatch, capsys, "01", "--hint", "neg")
        assert code == 0 and "No hints have been written for neg" in out
        code, out = main_in(book, monkeypatch, capsys, "01", "--hint", "nope")
        assert code == 2 and "add, mul, neg, sq, half" in out
    finally:
        path.unlink()


def test_progress_table_reset_and_a_corrupt_file(book, own_progress, monkeypatch, capsys):
    data = progress.record_grading(
        progress.empty(), "01", {"add": {"status": "passed", "passed": 2, "tests": 2}}
    )
    data = progress.record_grading(
        data, "01", {"add": {"status": "failed", "passed": 1, "tests": 2}}
    )
    progress.save(own_progress, data)
    saved = json.loads(own_progress.read_text())["chapters"]["01"]
    assert saved["attempts"] == 2
    add = saved["exercises"]["add"]
    assert (add["best"], add["last"], add["best_tests"], add["attempts"]) == (
        "passed",
        "failed",
        2,
        2,
    )
    code, out = main_in(book, monkeypatch, capsys, "--progress")
    assert code == 0 and "01" in out and "1/5" in out and "02" in out and "0/1" in out
    code, out = main_in(book, monkeypatch, capsys, "--reset", "01")
    assert code == 0 and "01" not in json.loads(own_progress.read_text())["chapters"]
    own_progress.write_text("{not json")
    code, out = main_in(book, monkeypatch, capsys, "--progress")
    assert code == 2 and "cannot be read" in out and "--reset" in out and "Traceback" not in out
    hints_file = book / "solutions" / "01_mini.hints.toml"
    hints_file.write_text(HINTS)
    try:
        code, out = main_in(book, monkeypatch, capsys, "01", "--hint", "add")
    finally:
        hints_file.unlink()
    assert code == 0 and "not recorded" in out and "Add them." in out  # a hint is shown ...
    assert own_progress.read_text() == "{not json"  # ... and the file is left alone
    code, out = main_in(book, monkeypatch, capsys, "--reset")
    assert code == 0 and not own_progress.exists()


def test_progress_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    progress.save(path, progress.empty())

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(progress.json, "dump", broken_dump)
    with pytest.raises(OSError):
        progress.save(path, progress.record_hint(progress.empty(), "01", "add", 1))
    assert json.loads(path.read_text()) == progress.empty()  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no temporary file left


def test_progress_lives_in_the_repository_and_is_git_ignored(monkeypatch):
    monkeypatch.delenv(progress.PATH_VARIABLE)
    assert progress.progress_path(ROOT) == ROOT / ".attnkit-progress.json"
    if (ROOT / ".git").exists():
        ignored = subprocess.run(
            ["git", "check-ignore", ".attnkit-progress.json", ".attnkit-progress.json.x.tmp"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert len(ignored.stdout.split()) == 2, ignored


def test_hint_file_checker_on_a_fixture(tmp_path):
    good = tmp_path / "01_x.hints.toml"
    good.write_text(HINTS.replace('en = ["Multiply."]', 'en = ["Multiply."]'))
    assert hints.problems(good, ["add", "mul"]) == []
    assert any("no hints for neg" in p for p in hints.problems(good, ["add", "mul", "neg"]))
    assert any("not an exercise" in p for p in hints.problems(good, ["add"]))
    bad = tmp_path / "02_x.hints.toml"
    bad.write_text('[add]\nen = ["a", "b", "c", "d"]\nzh = []\n')
    found = hints.problems(bad, ["add"])
    assert any("en needs 1 to 3" in p for p in found) and any("zh needs 1 to 3" in p for p in found)
    bad.write_text("[add\n")
    assert hints.problems(bad, ["add"])  # not TOML: reported, not raised


@pytest.mark.parametrize("chapter,names", sorted(all_exercises(ROOT).items()))
def test_every_exercise_has_hints_in_both_languages(chapter, names):
    path = hints.hints_path(ROOT, chapter)
    solution = next((ROOT / "solutions").glob(f"{chapter}_*.py")).name
    assert path is not None, f"no hints file beside solutions/{solution}"
    assert hints.problems(path, names) == []


def test_every_hints_file_sits_beside_a_solution():
    orphans = [
        p.name
        for p in (ROOT / "solutions").glob("*.hints.toml")
        if not p.with_name(p.name.removesuffix(".hints.toml") + ".py").is_file()
    ]
    assert orphans == [], "hints files named after no solution (renumbered chapter?)"


# -------------------------------------------------------------------------- languages
def test_message_catalogue_is_complete_in_both_languages():
    import re

    assert set(messages.EN) == set(messages.ZH)
    for key, text in messages.EN.items():
        fields = set(re.findall(r"\{(\w+)", text))
        assert fields == set(re.findall(r"\{(\w+)", messages.ZH[key])), key
        assert "变压器" not in messages.ZH[key]


@pytest.mark.parametrize(
    "environ,lang",
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
        ({"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),
        ({"LC_MESSAGES": "zh_CN", "LANG": "C"}, "zh"),
        ({}, "en"),
    ],
)
def test_language_comes_from_the_locale(environ, lang):
    assert messages.detect_lang(environ) == lang


def test_lang_reaches_the_test_processes(monkeypatch):
    messages.set_lang("zh")
    try:
        env = grader._child_env({})
        assert env[messages.LANG_VARIABLE] == "zh"
    finally:
        messages.set_lang(None)


# --------------------------------------------------------------------------- Jupyter
def test_grading_from_a_notebook_cell(book):
    """``%run -m attnkit.grade 01`` and the magic ``%grade 01`` in a kernel started in the
    exercises folder: the learner's file is found and the report prints in the cell."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%run -m attnkit.grade 01 --skip-notebook --lang en"),
        nbformat.v4.new_code_cell("%load_ext attnkit.grading\n%grade 01 --skip-notebook --lang zh"),
    ]
    client = NotebookClient(
        nb,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(book / "exercises")}},
    )
    client.execute()
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    learner = book / "exercises" / "01_mini.py"
    assert f"Grading chapter 01: {learner}" in texts[0], texts[0]
    assert "Score: 100%" in texts[0] and "SystemExit" not in texts[0]
    assert f"正在评分第 01 章：{learner}" in texts[1] and "得分：100%" in texts[1], texts[1]


def test_explanations_of_memory_and_lowercase_names(tmp_path, monkeypatch):
    from attnkit.grading import explain

    torch_message = (
        "RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate"
    )
    assert explain.explain_memory(torch_message, RuntimeError()) is None  # no limit set
    monkeypatch.setenv(explain.MEMORY_VARIABLE, "4")
    assert "more than 4 GB" in explain.explain_memory(torch_message, RuntimeError())
    assert "more than 4 GB" in explain.explain_memory("MemoryError", MemoryError())
    assert explain.explain_memory("AssertionError: wrong", AssertionError()) is None
    learner = tmp_path / "01_x.py"
    learner.write_text("import math\nscale = 2\nfor i in range(3):\n    pass\nLIMIT = 1\n")
    assert "line 2" in explain.explain_name_error("scale", learner)
    assert "line 3" in explain.explain_name_error("i", learner)
    assert explain.explain_name_error("LIMIT", learner) is None  # loaded: not the cause
    assert explain.explain_name_error("math", learner) is None
