"""Stage sweep (sweep/dvc.yaml): the loss-weight search of params.yaml's ``sweep`` section, resumed from its Optuna
storage when it was interrupted; writes reports/sweep/ and the best weights as configs/loss/swept.yaml. Its
progress goes to stderr, one line per trial (see lama.sweep.progress); a stop signal ends it with 128 + N."""

import sys

import optuna

from lama.pipeline.stage import run_stage
from lama.pipeline.sweep import open_from_params
from lama.sweep.interrupt import interruption, stop_on_signals
from lama.sweep.session import run_search


def main(params) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with stop_on_signals():
            summary = run_search(open_from_params(params))
    except KeyboardInterrupt as error:  # the running trial is recorded as interrupted, the MLflow runs end KILLED
        stopped = interruption(error)
        print(f"sweep: {stopped}; the stage resumes the search where it stopped", file=sys.stderr)
        return stopped.exit_code
    print(f"sweep: {summary['reason']}; best {summary['best']}")
    return 0


run_stage("sweep", main)
