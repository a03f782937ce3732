"""Every sentence the grader itself prints, in English and Chinese: one dict per language.

``t("key", **values)`` formats the sentence in the current language: the one set by
:func:`set_lang` (``python -m attnkit.grade --lang zh``), else ``$ATTNKIT_GRADE_LANG`` (the
grader sets it for its test processes), else English. :func:`detect_lang` picks the
default of the command line from the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``).
A key missing in Chinese falls back to English (a test checks that none is missing).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

LANGS = ("en", "zh")
LANG_VARIABLE = "ATTNKIT_GRADE_LANG"

EN: dict[str, str] = {
    # how a process ended (attnkit.grading.runner)
    "run.exited": "the process exited with status {code}",
    "run.timeout": "the process was stopped after {seconds:.0f} s (time limit)",
    "run.stopped": "the process was stopped: {reason}",
    "run.oom": "the process was killed by the system's out-of-memory killer "
    "(it used more memory than the machine could give)",
    "run.cpu": "the process used more than {seconds} s of CPU time (the grader's limit)",
    "run.fsize": "the process tried to write a file larger than {mb:.0f} MB (the grader's limit)",
    "run.sigkill": "the process was killed (SIGKILL) from outside the grader; "
    "on Linux this is usually the out-of-memory killer",
    "run.signal_memory": "the process died with {name}, probably after reaching "
    "the memory limit of {gb:g} GB",
    "run.signal": "the process died with {name}",
    # usage errors (exit status 2)
    "usage.chapter": "the chapter must be a number such as 01, got {got!r}.",
    "usage.positive": "{option} must be a finite number > 0, got {got}.",
    "usage.no_chapter": "no graded exercises for chapter {chapter}; chapters: {have}.",
    "usage.no_chapter_given": "give a chapter, e.g. `python -m attnkit.grade 01` "
    "(or --progress to see your progress).",
    "usage.file_is_folder": "--file {path} is a folder; give the .py or .ipynb file to grade "
    "(this chapter's files there: {found}).",
    "usage.file_missing": "file not found: {path}",
    "usage.file_suffix": "{path} is neither a .py nor an .ipynb file.",
    "usage.other_chapter": "{path} looks like chapter {other}'s file, not chapter {chapter}'s: "
    "grade it with `python -m attnkit.grade {other} --file ...`.",
    "usage.defines_other": "{path} defines none of chapter {chapter}'s exercises but some of "
    "chapter {other}'s: grade it with `python -m attnkit.grade {other} --file ...`.",
    "usage.bad_notebook": "{path} is not a valid Jupyter notebook ({error}). Open it in Jupyter "
    "and save it again, or grade its .py twin with --file.",
    "usage.json_learner": "--json {path} would overwrite a notebook or Python file "
    "(perhaps your own work); give a .json path such as /tmp/report.json.",
    "usage.json_source": "--json {path} is inside the book's sources (or tracked by git) and "
    "would overwrite them; write the report elsewhere, e.g. _build/report.json.",
    "usage.json_folder": "--json {path} is a folder; give a file name, e.g. {path}/report.json.",
    "usage.json_no_folder": "--json {path}: the folder {folder} does not exist; create it "
    "first or choose another path.",
    "load.no_repo": "Could not find the book's repository (a folder with _toc.yml and "
    "tests/grading). Run the grader from inside your clone of the repository.",
    "load.no_file": "No file for chapter {chapter} in {folder} (expected {chapter}_*.py or .ipynb).",
    "load.bad_notebook": "{path} is not a readable notebook: {error}",
    "load.where": "line {line}, column {column}",
    "load.cells_only": " (line numbers count the code cells only)",
    "load.syntax": "Syntax error in {name} at {where}{hint}: {msg}{text}",
    "load.failed": "Loading the definitions of {name} failed: {error}",
    "load.undefined": "Your file does not define `{name}`. Keep the name the exercise gives "
    "(and make sure the cell defining it is a code cell).",
    "nb.top": "top of the notebook",
    "load.not_utf8": "{path} is not UTF-8 text (the byte at position {position} is not "
    "valid UTF-8); save it as UTF-8 in your editor and grade again.",
    # warnings
    "warn.pair_differs": "{graded} and {other} hold different code; grading {graded} "
    "({newer} was saved last). If you worked in {other}, save it again or use --file.",
    # how a run was stopped, crashed or cut short
    "stop.collection": "no test started within {seconds:.0f} s",
    "stop.hung": "{item} ran longer than {seconds:.0f} s",
    "stop.idle": "nothing happened for {seconds:.0f} s between two tests",
    "crash.hung": "`{exercise}` did not return within {seconds:.0f} s and was stopped (stuck in a "
    "loop, possibly inside one long call that Python cannot interrupt, such as "
    "sum(range(10**15)))",
    "crash.died": "While `{exercise}` was being tested, {how}.",
    "crash.exit_hint": "Does your code call os._exit() or exit()? A graded function must "
    "return its result.",
    "crash.internal": "pytest itself failed: {line}",
    "crash.same_exercise": "not run: {test} of the same exercise hung or crashed",
    "crash.not_reached": "not run: {how} before this test",
    "crash.loading": "not run: loading your file hangs or crashes ({how}); look at its "
    "imports, class bodies and default arguments",
    "grading.tests_did_not_run": "The grading tests could not start. pytest said:\n{log}",
    "grading.nb_did_not_run": "Your notebook could not be run. pytest said:\n{log}",
    "nb.empty": "your notebook has no code cells: there is nothing to run",
    "nb.check_changed": "this check cell was changed; restore the text the exercise gave",
    "nb.not_run": "not run: the notebook stopped at {cell}",
    # the grader's explanations of a failure
    "explain.lowercase": "Why: `{name}` is set at line {line} of your file, but the grader "
    "loads only imports, functions, classes and UPPER_CASE constants (other top-level code "
    "is demo code and does not run). Rename it {upper} or define it inside the function.",
    "explain.timeout": "The test took longer than {seconds:g} s: an endless loop, or a very "
    "slow implementation (a Python loop over every element instead of tensor operations?).",
    "explain.memory": "Your code used more than {gb:g} GB of memory (the grader's limit; "
    "--memory changes it).",
    # statuses
    "status.passed": "passed",
    "status.failed": "failed",
    "status.error": "error",
    "status.timed out": "timed out",
    "status.not attempted": "not attempted",
    "status.skipped": "skipped",
    # the report
    "report.grading": "Grading chapter {chapter}: {path}",
    "report.test_file": "Tests: {path} (commit {commit}){state}",
    "report.modified": ", modified since",
    "report.warning": "warning: {text}",
    "report.syntax_error": "Your file has a syntax error at line {line}: {msg}\n    {text}\n"
    "Fix it and grade again. Score: 0%",
    "report.exercise": "exercise",
    "report.tests": "tests",
    "report.status": "status",
    "report.misconception": "likely misconception: {message}",
    "report.diagnosis": "what differs: {text}",
    "report.tests_line": "Tests: {passed}/{total} passed; exercises complete: {done}/{n}",
    "report.notebook_line": "Notebook ({name} under nbval): {ok}/{n} cells ran; "
    "{checks}/{expected} check cells print what the solution prints",
    "report.checks_changed": "({n} check cell(s) were changed or removed; restore them to pass)",
    "report.check_cell": "check {cell} ({section}): {status}: {message}",
    "report.cell": "{cell} ({section}; `{line}`) does not run: {status}: {message}",
    "report.score": "Score: {percent}% ({passed}/{total} items: tests, check cells, "
    "and the notebook running to its end)",
    "report.score_complete": "Score: 100% ({passed}/{total} items). Well done!",
    # progress printed while grading runs
    "progress.tests": "[tests] {exercise} ...",
    "progress.cells": "[notebook] {n} cells run",
    # hints
    "hint.unknown": "chapter {chapter} has no exercise {exercise!r}; its exercises: {names}.",
    "hint.none": "No hints have been written for {exercise} yet.",
    "hint.header": "Hint {number} of {n} for {exercise}:",
    "hint.more": "Run `python -m attnkit.grade {chapter} --hint {exercise}` again for the next.",
    "hint.all_seen": "You have seen all {n} hints for {exercise}; here they are again:",
    # progress
    "progress.corrupt": "the progress file {path} cannot be read ({error}); move it away or "
    "run `python -m attnkit.grade --reset` to start again",
    "progress.warning": "warning: {error}. Your progress is not recorded this time.",
    "progress.not_saved": "warning: could not save your progress to {path}: {error}",
    "progress.header": "Your progress ({path}):",
    "progress.col_chapter": "chapter",
    "progress.col_done": "passed",
    "progress.col_attempts": "gradings",
    "progress.col_hints": "hints",
    "progress.col_last": "last graded",
    "progress.total": "In all: {passed}/{n} exercises passed.",
    "progress.reset_all": "Progress forgotten ({path} removed).",
    "progress.reset_chapter": "Progress of chapter {chapter} forgotten.",
}

ZH: dict[str, str] = {
    "run.exited": "进程以状态码 {code} 退出",
    "run.timeout": "进程运行 {seconds:.0f} 秒后被停止（超过时间限制）",
    "run.stopped": "进程被停止：{reason}",
    "run.oom": "进程被系统的内存不足（OOM）机制杀死（用掉的内存超过了机器能给的）",
    "run.cpu": "进程用掉的 CPU 时间超过了 {seconds} 秒（评分器的限制）",
    "run.fsize": "进程试图写入大于 {mb:.0f} MB 的文件（评分器的限制）",
    "run.sigkill": "进程被评分器之外的程序杀死（SIGKILL）；在 Linux 上通常是内存不足（OOM）机制",
    "run.signal_memory": "进程因 {name} 终止，很可能是达到了 {gb:g} GB 的内存限制",
    "run.signal": "进程因 {name} 终止",
    "usage.chapter": "章节必须是数字，例如 01，收到的是 {got!r}。",
    "usage.positive": "{option} 必须是大于 0 的有限数，收到的是 {got}。",
    "usage.no_chapter": "第 {chapter} 章没有可评分的练习；现有章节：{have}。",
    "usage.no_chapter_given": "请给出章节，例如 `python -m attnkit.grade 01`（或用 --progress 查看进度）。",
    "usage.file_is_folder": "--file {path} 是一个文件夹；请给出要评分的 .py 或 .ipynb 文件"
    "（该文件夹中本章的文件：{found}）。",
    "usage.file_missing": "找不到文件：{path}",
    "usage.file_suffix": "{path} 既不是 .py 也不是 .ipynb 文件。",
    "usage.other_chapter": "{path} 看起来是第 {other} 章的文件，而不是第 {chapter} 章的："
    "请用 `python -m attnkit.grade {other} --file ...` 评分。",
    "usage.defines_other": "{path} 没有定义第 {chapter} 章的任何练习，却定义了第 {other} 章的："
    "请用 `python -m attnkit.grade {other} --file ...` 评分。",
    "usage.bad_notebook": "{path} 不是有效的 Jupyter 笔记本（{error}）。请在 Jupyter 中打开并重新保存，"
    "或用 --file 评分对应的 .py 文件。",
    "usage.json_learner": "--json {path} 会覆盖一个笔记本或 Python 文件（可能是你自己的作业）；"
    "请给出 .json 路径，例如 /tmp/report.json。",
    "usage.json_source": "--json {path} 位于本书的源文件中（或被 git 跟踪），会覆盖它们；"
    "请把报告写到别处，例如 _build/report.json。",
    "usage.json_folder": "--json {path} 是一个文件夹；请给出文件名，例如 {path}/report.json。",
    "usage.json_no_folder": "--json {path}：文件夹 {folder} 不存在；请先创建它或换一个路径。",
    "load.no_repo": "找不到本书的仓库（含有 _toc.yml 和 tests/grading 的文件夹）。请在你克隆的仓库里运行评分器。",
    "load.no_file": "{folder} 中没有第 {chapter} 章的文件（应为 {chapter}_*.py 或 .ipynb）。",
    "load.bad_notebook": "{path} 不是可读取的笔记本：{error}",
    "load.where": "第 {line} 行第 {column} 列",
    "load.cells_only": "（行号只计算代码单元格）",
    "load.syntax": "{name} 的{where}{hint}有语法错误：{msg}{text}",
    "load.failed": "加载 {name} 的定义失败：{error}",
    "load.undefined": "你的文件没有定义 `{name}`。请保留练习给出的名字（并确认定义它的单元格是代码单元格）。",
    "nb.top": "笔记本开头",
    "load.not_utf8": "{path} 不是 UTF-8 文本（位置 {position} 的字节不是有效的 UTF-8）；"
    "请在编辑器中另存为 UTF-8 后再评分。",
    "warn.pair_differs": "{graded} 和 {other} 的代码不同；现在评分的是 {graded}"
    "（最后保存的是 {newer}）。如果你是在 {other} 中写的，请重新保存它或使用 --file。",
    "stop.collection": "{seconds:.0f} 秒内没有开始任何测试",
    "stop.hung": "{item} 运行超过了 {seconds:.0f} 秒",
    "stop.idle": "两个测试之间 {seconds:.0f} 秒没有任何进展",
    "crash.hung": "`{exercise}` 在 {seconds:.0f} 秒内没有返回，已被停止（陷入了循环，可能是 Python "
    "无法中断的一次长时间调用，例如 sum(range(10**15))）",
    "crash.died": "测试 `{exercise}` 时{how}",
    "crash.exit_hint": "你的代码是否调用了 os._exit() 或 exit()？被评分的函数必须返回结果。",
    "crash.internal": "pytest 本身出错：{line}",
    "crash.same_exercise": "未运行：同一练习的 {test} 卡住或崩溃了",
    "crash.not_reached": "未运行：在此测试之前{how}",
    "crash.loading": "未运行：加载你的文件时卡住或崩溃（{how}）；请检查它的 import、类的定义体和默认参数",
    "grading.tests_did_not_run": "评分测试无法启动。pytest 的输出：\n{log}",
    "grading.nb_did_not_run": "无法运行你的笔记本。pytest 的输出：\n{log}",
    "nb.empty": "你的笔记本没有代码单元格：没有可运行的内容",
    "nb.check_changed": "这个检查单元格被改动了；请恢复练习给出的原文",
    "nb.not_run": "未运行：笔记本在 {cell} 处停止",
    "explain.lowercase": "原因：`{name}` 在你的文件第 {line} 行赋值，但评分器只加载 import、函数、类和"
    "全大写的常量（其他顶层代码是演示代码，不会运行）。请把它改名为 {upper}，或在函数内部定义。",
    "explain.timeout": "这个测试运行超过了 {seconds:g} 秒：死循环，或者实现太慢（是否用 Python 循环逐个元素计算，而不是张量运算？）。",
    "explain.memory": "你的代码使用了超过 {gb:g} GB 的内存（评分器的限制；可用 --memory 修改）。",
    "status.passed": "通过",
    "status.failed": "未通过",
    "status.error": "出错",
    "status.timed out": "超时",
    "status.not attempted": "未作答",
    "status.skipped": "跳过",
    "report.grading": "正在评分第 {chapter} 章：{path}",
    "report.test_file": "测试文件：{path}（提交 {commit}）{state}",
    "report.modified": "，之后有改动",
    "report.warning": "警告：{text}",
    "report.syntax_error": "你的文件第 {line} 行有语法错误：{msg}\n    {text}\n修正后再评分。得分：0%",
    "report.exercise": "练习",
    "report.tests": "测试",
    "report.status": "状态",
    "report.misconception": "可能的误解：{message}",
    "report.diagnosis": "差异：{text}",
    "report.tests_line": "测试：通过 {passed}/{total}；完成的练习：{done}/{n}",
    "report.notebook_line": "笔记本（{name}，用 nbval 运行）：{ok}/{n} 个单元格运行成功；"
    "{checks}/{expected} 个检查单元格的输出与答案一致",
    "report.checks_changed": "（有 {n} 个检查单元格被改动或删除；恢复后才能通过）",
    "report.check_cell": "检查 {cell}（{section}）：{status}：{message}",
    "report.cell": "{cell}（{section}；`{line}`）运行失败：{status}：{message}",
    "report.score": "得分：{percent}%（{passed}/{total} 项：测试、检查单元格、笔记本从头运行到尾）",
    "report.score_complete": "得分：100%（{passed}/{total} 项）。做得好！",
    "progress.tests": "[测试] {exercise} ...",
    "progress.cells": "[笔记本] 已运行 {n} 个单元格",
    "hint.unknown": "第 {chapter} 章没有练习 {exercise!r}；本章的练习：{names}。",
    "hint.none": "{exercise} 还没有提示。",
    "hint.header": "{exercise} 的提示 {number}/{n}：",
    "hint.more": "再运行一次 `python -m attnkit.grade {chapter} --hint {exercise}` 查看下一条。",
    "hint.all_seen": "{exercise} 的 {n} 条提示你都看过了；再列一遍：",
    "progress.corrupt": "无法读取进度文件 {path}（{error}）；请把它移走，或运行 "
    "`python -m attnkit.grade --reset` 重新开始",
    "progress.warning": "警告：{error}。这次不记录你的进度。",
    "progress.not_saved": "警告：无法把进度保存到 {path}：{error}",
    "progress.header": "你的进度（{path}）：",
    "progress.col_chapter": "章节",
    "progress.col_done": "已通过",
    "progress.col_attempts": "评分次数",
    "progress.col_hints": "提示",
    "progress.col_last": "上次评分",
    "progress.total": "总计：通过 {passed}/{n} 个练习。",
    "progress.reset_all": "进度已清除（已删除 {path}）。",
    "progress.reset_chapter": "第 {chapter} 章的进度已清除。",
}

CATALOGUE: dict[str, dict[str, str]] = {"en": EN, "zh": ZH}

_current: str | None = None


def detect_lang(environ: Mapping[str, str] | None = None) -> str:
    """``"zh"`` if the locale is Chinese (``LC_ALL``, then ``LC_MESSAGES``, then ``LANG``:
    the first one set decides, as in POSIX), else ``"en"``."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def set_lang(lang: str | None) -> None:
    """Use ``lang`` (``"en"`` or ``"zh"``) from now on in this process; ``None`` resets."""
    global _current
    if lang is not None and lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}.")
    _current = lang


def current_lang() -> str:
    """The language in use: :func:`set_lang`'s, else ``$ATTNKIT_GRADE_LANG``, else English."""
    if _current is not None:
        return _current
    value = os.environ.get(LANG_VARIABLE, "en")
    return value if value in LANGS else "en"


def t(key: str, lang: str | None = None, **values: object) -> str:
    """The sentence ``key`` in ``lang`` (default: :func:`current_lang`), formatted."""
    table = CATALOGUE[lang or current_lang()]
    return table.get(key, EN[key]).format(**values)
