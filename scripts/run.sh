#!/usr/bin/env bash
# Set up .venv, then run the main job: inpaint the shipped example with `lama predict`.
# The example model is an untrained Big-LaMa-shaped network (random weights, seed 0) until the training
# pipeline produces real ones; the command path is the one used with official checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
model=outputs/example-model
if [ ! -f "$model/models/best.ckpt" ]; then
    .venv/bin/lama init-model big-lama "$model" --ngf 16 --seed 0
fi
.venv/bin/lama predict "$model" examples/input outputs/example-predictions
echo "run: inpainted images are in outputs/example-predictions/" >&2
