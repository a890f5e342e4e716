"""The pipeline's ``params.yaml``: composed from ``configs/`` by Hydra, validated here in one pass.

Every stage script loads the whole file through :func:`load_params` before it does any work, so a typo in any key
or a bad value anywhere stops ``dvc repro`` at its first stage, naming the key, instead of hours later in the stage
that reads it. ``runs`` names the trainings of the profile (one in ``sample``, the paper's ablations in ``paper``);
each run is the top-level training sections with its own overrides merged on top (:func:`run_config`).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lama.baselines import METHODS as CLASSICAL_METHODS
from lama.data.loader import LoaderConfig
from lama.data.prepare import PrepareConfig
from lama.files import atomic_write
from lama.losses.total import LossConfig
from lama.masks.configs import eval_set_config
from lama.models.inference import PRECISIONS
from lama.safe_yaml import YamlFileError, read_omegaconf
from lama.sweep.config import SweepConfig
from lama.tracking import resolve_tracking_uri
from lama.train.config import (
    EVAL_WEIGHTS,
    FID_METHODS,
    ConfigError,
    DiscriminatorConfig,
    OptimConfig,
    RunConfig,
    TrackingConfig,
    TrainConfig,
    load_config,
    parse_overrides,
)

PARAMS_FILE = "params.yaml"
CONFIG_DIR = "configs"
CONFIG_NAME = "config"
# What a run may override: the sections a training reads. Anything else in a run is a typo.
RUN_SECTIONS = ("generator", "discriminator", "loss", "optim", "data", "train")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Where the stages read and write (dvc.yaml declares the same paths).
PREPARED_DIR = Path("data/prepared")


def mask_set_dir(split: str, name: str) -> Path:
    return Path("data/eval") / split / name


def repository_root() -> Path:
    """The repository the pipeline runs in: DVC runs queued experiments in copies of it and names the original in
    DVC_ROOT, so that every run lands in one MLflow (and Optuna) store."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).absolute()


def pipeline_tracking_uri(params: PipelineParams) -> str:
    """params, then $MLFLOW_TRACKING_URI, then the repository's mlflow.db."""
    return resolve_tracking_uri(params.tracking.uri, default=f"sqlite:///{repository_root() / 'mlflow.db'}")


@dataclass
class TrainingData:
    """``data``: what the trainer reads besides the shards. Validation uses the val split under ``val_mask_set``."""

    val_mask_set: str | None = "thick_256"
    val_batch_size: int = 2
    val_limit: int | None = None
    loader: LoaderConfig = field(default_factory=LoaderConfig)


@dataclass
class EvalParams:
    """``eval``: the test mask sets of the tables, the resolutions of Fig. 6 and how predictions are scored."""

    mask_sets: list[str] = field(default_factory=lambda: ["thin_512", "medium_512", "thick_512"])
    resolution_sizes: list[int] = field(default_factory=list)  # Fig. 6: thick masks at each size
    # Classical inpainting predicted and evaluated on mask_sets beside the runs: the tables' sanity anchors.
    baselines: list[str] = field(default_factory=lambda: list(CLASSICAL_METHODS))
    mask_seed: int = 0
    weights: str = "pretrained"
    fid_method: str = "sqrtm"
    batch_size: int = 8
    num_workers: int = 2
    device: str = "auto"
    precision: str = "fp32"  # of predict; bf16 keeps the FFTs in float32

    def __post_init__(self) -> None:
        for name in self.mask_sets:
            mask_set_config(name, "eval.mask_sets")
        for size in self.resolution_sizes:
            mask_set_config(resolution_mask_set(size), "eval.resolution_sizes")
        for method in self.baselines:
            if method not in CLASSICAL_METHODS:
                raise ConfigError(f"eval.baselines: unknown method {method!r}; expected any of "
                                  f"{', '.join(CLASSICAL_METHODS)}")
        if len(set(self.baselines)) != len(self.baselines):
            raise ConfigError(f"eval.baselines={self.baselines}: a method is listed twice")
        choices = {"weights": EVAL_WEIGHTS, "fid_method": FID_METHODS, "precision": PRECISIONS}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"eval.{key}={getattr(self, key)!r}: expected one of {', '.join(allowed)}")
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size={self.batch_size}: expected a positive integer")
        if self.num_workers < 0:
            raise ConfigError(f"eval.num_workers={self.num_workers}: expected an integer >= 0")

    @property
    def all_mask_sets(self) -> list[str]:
        """The tables' sets, then Fig. 6's, each once."""
        names = [*self.mask_sets, *(resolution_mask_set(size) for size in self.resolution_sizes)]
        return list(dict.fromkeys(names))


