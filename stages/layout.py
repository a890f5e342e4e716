"""What the stage scripts share: where each stage reads and writes (dvc.yaml declares the same paths), the params
they load, and how a stage ends on bad input (one line, exit 2)."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from lama.config import ConfigError, PipelineParams, load_params
from lama.files import atomic_write
from lama.tracking import resolve_tracking_uri

PREPARED = Path("data/prepared")
TRAIN_METRICS = Path("metrics/train")
EVAL_METRICS = Path("metrics/eval")
REPORTS = Path("reports")
RESULTS = Path("results")


def mask_set_dir(split: str, name: str) -> Path:
    return Path("data/eval") / split / name


def model_dir(run: str) -> Path:
    return Path("models") / run


def predictions_dir(run: str, mask_set: str) -> Path:
    return Path("predictions") / run / mask_set


def result_file(run: str, mask_set: str) -> Path:
    return RESULTS / run / f"{mask_set}.json"


def write_json(path: Path, value: object) -> None:
    atomic_write(path, lambda handle: handle.write((json.dumps(value, indent=2) + "\n").encode()))


def tracking_uri(params: PipelineParams) -> str:
    """params, then $MLFLOW_TRACKING_URI, then the repository's mlflow.db. DVC runs queued experiments in copies
    of the repository; DVC_ROOT names the original, so every run lands in one store."""
    root = Path(os.environ.get("DVC_ROOT") or Path.cwd()).absolute()
    return resolve_tracking_uri(params.tracking.uri, default=f"sqlite:///{root / 'mlflow.db'}")


def run_stage(name: str, body: Callable[[PipelineParams, DictConfig], int | None]) -> None:
    """Load and check the whole params.yaml, then run ``body``; a bad key, value or input ends with one line."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lama").setLevel(logging.INFO)
    try:
        params, raw = load_params()
        status = body(params, raw)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"stage {name}: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)
