"""Stage train: one run of params.yaml's ``runs``, ``[accelerate launch] stages/train.py RUN``.

The model dir is a persistent DVC output, so an interrupted training continues from its last state; a changed
config starts over (train.resume=same-config), DVC's cache keeping the earlier run's outputs."""

import json
import os
import sys

from lama.pipeline.layout import PREPARED_DIR, TRAIN_METRICS, model_dir
from lama.pipeline.params import pipeline_tracking_uri, run_config
from lama.pipeline.stage import run_stage, write_json
from lama.train import train


def main(params) -> int:
    run = sys.argv[1]
    experiment = os.environ.get("DVC_EXP_NAME")
    config = run_config(params, run, PREPARED_DIR, params.data.val_dir, model_dir(run), [
        "train.resume=same-config", f"tracking.uri={pipeline_tracking_uri(params)}",
        f"tracking.run_name={f'{experiment}/{run}' if experiment else run}"])
    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0 and result.exit_code == 0:  # DVC's metrics: the numbers only
        summary = json.loads((model_dir(run) / "metrics.json").read_text())
        write_json(TRAIN_METRICS / f"{run}.json", {key: summary[key] for key in ("step", "best_value", "best_step",
                                                                                 "val")})
    return result.exit_code


run_stage("train", main)
