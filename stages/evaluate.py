"""Stage evaluate: score one run's (or classical baseline's) predictions on one mask set,
``stages/evaluate.py RUN|BASELINE MASK_SET``.

Besides the evaluation JSON and TSV it writes DVC's metrics (the totals) and plots (the area bins), and adds the
totals to a run's MLflow training run as ``eval.<mask set>.<metric>`` (a baseline has no training run)."""

import json
import os
import sys

from lama.eval.evaluator import EvaluateOptions, evaluate_predictions
from lama.pipeline.layout import (
    EVAL_METRICS,
    mask_set_dir,
    model_dir,
    model_source,
    predictions_dir,
    result_file,
)
from lama.pipeline.stage import run_stage, write_json
from lama.tracking import log_final_scores


def main(params) -> None:
    run, mask_set = sys.argv[1:3]
    out = result_file(run, mask_set)
    options = EvaluateOptions(
        datadir=str(mask_set_dir("test", mask_set)), predictdir=str(predictions_dir(run, mask_set)), out=str(out),
        model_dir=model_source(run, params.eval.baselines), overrides=[f"model.name={run}"],
        device=params.eval.device, weights=params.eval.weights, fid_method=params.eval.fid_method,
        batch_size=params.eval.batch_size, num_workers=params.eval.num_workers)
    print(evaluate_predictions(options))
    evaluation = json.loads(out.read_text())
    totals = {key: value for key, value in evaluation["metrics"].items() if isinstance(value, int | float)}
    write_json(EVAL_METRICS / run / f"{mask_set}.json", totals)
    write_json(EVAL_METRICS / run / f"{mask_set}.bins.json", [
        {"bin": name, **{key: value["mean"] if isinstance(value, dict) else value for key, value in scores.items()}}
        for name, scores in evaluation["bins"].items() if name != "total"])
    if params.tracking.enabled and run not in params.eval.baselines:
        experiment = os.environ.get("DVC_EXP_NAME")
        tags = {f"eval.{mask_set}.dvc_exp_name": experiment} if experiment else {}
        log_final_scores(model_dir(run), {f"eval.{mask_set}.{key}": value for key, value in totals.items()}, tags)


run_stage("evaluate", main)
