"""Stage predict: inpaint one eval mask set with one run's model or a classical baseline,
``stages/predict.py RUN|BASELINE MASK_SET``."""

import sys
from dataclasses import fields

from lama.models.inference_options import InferenceOptions
from lama.pipeline.layout import mask_set_dir, model_source, predictions_dir
from lama.pipeline.stage import run_stage
from lama.predict import ModelOptions, PredictOptions, predict_folder


def main(params) -> int:
    run, mask_set = sys.argv[1:3]
    # A run's model inpaints as eval says (refinement, high-resolution strategy, batches); a baseline plainly.
    model_run = run not in params.eval.baselines
    keys = [field.name for field in fields(InferenceOptions)] if model_run else []
    inference = {key: getattr(params.eval, key) for key in keys}
    options = PredictOptions(model=ModelOptions(path=model_source(run, params.eval.baselines)),
                             indir=str(mask_set_dir("test", mask_set)),
                             outdir=str(predictions_dir(run, mask_set)),
                             device=params.eval.device, precision=params.eval.precision,
                             batch_size=params.eval.predict_batch_size if model_run else 1, **inference)
    summary = predict_folder(options)
    print(summary)
    return 1 if summary.failures else 0


run_stage("predict", main)
