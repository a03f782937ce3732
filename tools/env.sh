# Sourced by tools/build_book.sh and tools/run_tests.sh: make sure the project's virtual
# environment exists and holds attnkit with every extra, with the pinned versions of
# constraints.txt (torch 2.13.0, CPU). Re-installs only when pyproject.toml or
# constraints.txt changed. Set ATTNKIT_VENV to use another location.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ATTNKIT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        echo "error: attnkit needs Python >= 3.10; '$PYTHON' is $("$PYTHON" -V 2>&1 || echo missing)." >&2
        echo "       Set PYTHON=/path/to/python3.x and run again." >&2
        exit 2
    fi
    echo "==> creating the virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi

STAMP="$VENV/.attnkit-install-stamp"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "==> installing attnkit and its book/test tools (pinned by constraints.txt)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
    echo "$WANT" > "$STAMP"
fi

export PATH="$VENV/bin:$PATH"
export PYTHONHASHSEED=0
cd "$ROOT"
