"""Model directories in the official layout: ``config.yaml`` + ``models/<checkpoint>.ckpt``.

Official dirs load here, and the dirs we write load in official tools: ``config.yaml`` carries the sections
their loader reads (``generator``, ``training_model``, ``visualizer``, ``trainer.kwargs``), and the checkpoint is
a plain dict of tensors that ``torch.load(weights_only=True)`` (the default of current torch) accepts.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from lama.files import atomic_write
from lama.models.generators import architecture_of, build_generator, generator_config
from lama.safe_load import load_checkpoint_file
from lama.safe_yaml import YamlFileError, read_yaml

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
DEFAULT_CHECKPOINT = "best.ckpt"
GENERATOR_PREFIX = "generator."
DISCRIMINATOR_PREFIX = "discriminator."


class ModelDirError(ValueError):
    """A model dir, its config or its checkpoint is not what a LaMa model dir must be."""


def generator_input(image: torch.Tensor, mask: torch.Tensor, concat_mask: bool = True) -> torch.Tensor:
    """The official generator input: the image with holes zeroed, then the mask as a 4th channel."""
    masked = image * (1 - mask)
    return torch.cat([masked, mask], dim=1) if concat_mask else masked


class InpaintingModel(nn.Module):
    """Generator plus the official forward: masked image (and mask) in, raw prediction out.

    Its state dict is exactly the ``generator.*`` part of an official checkpoint.
    """

    def __init__(self, generator: nn.Module, config: Mapping[str, Any], concat_mask: bool = True) -> None:
        super().__init__()
        self.generator = generator
        self.generator_config = dict(config)
        self.concat_mask = concat_mask
        self.frozen_layers: list[nn.Module] = []  # kept in eval mode by train(), see lama.models.parts.freeze

    def train(self, mode: bool = True) -> InpaintingModel:
        super().train(mode)
        for layer in self.frozen_layers:
            layer.eval()
        return self

    def make_input(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return generator_input(image, mask, self.concat_mask)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Raw generator output for an image in [0,1] and a binary mask (1 = hole), both NCHW."""
        return self.generator(self.make_input(image, mask))


def read_config(model_dir: str | Path) -> DictConfig:
    """The dir's config with interpolations left unresolved (official configs hold ``${env:TORCH_HOME}``)."""
    path = Path(model_dir) / CONFIG_NAME
    if not path.is_file():
        raise ModelDirError(f"{path}: missing; a model dir holds config.yaml and models/{DEFAULT_CHECKPOINT}")
    try:
        data = read_yaml(path)
    except YamlFileError as error:
        raise ModelDirError(str(error)) from None
    if not isinstance(data, dict) or "generator" not in data:
        raise ModelDirError(f"{path}: expected a mapping with a 'generator' section")
    try:
        return OmegaConf.create(data)
    except OmegaConfBaseException as error:
        raise ModelDirError(f"{path}: not a config ({str(error).splitlines()[0]})") from None


