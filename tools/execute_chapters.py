"""Execute the book's chapters in parallel, one thread each, into the book's cache.

``tools/build_book.sh`` runs this before ``jupyter-book build``. Every chapter runs in
its own kernel with **one** thread (``OMP_NUM_THREADS=1`` and the chapter's own
``torch.set_num_threads(1)``), so its numbers do not depend on how many cores the
machine has or how busy it is, and ``--jobs`` chapters run side by side (by default one
per core: on two cores, two chapters at a time). A successful execution is stored in the
jupyter-cache that the book build reads (``_build/.jupyter_cache``, keyed by the
notebook's code), exactly as Jupyter Book's own ``execute_notebooks: cache`` stores it,
so the build then only renders. A chapter whose code has not changed is not run again.

A chapter that fails (an exception, or a claim of its text that an ``assert`` finds
false) fails the whole command: the message names the chapter and prints the error, and
nothing of that chapter is cached. There is no time limit that shortens anything: the
cell timeout of ``_config.yml`` only turns a hang into a loud failure.

    python tools/execute_chapters.py                  # every chapter not yet cached
    python tools/execute_chapters.py 03 04            # chapters 3 and 4 (if not cached)
    python tools/execute_chapters.py 03 --force --out /tmp/run1   # run again, keep a copy
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from nbcommon import cores

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
# One thread per chapter for every library that could start more (torch also gets
# torch.set_num_threads(1) in each chapter's first cell): reproducible numbers, and no
# threads spinning against each other when chapters or other programs share the cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
ONE_THREAD = dict.fromkeys(THREAD_VARIABLES, "1")


def chapter_paths(selected: list[str]) -> list[Path]:
    """The chapter notebooks ``notebooks/NN_*.ipynb``, all or those named (``03``, a path)."""
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not selected:
        return chapters
    out = []
    for name in selected:
        path = Path(name)
        if path.suffix in (".ipynb", ".py") and path.exists():
            out.append(path.resolve().with_suffix(".ipynb"))
            continue
        matches = []
        if name.isdigit():
            matches = [p for p in chapters if p.name.startswith(f"{int(name):02d}_")]
        if not matches:
            known = ", ".join(p.name[:2] for p in chapters)
            raise SystemExit(f"error: no chapter {name!r}; expected a number ({known}) or a path.")
        out.extend(matches)
    return out


def config_timeout() -> int:
    """The per-cell timeout of ``_config.yml`` (``execute.timeout``)."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return int(config["execute"]["timeout"])


def _execute(path: str, timeout: int) -> tuple[str, float, str | None]:
    """Run one chapter in a temporary folder (worker process). Returns the executed
    notebook as JSON, the seconds taken and the error text (None on success)."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="attnkit-chapter-") as cwd:
        result = single_nb_execution(nb, cwd=cwd, timeout=timeout, allow_errors=False)
    error = None if result.err is None else (result.exc_string or repr(result.err))
    return nbformat.writes(nb), result.time, error


def _previous_seconds(cache) -> dict[str, float]:
    """Execution time of each chapter's last cached run (to start the longest first)."""
    seconds: dict[str, float] = {}
    for record in cache.list_cache_records():
        value = (record.data or {}).get("execution_seconds")
        if value is not None:
            seconds[Path(record.uri).name] = float(value)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter numbers or paths (default: all)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("ATTNKIT_JOBS", "0")) or cores(),
        help="chapters run at once, one thread each (default: $ATTNKIT_JOBS or the cores)",
    )
    parser.add_argument("--force", action="store_true", help="run even if cached")
    parser.add_argument("--out", type=Path, help="also write the executed notebooks here")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be a whole number >= 1, got {args.jobs}.")

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    paths = chapter_paths(args.chapters)
    CACHE.parent.mkdir(exist_ok=True)
    cache = get_cache(str(CACHE))
    todo, sources = [], {}  # sources: each chapter's notebook as read, the cache's key
    for path in paths:
        nb = sources[path] = nbformat.read(path, as_version=4)
        try:
            cache.match_cache_notebook(nb)
            cached = True
        except KeyError:
            cached = False
        if cached and not args.force:
            print(f"  {path.name}: cached (code unchanged), not run again")
        else:
            todo.append(path)
    if not todo:
        return 0
    previous = _previous_seconds(cache)
    todo.sort(key=lambda p: -previous.get(p.name, float("inf")))  # longest (or new) first
    timeout = config_timeout()
    os.environ.update(ONE_THREAD)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    jobs = min(args.jobs, len(todo))
    print(f"==> executing {len(todo)} chapter(s), {jobs} at a time, one thread each")
    start = time.perf_counter()
    failed, times = [], {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending = {}
        queue = list(todo)

        def submit() -> None:
            path = queue.pop(0)
            print(f"  start {path.name}", flush=True)
            pending[pool.submit(_execute, str(path), timeout)] = path

        for _ in range(jobs):
            submit()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                path = pending.pop(future)
                text, seconds, error = future.result()
                times[path.name] = seconds
                if args.out:
                    (args.out / path.name).write_text(text, encoding="utf-8")
                if error is None:
                    executed = nbformat.reads(text, as_version=4)
                    cache.cache_notebook_bundle(
                        CacheBundleIn(executed, str(path), data={"execution_seconds": seconds}),
                        check_validity=False,
                        overwrite=True,
                    )
                    cache.match_cache_notebook(sources[path])  # the book build will find it
                    print(f"  done  {path.name} in {seconds:.0f} s", flush=True)
                else:
                    failed.append(path.name)
                    print(f"\nFAILED {path.name} after {seconds:.0f} s:\n{error}\n", flush=True)
                if queue:
                    submit()
    wall = time.perf_counter() - start
    total = sum(times.values())
    print(f"==> {len(todo)} chapter(s) in {wall:.0f} s (sum of the chapters' times {total:.0f} s)")
    for name, seconds in sorted(times.items()):
        print(f"  {name:<40} {seconds:6.0f} s")
    if failed:
        print(f"error: {len(failed)} chapter(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
