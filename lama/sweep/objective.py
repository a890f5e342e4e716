"""What a trial computes from its four weights: a short training's validation metric, or a closed form.

The objective reports intermediate values through :meth:`TrialContext.report`, which says whether the pruner
gives the trial up; a pruned trial raises ``optuna.TrialPruned``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from lama.signals import Interrupted
from lama.sweep.config import SweepConfig
from lama.sweep.interrupt import check, protected
from lama.sweep.plan import StageId, Weights
from lama.tracking import TRACKING_REFERENCE
from lama.train.config import load_config

log = logging.getLogger(__name__)


class TrialInterruptedError(Interrupted):
    """The trial's training took a stop signal, saved and returned; the worker stops too, the trial runs again
    when the search resumes (``exit_code`` is the training's, 128 + the signal's number)."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code - 128)


@dataclass
class TrialContext:
    """One claimed trial, as the objective sees it."""

    trial: optuna.trial.Trial
    weights: Weights
    key: str
    stage: StageId
    search: str
    tags: dict[str, str] = field(default_factory=dict)  # the child run's MLflow tags, parent included
    run_id: str | None = None  # the trial's MLflow run: the search's, or the one the objective made (training)

    def report(self, step: int, value: float) -> bool:
        """Record an intermediate value; True when the pruner gives this trial up. A stop signal waits until the
        storage has answered (see :mod:`lama.sweep.interrupt`)."""
        with protected():
            self.trial.report(value, step)
            prune = self.trial.should_prune()
        check()
        return prune


Objective = Callable[[TrialContext], float]


def checkpoints(steps: int, every: int) -> list[int]:
    """The steps at which a training validates: every ``every`` steps and the last one."""
    return sorted({*range(every, steps + 1, every), steps})


def closed_form(config: SweepConfig) -> Objective:
    """Σ (log10 w − log10 w*)² over the searched weights, to be minimised; its intermediate values approach it
    from above, the same amount for every trial at a step, so pruning ranks trials by their final value."""
    optimum = config.closed_form.optimum

    def objective(context: TrialContext) -> float:
        value = sum((math.log10(context.weights[name]) - math.log10(optimum[name])) ** 2
                    for name in config.coordinates)
        previous = 0
        for step in checkpoints(config.steps, config.val_every):
            time.sleep(config.closed_form.seconds_per_step * (step - previous))
            previous = step
            if context.report(step, value + (config.steps - step) / config.steps) and step < config.steps:
                raise optuna.TrialPruned(f"pruned at step {step}")
        return value

    return objective


def slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]", "_", key)


class TrainingObjective:
    """Train the base run with the trial's weights for ``sweep.steps`` and return ``sweep.metric`` on the val set.

    ``base`` is a run config mapping (``RunConfig.to_dict()``); each trial trains into its own folder under
    ``trials_dir`` and, unless ``keep_models``, keeps only its config, log and metrics there."""

    makes_own_run = True  # the training's MLflow run is the trial's: the search starts none

    def __init__(self, base: dict[str, Any], config: SweepConfig, trials_dir: str | Path) -> None:
        self.base, self.config, self.trials_dir = base, config, Path(trials_dir)

    def __call__(self, context: TrialContext) -> float:
        from lama.train import NonFiniteLossError, train

        config = self.config
        out_dir = self.trials_dir / context.search / context.stage.label / slug(context.key)
        overrides = [f"loss.{name}={value!r}" for name, value in context.weights.items()] + [
            f"train.out_dir={out_dir}", f"train.steps={config.steps}", f"train.val_every={config.val_every}",
            f"train.save_every={config.steps}", "train.resume=same-config", f"train.best_metric={config.metric}",
            "train.progress=false",
            f"tracking.run_name={context.search}/{context.stage.label}/{context.trial.number}",
            "tracking.stage=sweep"]
        run_config = load_config(base=self.base, overrides=overrides)
        last: dict[str, float] = {}

        def on_validation(step: int, scores: dict[str, float]) -> bool:
            last["value"] = scores[config.metric]
            return context.report(step, scores[config.metric])

        try:
            result = train(run_config, tags=context.tags, on_validation=on_validation)
        except NonFiniteLossError as error:
            raise optuna.TrialPruned(str(error)) from None
        finally:
            reference = out_dir / TRACKING_REFERENCE
            if reference.is_file():
                context.run_id = json.loads(reference.read_text()).get("run_id")
        if not config.keep_models:
            for folder in ("state", "models"):
                shutil.rmtree(out_dir / folder, ignore_errors=True)
        if result.status == "interrupted":
            raise TrialInterruptedError(result.exit_code)
        if result.status == "stopped":
            raise optuna.TrialPruned(f"pruned at step {result.step}")
        if not math.isfinite(last.get("value", math.nan)):
            raise optuna.TrialPruned(f"{config.metric} is not finite after {result.step} steps")
        return last["value"]
