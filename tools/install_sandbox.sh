#!/usr/bin/env bash
# Make sure bubblewrap (Debian's `bubblewrap` package, the `bwrap` command) is installed:
# instructor mode of the grader (`python -m attnkit.grade 01 --class DIR`) runs each
# learner's code inside it (no network, read-only repository, a private /tmp). Installs
# with apt-get as root (or with sudo when it needs no password); otherwise prints what to
# do, and instructor mode falls back to resource limits alone, with a warning (the tests
# of that mode then check the fallback). Set ATTNKIT_BWRAP=/path/to/bwrap to use another.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"

bwrap="${ATTNKIT_BWRAP:-$(command -v bwrap || echo /usr/bin/bwrap)}"
if [ -x "$bwrap" ]; then
    exit 0
fi
if apt_install bubblewrap "for sandboxed grading" "instructor-mode grading uses rlimits alone until then; or set ATTNKIT_BWRAP=/path/to/bwrap"; then
    echo "==> $(bwrap --version 2>/dev/null || echo 'bwrap: not found after install')"
fi
