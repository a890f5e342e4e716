"""Stage predict: inpaint one eval mask set with one run's model or a classical baseline,
``stages/predict.py RUN|BASELINE MASK_SET``."""

import sys

from lama.pipeline.layout import mask_set_dir, model_source, predictions_dir
from lama.pipeline.stage import run_stage
from lama.predict import ModelOptions, PredictOptions, predict_folder


def main(params) -> int:
    run, mask_set = sys.argv[1:3]
    options = PredictOptions(model=ModelOptions(path=model_source(run, params.eval.baselines)),
                             indir=str(mask_set_dir("test", mask_set)),
                             outdir=str(predictions_dir(run, mask_set)),
                             device=params.eval.device, precision=params.eval.precision)
    summary = predict_folder(options)
    print(summary)
    return 1 if summary.failures else 0


run_stage("predict", main)
