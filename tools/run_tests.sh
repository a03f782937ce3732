#!/usr/bin/env bash
# Run every check: set up the environment if needed, then lint, notebook-pair sync,
# exercises up to date with the solutions, and one pytest run holding the attnkit tests,
# the exercise graders (every solution passes, every untouched exercise fails) and nbval
# over the chapter notebooks, and the built book (_build/html, from tools/build_book.sh)
# checked link by link and page by page in headless Chromium (installed here if missing).
# Extra arguments go to pytest, e.g. -k causal or -x.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

echo "==> ruff"
ruff check .
ruff format --check attnkit tests tools book/_ext
echo "==> notebook pairs in sync, outputs stripped"
python tools/nbsync.py --check
echo "==> exercises generated from solutions"
python tools/make_exercises.py --check
echo "==> a browser for the tests of the built book"
bash tools/install_browser.sh
echo "==> bubblewrap for the sandbox of the grader's instructor mode"
bash tools/install_sandbox.sh
echo "==> pytest (attnkit, graders, notebooks, the built book in a browser)"
# -n: one pytest worker per core; --dist loadfile keeps each file (and so each notebook's
# cells, which share one kernel) on one worker.
python -m pytest -p no:cacheprovider tests notebooks --nbval-lax --nbval-cell-timeout=600 \
    -n "${ATTNKIT_TEST_WORKERS:-auto}" --dist loadfile --durations=10 "$@"
