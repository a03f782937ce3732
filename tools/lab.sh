#!/usr/bin/env bash
# Open the exercises in JupyterLab, in the project's virtual environment (created and
# installed on first use by env.sh, with JupyterLab pinned by constraints.txt).
# Extra arguments go to JupyterLab, e.g. `bash tools/lab.sh --no-browser --port 8890`.
# Grade from a notebook cell with `%load_ext attnkit.grading` then `%grade 01`.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ARGS=(--ServerApp.root_dir="$ROOT" --LabApp.default_url=/lab/tree/exercises)
# JupyterLab refuses to start as root (a container, say) unless told to.
if [ "$(id -u)" = 0 ]; then ARGS+=(--allow-root); fi
exec "$VENV/bin/jupyter" lab "${ARGS[@]}" "$@"
