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
