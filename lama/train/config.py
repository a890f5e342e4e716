"""The training config: typed sections, loaded from YAML plus ``key=value`` overrides, checked before any work.

A wrong key, type or value fails here with one line that names the key and what is allowed, so a run never dies
at its first validation step (or hours in) over a typo. The sections mirror the official training config:
``generator`` and ``discriminator`` are official config sections (or a preset name), ``loss`` uses the paper's
names (see ``lama.losses.total``), ``optim`` the official optimizer settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from lama.config import ConfigError, build, check_choices, check_positive, first_difference, read_layer
from lama.data.loader import LoaderConfig
from lama.eval.fid import FID_METHODS
from lama.losses.total import LossConfig
from lama.models.generators import (
    IMAGE_CHANNELS,
    MASKED_INPUT_CHANNELS,
    effective_config,
    generator_config,
    input_size_rule,
)
from lama.models.parts import GENERATOR_PARTS
from lama.stand_in import WEIGHT_MODES
from lama.train.init import FROM_INIT, check_init, init_spec
from lama.train.schedule import SCHEDULES

RESUME_MODES = ("auto", "never", "same-config")
# Accelerate's mixed_precision values that a run may take (auto: bf16 on a GPU that supports it, else no).
MIXED_PRECISIONS = ("auto", "no", "bf16")
# Higher is better for these; the rest (fid, lpips) are minimised.
MAXIMISED = ("ssim", "psnr", "ssim_fid100_f1", "lpips_fid100_f1", "hole_ssim", "hole_psnr")
BEST_METRICS = (*MAXIMISED, "fid", "lpips")


@dataclass
class DiscriminatorConfig:
    """The official ``pix2pixhd_nlayer`` discriminator section."""

    kind: str = "pix2pixhd_nlayer"
    input_nc: int = 3
    ndf: int = 64
    n_layers: int = 4

    def __post_init__(self) -> None:
        if self.kind != "pix2pixhd_nlayer":
            raise ConfigError(f"discriminator.kind={self.kind!r}: only pix2pixhd_nlayer is supported")
        for key in ("input_nc", "ndf", "n_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"discriminator.{key}={getattr(self, key)}: expected a positive integer")
        if self.input_nc != IMAGE_CHANNELS:
            raise ConfigError(f"discriminator.input_nc={self.input_nc}: expected {IMAGE_CHANNELS}, the RGB images it "
                              "judges")


@dataclass
class OptimConfig:
    """Adam for both networks, gradient-norm clipping at 1 (official ``gradient_clip_val``). The official runs
    have no schedule (``constant``, no warm-up); a fine-tuning usually wants a warm-up and a decay (``cosine`` to 0
    at ``train.steps``), applied to both networks' rates (``lama.train.schedule``)."""

    generator_lr: float = 1e-3
    discriminator_lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    grad_clip: float | None = 1.0
    schedule: str = "constant"
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        check_choices("optim", self, {"schedule": SCHEDULES})
        check_positive("optim", self, ("warmup_steps",), minimum=0)
        for key in ("generator_lr", "discriminator_lr", "eps"):
            value = getattr(self, key)
            if not 0 < value < math.inf:
                raise ConfigError(f"optim.{key}={value}: expected a positive finite number")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError(f"optim.betas={list(self.betas)}: expected two numbers in [0, 1)")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ConfigError(f"optim.grad_clip={self.grad_clip}: expected a positive number or null (no clipping)")


@dataclass
class DataConfig:
    """``train``: a prepared dataset folder (``lama prepare``), a folder of shards or one shard.
    ``val``: an eval mask set in the official layout (``lama masks``), or null for no validation."""

    train: str = "data/prepared"
    val: str | None = None
    val_batch_size: int = 2
    val_limit: int | None = None  # use only the first N val pairs (sorted), e.g. for a quick check
    loader: LoaderConfig = field(default_factory=LoaderConfig)

    def __post_init__(self) -> None:
        if self.val_batch_size < 1:
            raise ConfigError(f"data.val_batch_size={self.val_batch_size}: expected a positive integer")
        if self.val_limit is not None and self.val_limit < 2:
            raise ConfigError(f"data.val_limit={self.val_limit}: expected null or >= 2 (FID needs two images)")


