#!/usr/bin/env bash
# Set up .venv, then run the main job (scripts/repro.sh): `dvc repro` rebuilds the paper's tables on the embedded
# sample profile (prepare -> masks -> train -> predict -> evaluate -> report) and the result is saved as the DVC
# experiment `baseline`. Arguments go to `dvc repro`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"  # the stages run `python`, the one of .venv
exec bash scripts/repro.sh "$@"
