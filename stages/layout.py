"""What the stage scripts share: where each stage reads and writes (dvc.yaml declares the same paths), the params
they load, and how a stage ends on bad input (one line, exit 2)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from lama.baselines import classical_model
from lama.config import PREPARED_DIR as PREPARED
from lama.config import ConfigError, PipelineParams, load_params, mask_set_dir
from lama.files import atomic_write

__all__ = ["PREPARED", "mask_set_dir"]
TRAIN_METRICS = Path("metrics/train")
EVAL_METRICS = Path("metrics/eval")
REPORTS = Path("reports")
RESULTS = Path("results")


def model_dir(run: str) -> Path:
    return Path("models") / run


def model_source(name: str, params: PipelineParams) -> str:
    """What predict and evaluate read for ``name``: a run's model dir, or ``classical:NAME`` for a baseline."""
    return classical_model(name) if name in params.eval.baselines else str(model_dir(name))


def predictions_dir(run: str, mask_set: str) -> Path:
    return Path("predictions") / run / mask_set


def result_file(run: str, mask_set: str) -> Path:
    return RESULTS / run / f"{mask_set}.json"


def write_json(path: Path, value: object) -> None:
    atomic_write(path, lambda handle: handle.write((json.dumps(value, indent=2) + "\n").encode()))


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
