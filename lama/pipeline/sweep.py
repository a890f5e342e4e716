"""The sweep's pipeline entry: the search of ``params.yaml``'s ``sweep`` section over one of its runs, stored
beside the repository's MLflow store unless ``sweep.storage`` names another."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lama.config import ConfigError
from lama.pipeline.layout import PREPARED_DIR, repository_root
from lama.pipeline.params import PipelineParams, pipeline_tracking_uri, run_config
from lama.sweep.search import Search, start_search


def default_storage() -> str:
    """SQLite beside the repository's mlflow.db (DVC's queued experiments included: see ``repository_root``)."""
    return f"sqlite:///{repository_root() / 'optuna.db'}"


def open_from_params(params: PipelineParams, storage: str | None = None, name: str | None = None) -> Search:
    """Open (or resume) the search of ``params.sweep`` on the training of run ``sweep.run``."""
    config = replace(params.sweep, name=name or params.sweep.name, storage=storage or params.sweep.storage)
    run = config.run or params.run_names[0]
    if run not in params.runs:
        raise ConfigError(f"sweep.run={run!r}: expected one of {', '.join(params.runs)}")
    if config.objective == "training" and params.data.val_mask_set is None:
        raise ConfigError("sweep: the objective is a validation metric, but data.val_mask_set is null")
    val_dir = params.data.val_dir
    if val_dir is not None and config.objective == "training" and not val_dir.is_dir():
        raise FileNotFoundError(f"{val_dir}: the validation mask set is missing; run 'dvc repro val_masks' first")
    base = run_config(params, run, PREPARED_DIR, val_dir, Path(config.trials_dir) / "base",
                      [f"tracking.uri={pipeline_tracking_uri(params)}"]).to_dict()
    return start_search(config, base, run, config.storage or default_storage())