@dataclass
class TrainConfig:
    """Length, cadence, state and precision of the run. Every ``*_every`` counts optimiser steps."""

    steps: int = 1000
    out_dir: str = "runs/train"
    seed: int = 0
    # auto: continue from out_dir's last state if there is one; never; a state dir; or same-config: continue only a
    # state saved with this config (train.steps and the cadences may differ), else empty out_dir and start over.
    resume: str = "auto"
    save_every: int = 500
    keep_states: int = 2
    val_every: int = 500
    log_every: int = 50
    sample_every: int = 500
    sample_count: int = 4
    mixed_precision: str = "auto"  # auto: bf16 on a GPU that supports it, fp32 elsewhere; no; bf16
    best_metric: str = "ssim_fid100_f1"  # the official checkpoint monitor
    eval_weights: str = "pretrained"  # LPIPS/FID networks; stand-in: seeded random networks, labelled as such
    # The Fréchet distance's tr√(Σ1Σ2): svd is its exact closed form and takes milliseconds; sqrtm is the official
    # computation (about 12 s per validation on one CPU core, whatever the number of images).
    fid_method: str = "svd"
    progress: bool = True
    # Fine-tuning: a model dir to start from (its generator, and its discriminator unless init_discriminator is
    # false); steps=0 then writes the init model as it is, evaluated without training.
    init: str | None = None
    init_discriminator: bool = True
    accumulate: int = 1  # micro-batches per optimiser step: the effective batch is batch_size x accumulate x GPUs
    freeze: list[str] = field(default_factory=list)  # generator parts kept as loaded: encoder, bottleneck, decoder
    sync_bn: bool = False  # SyncBatchNorm in the generator across GPUs (torch runs it on GPUs only)

    def __post_init__(self) -> None:
        if self.mixed_precision == "False":  # YAML 1.1 reads a bare `no` (train.mixed_precision=no) as false
            self.mixed_precision = "no"
        check_positive("train", self, ("save_every", "keep_states", "val_every", "log_every", "sample_every",
                                       "accumulate"))
        if self.steps == 0 and self.init is None:
            raise ConfigError("train.steps=0: only with train.init (the init model written as it is, evaluated "
                              "without training); expected a positive integer")
        check_positive("train", self, ("steps",), minimum=0)
        for part in self.freeze:
            if part not in GENERATOR_PARTS:
                raise ConfigError(f"train.freeze: unknown part {part!r}; expected any of {', '.join(GENERATOR_PARTS)}")
        check_positive("train", self, ("sample_count",), minimum=0)
        if self.resume not in RESUME_MODES and not Path(self.resume).is_dir():
            raise ConfigError(f"train.resume={self.resume!r}: expected auto, never or an existing state dir")
        check_choices("train", self, {"mixed_precision": MIXED_PRECISIONS, "best_metric": BEST_METRICS,
                                      "eval_weights": WEIGHT_MODES, "fid_method": FID_METHODS})


@dataclass
class TrackingConfig:
    """MLflow: ``uri`` null means ``$MLFLOW_TRACKING_URI`` or the SQLite default (``lama.tracking``). A finished
    training logs its model dir's config and best checkpoint to its run (``log_model``) and registers them as a
    version of ``registered_model``, null meaning ``<experiment>.<name of the model dir>``."""

    enabled: bool = True
    experiment: str = "lama"
    run_name: str | None = None
    uri: str | None = None
    stage: str = "train"
    system_metrics: bool = True
    log_model: bool = True
    registered_model: str | None = None


@dataclass
class RunConfig:
    """Everything one training run needs."""

    generator: Any = "lama-fourier"  # a preset name or an official generator section
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        section = OmegaConf.to_container(self.generator) if isinstance(self.generator, DictConfig) else self.generator
        init = None if self.train.init is None else init_spec(self.train.init)
        if section == FROM_INIT:
            if init is None:
                raise ConfigError(f"generator={FROM_INIT}: needs train.init, the model dir whose architecture to take")
            section = init.generator
        try:
            self.generator = generator_config(section)
        except ValueError as error:
            message = str(error)
            raise ConfigError(message if message.startswith("generator") else f"generator: {message}") from None
        built = effective_config(self.generator)
        multiple, minimum = input_size_rule(self.generator)
        channels = {"input_nc": (MASKED_INPUT_CHANNELS, "the image with its holes zeroed, then the mask"),
                    "output_nc": (IMAGE_CHANNELS, "the RGB prediction")}
        for key, (expected, why) in channels.items():
            if built[key] != expected:
                raise ConfigError(f"generator.{key}={built[key]!r}: expected {expected}, {why}")
        crop = self.data.loader.crop_size
        if crop % multiple or crop < minimum:
            raise ConfigError(
                f"data.loader.crop_size={crop}: expected a multiple of {multiple} that is >= {minimum}, the sizes "
                f"the generator ({built['kind']}, n_downsampling={built['n_downsampling']}) maps onto themselves"
            )
        if init is not None:
            check_init(init, self.generator, asdict(self.discriminator) if self.train.init_discriminator else None)
        if len(set(self.train.freeze)) != len(self.train.freeze) or len(self.train.freeze) == len(GENERATOR_PARTS):
            raise ConfigError(f"train.freeze={list(self.train.freeze)}: expected distinct parts, not all of them "
                              "(nothing would train)")

    @property
    def effective_batch(self) -> int:
        """Images per optimiser step on one process (times the number of processes in a launch)."""
        return self.data.loader.batch_size * self.train.accumulate

    def to_dict(self) -> dict[str, Any]:
        """Plain containers, as written to config.yaml and logged as params."""
        return OmegaConf.to_container(OmegaConf.structured(self), resolve=True)

    def to_yaml(self) -> str:
        """The config as a run writes it to ``train_config.yaml`` and ``lama train --print-config`` shows it."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# What may change between a run and its resumed continuation.
RESUMABLE_CHANGES = ("train.steps", "train.progress", "train.resume", "train.save_every", "train.keep_states",
                     "train.val_every", "train.log_every", "train.sample_every", "tracking")


def config_difference(saved: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """The first key whose value differs between two run configs (``to_dict()`` form), ignoring
    :data:`RESUMABLE_CHANGES`; None when a state saved under ``saved`` may be continued under ``current``."""
    found = first_difference(saved, current, RESUMABLE_CHANGES)
    return None if found is None else f"{found[0]}: {found[1]!r} -> {found[2]!r}"


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                base: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults, then ``base``, then the YAML file at ``path``, then ``key=value`` overrides; validated."""
    layers: list[Any] = [] if base is None else [base]
    if path is not None:
        layers.append(read_layer(path))
    return build(RunConfig, layers, overrides)
