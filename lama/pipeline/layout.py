"""Where the pipeline's stages read and write; ``dvc.yaml`` declares the same paths."""

from __future__ import annotations

import os
from pathlib import Path

from lama.baselines import classical_model

PREPARED_DIR = Path("data/prepared")
TRAIN_METRICS = Path("metrics/train")
EVAL_METRICS = Path("metrics/eval")
REPORTS = Path("reports")
RESULTS = Path("results")
SUMMARY_METRICS = Path("metrics/summary.json")


def repository_root() -> Path:
    """The repository the pipeline runs in: DVC runs queued experiments in copies of it and names the original in
    DVC_ROOT, so that every run lands in one MLflow (and Optuna) store."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).absolute()


def mask_set_dir(split: str, name: str) -> Path:
    return Path("data/eval") / split / name


def model_dir(run: str) -> Path:
    return Path("models") / run


def model_source(name: str, baselines: list[str]) -> str:
    """What predict and evaluate read for ``name``: a run's model dir, or ``classical:NAME`` for one of the
    ``baselines``."""
    return classical_model(name) if name in baselines else str(model_dir(name))


def predictions_dir(run: str, mask_set: str) -> Path:
    return Path("predictions") / run / mask_set


def result_file(run: str, mask_set: str) -> Path:
    return RESULTS / run / f"{mask_set}.json"
