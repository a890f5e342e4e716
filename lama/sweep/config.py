"""The ``sweep`` section: what the coordinate-wise search over the loss weights tunes, and how.

The keys that define the search (grid, beam, objective, base training) are hashed into its identity; the
operational keys (storage, heartbeat, where the results go) may change between a run and its resumption.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from lama.config import ConfigError, check_choices, check_positive
from lama.train.config import BEST_METRICS

# The paper's four loss weights (Sec. 3.3), by their names in ``loss``.
COORDINATES = ("kappa", "alpha", "beta", "gamma")
OBJECTIVES = ("training", "closed-form")
PRUNERS = ("median", "none")
PAPER_WEIGHTS = {"kappa": 10.0, "alpha": 30.0, "beta": 100.0, "gamma": 0.001}
# Keys that do not change what the search computes, so a resumed search may use other values.
OPERATIONAL_KEYS = ("name", "storage", "run", "max_rounds", "heartbeat_interval", "grace_period", "poll_seconds",
                    "keep_models", "loss_config", "out_dir", "trials_dir")


@dataclass
class ClosedFormConfig:
    """``objective: closed-form``: the squared log-distance to ``optimum``, no training. It checks a storage and a
    set of workers in seconds; ``seconds_per_step`` makes trials last long enough to overlap."""

    optimum: dict[str, float] = field(default_factory=lambda: dict(PAPER_WEIGHTS))
    seconds_per_step: float = 0.0


@dataclass
class SweepConfig:
    """``sweep``: rounds over ``coordinates``; per coordinate a log-spaced grid of ``grid_points`` values from
    current/``grid_factor`` to current·``grid_factor`` around each of the ``beam_width`` best settings so far."""

    name: str | None = None  # null: "<run>-<hash of the search>", so a changed search starts a new one
    storage: str | None = None  # null: sqlite:///<repository>/optuna.db; postgresql://… for workers on many hosts
    run: str | None = None  # the run of ``runs`` whose training is tuned; null: the first
    coordinates: list[str] = field(default_factory=lambda: list(COORDINATES))
    grid_points: int = 5
    grid_factor: float = 10.0
    beam_width: int = 2
    max_rounds: int = 3
    min_improvement: float = 0.0  # a round must beat the last one's best by more than this to go on
    metric: str = "ssim_fid100_f1"  # the validation metric after ``steps`` of training
    steps: int = 1000
    val_every: int = 250  # intermediate values for pruning
    pruner: str = "median"
    pruner_startup_trials: int = 3
    pruner_warmup_steps: int = 0
    max_retries: int = 2  # a trial that fails (a killed worker) is retried this many times
    heartbeat_interval: int = 30
    grace_period: int = 120  # seconds without a heartbeat before a running trial counts as failed
    poll_seconds: float = 5.0  # how often a worker with nothing to claim looks again
    keep_models: bool = False  # keep each trial's checkpoints (else only its config, log and metrics)
    objective: str = "training"
    closed_form: ClosedFormConfig = field(default_factory=ClosedFormConfig)
    out_dir: str = "reports/sweep"  # best.json, sweep.md, trajectory.png
    loss_config: str = "configs/loss/swept.yaml"  # the best weights as a loss option: -S loss=swept
    trials_dir: str = "runs/sweep"

    def __post_init__(self) -> None:
        unknown = [name for name in self.coordinates if name not in COORDINATES]
        if unknown or not self.coordinates or len(set(self.coordinates)) != len(self.coordinates):
            raise ConfigError(f"sweep.coordinates={list(self.coordinates)}: expected distinct names among "
                              f"{', '.join(COORDINATES)}")
        if self.grid_points < 3 or self.grid_points % 2 == 0:
            raise ConfigError(f"sweep.grid_points={self.grid_points}: expected an odd number >= 3 (the current "
                              "value sits in the middle)")
        if not 1 < self.grid_factor < math.inf:
            raise ConfigError(f"sweep.grid_factor={self.grid_factor}: expected a finite number > 1")
        check_positive("sweep", self, ("beam_width", "max_rounds", "steps", "val_every", "heartbeat_interval",
                                       "grace_period"))
        check_positive("sweep", self, ("max_retries", "pruner_startup_trials", "pruner_warmup_steps"), minimum=0)
        if not 0 <= self.min_improvement < math.inf:
            raise ConfigError(f"sweep.min_improvement={self.min_improvement}: expected a number >= 0")
        if not 0 < self.poll_seconds < math.inf:
            raise ConfigError(f"sweep.poll_seconds={self.poll_seconds}: expected a positive number")
        if self.grace_period <= self.heartbeat_interval:
            raise ConfigError(f"sweep.grace_period={self.grace_period}: expected more than heartbeat_interval "
                              f"({self.heartbeat_interval})")
        check_choices("sweep", self, {"metric": BEST_METRICS, "objective": OBJECTIVES, "pruner": PRUNERS})
        optimum = self.closed_form.optimum
        if sorted(optimum) != sorted(COORDINATES) or not all(0 < value < math.inf for value in optimum.values()):
            raise ConfigError(f"sweep.closed_form.optimum={dict(optimum)}: expected positive values for "
                              f"{', '.join(COORDINATES)}")

    def identity(self) -> dict[str, Any]:
        """The keys that define what the search computes."""
        return {key: value for key, value in asdict(self).items() if key not in OPERATIONAL_KEYS}


def objective_name(config: SweepConfig) -> str:
    """What a trial's value is called in logs, MLflow and the results: the metric, or the closed form."""
    return config.metric if config.objective == "training" else "closed-form"


def check_weights(weights: dict[str, float], coordinates: list[str], where: str) -> dict[str, float]:
    """The four weights as floats: the searched ones positive (their grid is log-spaced), the others >= 0."""
    for name in COORDINATES:
        value = weights.get(name)
        searched = name in coordinates
        if value is None or not (float(value) > 0 if searched else float(value) >= 0) or not math.isfinite(value):
            expected = "a positive starting value (the grid is log-spaced)" if searched else "a number >= 0"
            raise ConfigError(f"{where}.{name}={value}: expected {expected}")
    return {name: float(weights[name]) for name in COORDINATES}
