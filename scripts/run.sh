#!/usr/bin/env bash
# Set up .venv, then run the main job: `dvc repro` rebuilds the paper's tables on the embedded sample profile
# (prepare -> masks -> train -> predict -> evaluate -> report). Arguments go to `dvc repro`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"  # the stages run `python`, the one of .venv
lama params --check  # params.yaml must be what configs/ compose to (`lama params` recomposes it)
dvc repro "$@"
echo "run: tables in reports/tables.md, Fig. 6 in reports/fig6_resolution.png; 'dvc metrics show' for the scores," \
     "'.venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db' for every run" >&2