def checkpoint_part(checkpoint: Any, prefix: str, source: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint whose keys start with ``prefix`` (``generator.``, ``discriminator.``), prefix
    stripped; empty when it has none."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        kind = type(checkpoint).__name__
        raise ModelDirError(f"{source}: expected a checkpoint dict with a 'state_dict', got {kind}")
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def generator_state_dict(checkpoint: Any, source: str | Path) -> dict[str, torch.Tensor]:
    """The ``generator.*`` tensors of a checkpoint, prefix stripped; every other key is ignored."""
    tensors = checkpoint_part(checkpoint, GENERATOR_PREFIX, source)
    if not tensors:
        raise ModelDirError(f"{source}: the state dict holds no '{GENERATOR_PREFIX}*' keys")
    return tensors


@dataclass(frozen=True)
class ModelDirSpec:
    """What a model dir's config.yaml says, read without touching the checkpoint (cheap, so configs check it)."""

    model_dir: Path
    checkpoint: Path
    generator: dict[str, Any]  # the generator section, checked (``generator_config``)
    discriminator: dict[str, Any] | None  # the discriminator section when config.yaml has one
    concat_mask: bool


def read_model_dir(path: str | Path, checkpoint: str = DEFAULT_CHECKPOINT) -> ModelDirSpec:
    """The spec of a model dir (or of a ``.ckpt`` inside one); :class:`ModelDirError` naming the file otherwise."""
    model_dir, checkpoint_path = locate_checkpoint(path, checkpoint)
    config = read_config(model_dir)
    training_model = config.get("training_model") or {}
    if training_model.get("add_noise_kwargs"):
        raise ModelDirError(f"{model_dir / CONFIG_NAME}: training_model.add_noise_kwargs is not supported")
    try:
        section = generator_config(config.generator)
        discriminator = config.get("discriminator")
        discriminator = None if discriminator is None else OmegaConf.to_container(discriminator, resolve=True)
    except (ValueError, OmegaConfBaseException) as error:
        raise ModelDirError(f"{model_dir / CONFIG_NAME}: {str(error).splitlines()[0]}") from error
    if not checkpoint_path.is_file():
        raise ModelDirError(f"{checkpoint_path}: checkpoint not found")
    return ModelDirSpec(model_dir, checkpoint_path, section, discriminator,
                        bool(training_model.get("concat_mask", True)))


def locate_checkpoint(path: str | Path, checkpoint: str = DEFAULT_CHECKPOINT) -> tuple[Path, Path]:
    """(model dir, checkpoint file) of a model dir or of a ``.ckpt`` file inside one (``DIR/models/NAME.ckpt``)."""
    path = Path(path)
    if path.is_file():
        return path.parent.parent, path
    return path, path / "models" / checkpoint


def load_weights(module: nn.Module, tensors: Mapping[str, torch.Tensor], source: str | Path, what: str) -> None:
    """Load ``tensors`` into ``module`` strictly; a missing, unexpected or misshapen key is one line naming
    ``source`` and ``what`` the weights were meant for."""
    expected = set(module.state_dict())
    missing = sorted(expected - set(tensors))
    unexpected = sorted(set(tensors) - expected)
    if missing or unexpected:
        raise ModelDirError(f"{source}: weights do not match {what} ({len(missing)} missing, e.g. {missing[:3]}; "
                            f"{len(unexpected)} unexpected, e.g. {unexpected[:3]})")
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as error:  # shape mismatches
        first = str(error).strip().splitlines()[-1].strip()
        raise ModelDirError(f"{source}: weights do not fit {what}: {first}") from error


def load_model(
    path: str | Path, checkpoint: str = DEFAULT_CHECKPOINT, map_location: str | torch.device = "cpu"
) -> InpaintingModel:
    """Load an official or LaMa Lab model dir (or a ``.ckpt`` inside one) in eval mode.

    The generator is built from ``config.yaml`` and its weights are loaded strictly: a missing or unexpected
    generator key is an error. Discriminator, evaluator and loss keys are ignored. No code from the checkpoint
    runs (see ``lama.safe_load``).
    """
    spec = read_model_dir(path, checkpoint)
    tensors = generator_state_dict(load_checkpoint_file(spec.checkpoint, map_location), spec.checkpoint)
    generator = build_generator(spec.generator)
    load_weights(generator, tensors, spec.checkpoint, f"the {spec.generator['kind']} generator of {CONFIG_NAME}")
    model = InpaintingModel(generator, spec.generator, concat_mask=spec.concat_mask)
    return model.eval().to(map_location)


def official_config(
    generator: Mapping[str, Any], discriminator: Mapping[str, Any] | None = None, run_title: str = "lama-lab",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A config.yaml body that official tools accept for prediction (their loader reads these sections). Ours
    add a ``lama`` section that they ignore: it records the architecture (``architecture_of``) and what ``extra``
    gives."""
    config: dict[str, Any] = {
        "run_title": run_title,
        "training_model": {"kind": "default", "visualize_each_iters": 1000, "concat_mask": True,
                           "store_discr_outputs_for_vis": True},
        "generator": dict(generator),
        "visualizer": {"kind": "noop"},
        "trainer": {"kwargs": {}},
    }
    if discriminator is not None:
        config["discriminator"] = dict(discriminator)
    config.update(extra or {})
    config["lama"] = {"architecture": architecture_of(generator), **(config.get("lama") or {})}
    return config


def save_model_dir(
    model: InpaintingModel,
    model_dir: str | Path,
    checkpoint: str | Sequence[str] = DEFAULT_CHECKPOINT,
    discriminator: nn.Module | None = None,
    discriminator_config: Mapping[str, Any] | None = None,
    epoch: int = 0,
    global_step: int = 0,
    extra_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.yaml`` and ``models/<checkpoint>`` atomically; returns the checkpoint path.

    ``checkpoint`` may name several files (a training step that is both the last and the best): they get the same
    weights, serialised once, and the dir is reported once."""
    names = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
    if not names:
        raise ValueError("save_model_dir: no checkpoint name given")
    model_dir = Path(model_dir)
    (model_dir / "models").mkdir(parents=True, exist_ok=True)
    state = {GENERATOR_PREFIX + key: value.detach().cpu() for key, value in model.generator.state_dict().items()}
    if discriminator is not None:
        state.update({DISCRIMINATOR_PREFIX + k: v.detach().cpu() for k, v in discriminator.state_dict().items()})
    payload = {
        "epoch": epoch,
        "global_step": global_step,
        "pytorch-lightning_version": "1.2.9",  # the layout official tools were written against
        "state_dict": state,
        "optimizer_states": [],  # official make_checkpoint.py deletes this key and expects it
        "lr_schedulers": [],
    }
    config = official_config(model.generator_config, discriminator_config, run_title=model_dir.name,
                             extra=extra_config)
    config["training_model"]["concat_mask"] = model.concat_mask
    checkpoint_path = model_dir / "models" / names[0]
    atomic_write(checkpoint_path, lambda f: torch.save(payload, f), durable=True)
    for name in names[1:]:
        with open(checkpoint_path, "rb") as source:
            atomic_write(model_dir / "models" / name, lambda f, source=source: shutil.copyfileobj(source, f),
                         durable=True)
    atomic_write(model_dir / CONFIG_NAME, lambda f: f.write(yaml.safe_dump(config, sort_keys=False).encode()),
                 durable=True)
    log.info("wrote model dir %s (%s)", model_dir, ", ".join(names))
    return checkpoint_path


