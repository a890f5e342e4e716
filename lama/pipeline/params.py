"""The pipeline's ``params.yaml``: composed from ``configs/`` by Hydra, parsed once into typed sections here.

Every stage script loads the whole file through :func:`load_params` before it does any work, so a typo in any key
or a bad value anywhere stops ``dvc repro`` at its first stage, naming the key, instead of hours later in the stage
that reads it. The training sections are the trainer's own (``lama.train.config``); ``runs`` names the trainings of
the profile (one in ``sample``, the paper's ablations in ``paper``), each the top-level training sections with its
own overrides on top (:func:`run_config`).
"""

from __future__ import annotations

import copy
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf.errors import OmegaConfBaseException

from lama.baselines import METHODS as CLASSICAL_METHODS
from lama.config import ConfigError, build, check_choices, check_positive, read_layer
from lama.data.prepare import PrepareConfig
from lama.devices import check_device
from lama.eval.evaluator import EvaluateOptions
from lama.eval.fid import FID_METHODS
from lama.files import atomic_write
from lama.masks.configs import eval_set_config
from lama.models.inference import check_precision
from lama.models.inference_options import InferenceOptions
from lama.pipeline.layout import PREPARED_DIR, mask_set_dir, model_dir, repository_root
from lama.predict import PredictOptions
from lama.stand_in import WEIGHT_MODES
from lama.sweep.config import SweepConfig
from lama.tracking import resolve_tracking_uri
from lama.train.config import DataConfig, RunConfig

PARAMS_FILE = "params.yaml"
CONFIG_DIR = "configs"
CONFIG_NAME = "config"
# What a run may override: the sections a training reads (where it is tracked is the pipeline's). Anything else in a
# run is a typo.
RUN_SECTIONS = tuple(section.name for section in fields(RunConfig) if section.name != "tracking")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def pipeline_tracking_uri(params: PipelineParams) -> str:
    """params, then $MLFLOW_TRACKING_URI, then the repository's mlflow.db."""
    return resolve_tracking_uri(params.tracking.uri, default=f"sqlite:///{repository_root() / 'mlflow.db'}")


@dataclass
class PipelineData(DataConfig):
    """``data``: the trainer's section; the pipeline sets ``train`` and ``val`` itself (the prepared shards and
    the val split under ``val_mask_set``)."""

    val_mask_set: str | None = "thick_256"

    @property
    def val_dir(self) -> Path | None:
        """Where the validation mask set is (built by the val_masks stage); None: no validation."""
        return None if self.val_mask_set is None else mask_set_dir("val", self.val_mask_set)


@dataclass
class EvalParams(InferenceOptions):
    """``eval``: the test mask sets of the tables, the resolutions of Fig. 6, how the runs' models inpaint them
    (``refine``, ``refiner``, ``hd_strategy*``: ``lama predict``'s own keys; classical baselines always run plain)
    and how predictions are scored."""

    mask_sets: list[str] = field(default_factory=lambda: ["thin_512", "medium_512", "thick_512"])
    resolution_sizes: list[int] = field(default_factory=list)  # Fig. 6: thick masks at each size
    # Classical inpainting predicted and evaluated on mask_sets beside the runs: the tables' sanity anchors.
    baselines: list[str] = field(default_factory=lambda: list(CLASSICAL_METHODS))
    mask_seed: int = 0
    # How predict and evaluate run: their own defaults unless params.yaml says otherwise.
    weights: str = EvaluateOptions.weights
    fid_method: str = EvaluateOptions.fid_method
    batch_size: int = EvaluateOptions.batch_size
    num_workers: int = EvaluateOptions.num_workers
    device: str = EvaluateOptions.device
    precision: str = PredictOptions.precision  # bf16 keeps the FFTs in float32
    predict_batch_size: int = PredictOptions.batch_size  # lama predict's batch_size (eval.batch_size: evaluate's)

    def __post_init__(self) -> None:
        self.check_inference("eval.")
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
        check_choices("eval", self, {"weights": WEIGHT_MODES, "fid_method": FID_METHODS})
        check_precision(self.precision, "eval.precision")
        check_device(self.device, "eval.device")
        check_positive("eval", self, ("batch_size", "predict_batch_size"))
        check_positive("eval", self, ("num_workers",), minimum=0)

    @property
    def all_mask_sets(self) -> list[str]:
        """The tables' sets, then Fig. 6's, each once."""
        names = [*self.mask_sets, *(resolution_mask_set(size) for size in self.resolution_sizes)]
        return list(dict.fromkeys(names))


