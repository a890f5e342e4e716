"""Starting a training from a model dir (``train.init``): an official one such as ``big-lama`` or one of ours.

The model dir's config.yaml is read when the run config is checked (cheap), so a missing dir, another architecture
or a discriminator that does not fit fails before any work, in one line. Its weights are read when the networks
are built, through the safe loader (no code from the checkpoint runs), and loaded strictly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from lama.config import ConfigError, first_difference
from lama.models.generators import effective_config
from lama.models.model_dir import (
    DISCRIMINATOR_PREFIX,
    ModelDirError,
    ModelDirSpec,
    checkpoint_part,
    generator_state_dict,
    load_weights,
    read_model_dir,
)
from lama.safe_load import CheckpointError, load_checkpoint_file

log = logging.getLogger(__name__)

FROM_INIT = "from-init"  # generator=from-init: the architecture of train.init's model dir


def init_spec(path: str) -> ModelDirSpec:
    """The spec of ``train.init``; a :class:`ConfigError` naming the key otherwise."""
    if not Path(path).exists():
        raise ConfigError(f"train.init={path!r}: not found; expected a model dir (config.yaml + models/best.ckpt) "
                          "or a .ckpt file inside one")
    try:
        return read_model_dir(path)
    except ModelDirError as error:
        raise ConfigError(f"train.init={path!r}: {error}") from None


def check_init(spec: ModelDirSpec, generator: Mapping[str, Any], discriminator: Mapping[str, Any] | None) -> None:
    """The run's generator must be the model dir's; its discriminator too when it is to be loaded
    (``discriminator`` None: a fresh one)."""
    where = f"train.init={str(spec.model_dir)!r}"
    if not spec.concat_mask:
        raise ConfigError(f"{where}: training_model.concat_mask is false there; training feeds the mask as a "
                          "channel")
    found = first_difference(effective_config(spec.generator), effective_config(generator))
    if found is not None:
        key, theirs, ours = found
        raise ConfigError(f"{where}: its generator has {key}={theirs!r}, the run's {ours!r}; set generator=from-init "
                          "to train the model dir's architecture")
    if discriminator is None or spec.discriminator is None:
        return
    found = first_difference({key: spec.discriminator.get(key) for key in discriminator}, dict(discriminator))
    if found is not None:
        key, theirs, ours = found
        raise ConfigError(f"{where}: its discriminator has {key}={theirs!r}, the run's discriminator.{key}={ours!r}; "
                          f"set discriminator.{key}={theirs} or train.init_discriminator=false for a fresh one")


def load_init(spec: ModelDirSpec, generator: nn.Module, discriminator: nn.Module | None) -> str:
    """Load the model dir's generator weights into ``generator`` (an ``InpaintingModel``) and, unless
    ``discriminator`` is None, its discriminator weights when the checkpoint has them; returns what was loaded."""
    try:
        checkpoint = load_checkpoint_file(spec.checkpoint)
    except CheckpointError as error:
        raise ConfigError(f"train.init: {error}") from None
    try:
        load_weights(generator.generator, generator_state_dict(checkpoint, spec.checkpoint), spec.checkpoint,
                     "the run's generator")
        if discriminator is None:
            return f"generator of {spec.checkpoint} (a fresh discriminator: train.init_discriminator=false)"
        tensors = checkpoint_part(checkpoint, DISCRIMINATOR_PREFIX, spec.checkpoint)
        if not tensors:
            return f"generator of {spec.checkpoint} (it holds no discriminator: a fresh one)"
        load_weights(discriminator, tensors, spec.checkpoint, "the run's discriminator")
    except ModelDirError as error:
        raise ConfigError(f"train.init: {error}") from None
    return f"generator and discriminator of {spec.checkpoint}"