@dataclass
class ReportParams:
    """``report``: ``table_size`` null means 512 when evaluated, else the largest size."""

    table_size: int | None = None
    samples: int = 4

    def __post_init__(self) -> None:
        if self.samples < 0:
            raise ConfigError(f"report.samples={self.samples}: expected an integer >= 0")


@dataclass
class PipelineParams:
    """The whole ``params.yaml``."""

    profile: str = "sample"
    launcher: str = "python"  # how the train stage starts: python, or accelerate launch [its options]
    generator: Any = "lama-fourier"
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: TrainingData = field(default_factory=TrainingData)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    eval: EvalParams = field(default_factory=EvalParams)
    report: ReportParams = field(default_factory=ReportParams)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    runs: dict[str, Any] = field(default_factory=dict)
    run_names: list[str] = field(default_factory=list)


def compose_params(overrides: Sequence[str] = (), config_dir: str | Path = CONFIG_DIR, out: str | Path = PARAMS_FILE,
                   check: bool = False) -> PipelineParams:
    """Compose ``config_dir`` with Hydra ``overrides`` into ``out`` exactly as ``dvc exp run`` does, validated first.

    The composition is DVC's own function, so the file is byte-identical to what DVC writes; a bad override or
    value leaves ``out`` untouched. With ``check``, nothing is written and a difference from ``out`` is an error."""
    from dvc.utils.hydra import compose_and_dump
    from hydra.errors import HydraException

    config_dir, out = Path(config_dir).absolute(), Path(out)
    if not (config_dir / f"{CONFIG_NAME}.yaml").is_file():
        raise ConfigError(f"{config_dir / CONFIG_NAME}.yaml: not found (run from the repository root)")
    with_overrides = f" with {' '.join(overrides)}" if overrides else ""
    with tempfile.TemporaryDirectory() as folder:
        composed = Path(folder) / PARAMS_FILE
        try:
            compose_and_dump(composed, str(config_dir), None, CONFIG_NAME, str(config_dir.parent), list(overrides))
        except (HydraException, OmegaConfBaseException) as error:
            raise ConfigError(f"{' '.join(overrides) or config_dir}: {str(error).splitlines()[0]}") from None
        params, _ = load_params(composed, label=f"{config_dir.name}/ composed{with_overrides}")
        if check:
            if not out.is_file() or out.read_bytes() != composed.read_bytes():
                raise ConfigError(f"{out} differs from a fresh composition of {config_dir.name}/{with_overrides}; "
                                  "run 'lama params'")
            return params
        atomic_write(out, lambda handle: handle.write(composed.read_bytes()))
    return params


def resolution_mask_set(size: int) -> str:
    """Fig. 6's mask set at ``size``: wide (thick) masks, scaled from the official config of that kind."""
    return f"thick_{size}"


def mask_set_config(name: str, where: str) -> Any:
    try:
        return eval_set_config(name)
    except KeyError:
        raise ConfigError(f"{where}: unknown mask set {name!r}; expected thin|medium|thick_<size>, "
                          "e.g. thick_512") from None