@dataclass
class ReportParams:
    """``report``: ``table_size`` null means 512 when evaluated, else the largest size; ``experiments``: also read
    the evaluations of the saved DVC experiments of this commit (``lama.pipeline.experiments``); ``before_after``:
    empty, or two names of ``runs`` [before, after] whose scores the report sets side by side, so a fine-tuning
    shows at once whether it helped."""

    table_size: int | None = None
    samples: int = 4
    experiments: bool = True
    before_after: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_positive("report", self, ("samples",), minimum=0)


@dataclass
class PipelineParams(RunConfig):
    """The whole ``params.yaml``: a training run's sections (what every run of ``runs`` starts from, checked as a
    run is), then the pipeline's own."""

    profile: str = "sample"
    launcher: str = "python"  # how the train stage starts: python, or accelerate launch [its options]
    data: PipelineData = field(default_factory=PipelineData)
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
        except (HydraException, OmegaConfBaseException, yaml.YAMLError) as error:
            raise ConfigError(f"{' '.join(overrides) or config_dir}: {str(error).splitlines()[0]}") from None
        params = load_params(composed, label=f"{config_dir.name}/ composed{with_overrides}")
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
                overrides: Sequence[str] = ()) -> PipelineParams:
    """The params, parsed once and checked whole (every run must build, not only the one a stage is about to
    train); a one-line :class:`ConfigError` otherwise, starting with ``label`` (default: the path).
    ``overrides`` (``key=value``) apply on top of the file."""
    path = Path(path)
    label = label or str(path)
    layer = read_layer(path, "not found; compose it with 'lama params' (or run 'dvc exp run')", label)
    params = build(PipelineParams, [layer], overrides, label=label)
    try:
        _check(params)
        for name in params.run_names:
            run_config(params, name, data_dir=PREPARED_DIR, val_dir=None, out_dir=model_dir(name))
    except ConfigError as error:
        raise ConfigError(f"{label}: {error}") from None
    return params


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
    before_after = params.report.before_after
    if before_after and (len(before_after) != 2 or len(set(before_after)) != 2
                         or not set(before_after) <= set(params.runs)):
        raise ConfigError(f"report.before_after={before_after}: expected [] or two distinct names of runs "
                          f"[before, after] ({', '.join(params.runs)})")


def _need_size(params: PipelineParams, size: int, what: str) -> None:
    if size not in params.prepare.eval_sizes:
        raise ConfigError(f"{what} needs images of {size}²; add {size} to prepare.eval_sizes "
                          f"(now {params.prepare.eval_sizes})")


def run_config(params: PipelineParams, run: str, data_dir: str | Path, val_dir: str | Path | None,
               out_dir: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The training config of run ``run``: the typed top-level sections, the run's overrides, then the stage's
    paths and ``overrides``."""
    if run not in params.runs:
        raise ConfigError(f"runs: no run named {run!r}; expected one of {', '.join(params.runs)}")
    own = dict(params.runs[run] or {})
    # A run's generator replaces the top-level one whole: a Fourier section merged into a dilated one is neither.
    sections = {key: _plain(getattr(params, key)) for key in (*RUN_SECTIONS, "tracking")
                if not (key == "generator" and key in own)}
    for layer in (sections, own):  # the val split is the stage's to set, from data.val_mask_set
        if isinstance(layer.get("data"), dict):
            layer["data"] = {key: value for key, value in layer["data"].items() if key != "val_mask_set"}
    paths = {"data": {"train": str(data_dir), "val": None if val_dir is None else str(val_dir)},
             "train": {"out_dir": str(out_dir)}, "tracking": {"stage": f"train@{run}"}}
    return build(RunConfig, [sections, own, paths], overrides)


def _plain(section: Any) -> Any:
    """A typed section (or a generator's preset name or mapping) as plain containers, for a config layer."""
    return asdict(section) if is_dataclass(section) else copy.deepcopy(section)
