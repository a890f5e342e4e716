"""Stage sweep (sweep/dvc.yaml): the loss-weight search of params.yaml's ``sweep`` section, resumed from its Optuna
storage when it was interrupted; writes reports/sweep/ and the best weights as configs/loss/swept.yaml."""

import logging

import optuna

from lama.pipeline.stage import run_stage
from lama.pipeline.sweep import open_from_params
from lama.sweep.session import run_search


def main(params) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("lama.sweep").setLevel(logging.INFO)
    summary = run_search(open_from_params(params))
    print(f"sweep: {summary['reason']}; best {summary['best']}")
    return 0


run_stage("sweep", main)
