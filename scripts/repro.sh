#!/usr/bin/env bash
# The main job on an installed LaMa Lab (`lama` and `dvc` on PATH; scripts/run.sh sets them up first): check
# params.yaml, `dvc repro` (arguments go to it), then save the result as the DVC experiment `baseline`, so that
# `dvc exp run -S ...` has something to be compared with (`dvc exp show`, `dvc plots diff baseline`, the report).
# After an experiment the workspace holds the experiment's params and outputs; this job first returns it to the
# baseline (`dvc exp apply baseline`), so it reruns nothing that was already done.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=baseline
# `dvc exp apply` records a git stash: on a machine with no git identity it gets a neutral one.
if ! git config user.email >/dev/null; then
    export GIT_AUTHOR_NAME="LaMa Lab" GIT_AUTHOR_EMAIL="lama-lab@localhost"
    export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
fi
if ! lama params --check >/dev/null 2>&1 && dvc exp list --name-only 2>/dev/null | grep -qx "$baseline"; then
    echo "repro: params.yaml holds an experiment's values; returning the workspace to '$baseline'" \
         "(the experiment stays in 'dvc exp show')" >&2
    dvc exp apply "$baseline" >/dev/null
fi
lama params --check  # params.yaml must be what configs/ compose to (`lama params` recomposes it)
start=$SECONDS
dvc repro "$@"
dvc exp save --quiet --force --name "$baseline" dvc.yaml  # the main pipeline's stages, not sweep/dvc.yaml's
echo "repro: done in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s; saved as the DVC experiment" \
     "'$baseline'. Tables: reports/tables.md; scores: 'dvc metrics show'; runs:" \
     "'.venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db'" >&2
