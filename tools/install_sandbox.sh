#!/usr/bin/env bash
# Make sure bubblewrap (Debian's `bubblewrap` package, the `bwrap` command) is installed:
# instructor mode of the grader (`python -m attnkit.grade 01 --class DIR`) runs each
# learner's code inside it (no network, read-only repository, a private /tmp). Installs
# with apt-get as root (or with sudo when it needs no password); otherwise prints what to
# do, and instructor mode falls back to resource limits alone, with a warning (the tests
# of that mode then check the fallback). Set ATTNKIT_BWRAP=/path/to/bwrap to use another.
set -euo pipefail

bwrap="${ATTNKIT_BWRAP:-$(command -v bwrap || echo /usr/bin/bwrap)}"
if [ -x "$bwrap" ]; then
    exit 0
fi
if ! command -v apt-get > /dev/null; then
    echo "note: no bwrap and no apt-get: instructor-mode grading will use rlimits alone." >&2
    echo "      Install bubblewrap and set ATTNKIT_BWRAP=/path/to/bwrap if it is not on PATH." >&2
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    sudo=()
elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
    sudo=(sudo -n)
else
    echo "note: no bwrap; install it with" >&2
    echo "      sudo apt-get install --no-install-recommends bubblewrap" >&2
    echo "      (instructor-mode grading uses rlimits alone until then)." >&2
    exit 0
fi
echo "==> installing Debian's bubblewrap for sandboxed grading (apt-get)"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get install -y -qq --no-install-recommends bubblewrap > /dev/null 2>&1 || {
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends bubblewrap > /dev/null
}
echo "==> $(bwrap --version 2>/dev/null || echo 'bwrap: not found after install')"
