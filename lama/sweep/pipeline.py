"""``lama sweep`` and the sweep stage: the search of ``params.yaml``'s ``sweep`` section over one of its runs."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig

from lama.config import PREPARED_DIR, PipelineParams, mask_set_dir, pipeline_tracking_uri, run_config
from lama.sweep.results import finish
from lama.sweep.search import Search, default_storage, join_search, start_search, work
from lama.sweep.storage import RECORD, open_storage, redact
from lama.train.config import ConfigError

log = logging.getLogger(__name__)


def open_from_params(params: PipelineParams, raw: DictConfig, storage: str | None = None,
                     name: str | None = None) -> Search:
    """Open (or resume) the search of ``params.sweep`` on the training of run ``sweep.run``."""
    config = replace(params.sweep, name=name or params.sweep.name, storage=storage or params.sweep.storage)
    run = config.run or params.run_names[0]
    if run not in params.runs:
        raise ConfigError(f"sweep.run={run!r}: expected one of {', '.join(params.runs)}")
    if config.objective == "training" and params.data.val_mask_set is None:
        raise ConfigError("sweep: the objective is a validation metric, but data.val_mask_set is null")
    val_dir = None if params.data.val_mask_set is None else mask_set_dir("val", params.data.val_mask_set)
    if val_dir is not None and config.objective == "training" and not val_dir.is_dir():
        raise FileNotFoundError(f"{val_dir}: the validation mask set is missing; run 'dvc repro val_masks' first")
    base = run_config(raw, run, PREPARED_DIR, val_dir, Path(config.trials_dir) / "base",
                      [f"tracking.uri={pipeline_tracking_uri(params)}"]).to_dict()
    return start_search(config, base, run, config.storage or default_storage())


def run_search(search: Search) -> dict[str, Any]:
    """Work on the search until it ends, then write its results (best weights, summary, plot, loss config). A
    search stopped before its end leaves its MLflow parent run KILLED (a stop signal) or FAILED."""
    try:
        plan = work(search)
    except BaseException as error:
        _end_parent(search, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    return finish(search, plan, search.config.out_dir, search.config.loss_config)


def _end_parent(search: Search, status: str) -> None:
    if search.tracking is None:
        return
    try:
        parent = search.storage.parent_run()
    except Exception as error:  # the error that stopped the search may be the storage's: that one is reported
        log.warning("the search's MLflow run was left open: its id could not be read (%s)", error)
        return
    if parent is not None:
        search.tracking.end_parent(parent, status)


def join(storage: str, name: str | None, wait: float, poll: float = 1.0) -> Search:
    """Join the search ``name`` in ``storage``, or the only search there when ``name`` is None; either may still be
    on its way (workers are often started before, or with, the ``lama sweep`` that opens it)."""
    if name is None:
        optuna_storage = open_storage(storage, 30, 120)
        deadline = time.monotonic() + wait
        while True:
            summaries = optuna.get_all_study_summaries(optuna_storage, include_best_trial=False)
            names = [summary.study_name for summary in summaries if RECORD in summary.user_attrs]
            if len(names) == 1:
                name = names[0]
                break
            if len(names) > 1 or time.monotonic() > deadline:
                found = ", ".join(names) or "none"
                raise ConfigError(f"{redact(storage)} holds {len(names)} searches ({found}); name one with --name")
            time.sleep(poll)
        wait = max(deadline - time.monotonic(), 1.0)
    return join_search(storage, name, wait)