def load_params(path: str | Path = PARAMS_FILE, label: str | None = None,
                overrides: Sequence[str] = ()) -> tuple[PipelineParams, DictConfig]:
    """The validated params and the raw tree (for :func:`run_config`); one-line :class:`ConfigError` otherwise,
    starting with ``label`` (default: the path). ``overrides`` (``key=value``) apply on top of the file."""
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise ConfigError(f"{path}: not found; compose it with 'lama params' (or run 'dvc exp run')")
    try:
        raw = read_omegaconf(path)
    except YamlFileError as error:
        raise ConfigError(f"{label}: {error.problem}") from None
    try:
        raw = OmegaConf.merge(raw, parse_overrides(overrides)) if overrides else raw
        merged = OmegaConf.merge(OmegaConf.structured(PipelineParams), raw)
        params = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise ConfigError(f"{label}: {key + ': ' if key else ''}{str(error).splitlines()[0]}") from None
    except ValueError as error:
        raise ConfigError(f"{label}: {str(error).splitlines()[0]}") from None
    assert isinstance(params, PipelineParams)
    try:
        _check(params)
        for name in params.run_names:  # every run must build, not only the one a stage is about to train
            run_config(raw, name, data_dir="data", val_dir=None, out_dir=f"models/{name}")
    except ConfigError as error:
        raise ConfigError(f"{label}: {error}") from None
    return params, raw


def _check(params: PipelineParams) -> None:
    if not params.runs:
        raise ConfigError("runs: empty; the profile names at least one training (runs: {lama: {}})")
    if sorted(params.run_names) != sorted(params.runs):
        raise ConfigError(f"run_names={params.run_names}: expected the names of runs ({', '.join(params.runs)})")
    for name, overrides in params.runs.items():
        if not RUN_NAME.match(name):
            raise ConfigError(f"runs.{name}: a run name is letters, digits, '_', '.' or '-' (it names folders)")
        if name in params.eval.baselines:
            raise ConfigError(f"runs.{name}: eval.baselines has a classical method of that name (their "
                              "predictions and results would share folders); rename the run")
        unknown = sorted(set(overrides or {}) - set(RUN_SECTIONS))
        if unknown:
            raise ConfigError(f"runs.{name}.{unknown[0]}: a run may override only {', '.join(RUN_SECTIONS)}")
    if params.data.val_mask_set is not None:
        size = mask_set_config(params.data.val_mask_set, "data.val_mask_set").out_min_size
        _need_size(params, size, "data.val_mask_set")
    for size in params.eval.resolution_sizes:
        if resolution_mask_set(size) in params.eval.mask_sets:
            raise ConfigError(f"eval.resolution_sizes: {size} is already eval.mask_sets' "
                              f"{resolution_mask_set(size)} (Fig. 6 uses it from there); remove it")
    for name in params.eval.all_mask_sets:
        _need_size(params, mask_set_config(name, "eval.mask_sets").out_min_size, f"eval mask set {name}")
    sizes = sorted({mask_set_config(name, "eval.mask_sets").out_min_size for name in params.eval.all_mask_sets})
    if params.report.table_size is not None and params.report.table_size not in sizes:
        raise ConfigError(f"report.table_size={params.report.table_size}: expected null or the size of an eval mask "
                          f"set ({', '.join(map(str, sizes))}); the tables would be empty")
    try:
        params.prepare.validate()
    except ValueError as error:
        raise ConfigError(f"prepare.{error}") from None


def _need_size(params: PipelineParams, size: int, what: str) -> None:
    if size not in params.prepare.eval_sizes:
        raise ConfigError(f"{what} needs images of {size}²; add {size} to prepare.eval_sizes "
                          f"(now {params.prepare.eval_sizes})")


def run_config(raw: DictConfig, run: str, data_dir: str | Path, val_dir: str | Path | None,
               out_dir: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The training config of run ``run``: the top-level sections, the run's overrides, then the stage's paths."""
    runs = raw.get("runs") or {}
    if run not in runs:
        raise ConfigError(f"runs: no run named {run!r}; expected one of {', '.join(runs)}")
    own = runs[run] or {}
    # A run's generator replaces the top-level one whole: a Fourier section merged into a dilated one is neither.
    sections = [key for key in (*RUN_SECTIONS, "tracking") if key in raw and not (key == "generator" and key in own)]
    merged = OmegaConf.to_container(OmegaConf.merge(OmegaConf.masked_copy(raw, sections), own), resolve=True)
    data = merged.setdefault("data", {})
    data.pop("val_mask_set", None)
    data.update(train=str(data_dir), val=None if val_dir is None else str(val_dir))
    merged.setdefault("train", {})["out_dir"] = str(out_dir)
    tracking = merged.setdefault("tracking", {})
    tracking.setdefault("stage", f"train@{run}")
    return load_config(base=merged, overrides=overrides)
