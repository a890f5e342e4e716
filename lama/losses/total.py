"""The LaMa training objective with the paper's names for its weights (eq. 5 of the paper).

================  =======  ==================================================  ==========================
paper / ours      default  official config key                                 term
================  =======  ==================================================  ==========================
κ ``kappa``       10       ``losses.adversarial.weight``                       non-saturating adversarial
α ``alpha``       30       ``losses.resnet_pl.weight``                         HRF perceptual (ResNetPL)
β ``beta``        100      ``losses.feature_matching.weight``                  feature matching
γ ``gamma``       0.001    ``losses.adversarial.gp_coef``                      R1 penalty (D step)
``l1_known``      10       ``losses.l1.weight_known``                          L1 on known pixels
``l1_missing``    0        ``losses.l1.weight_missing``                        L1 on the hole
``mask_interp``   none     ``losses.feature_matching.pass_mask`` + line 27     FM mask resizing
================  =======  ==================================================  ==========================

Every term is computed on the raw generator output (the official ``predicted_image``), not on the blend.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from lama.config import ConfigError
from lama.losses.adversarial import discriminator_adversarial_loss, generator_adversarial_loss, r1_penalty
from lama.losses.feature_matching import FM_MASK_INTERPOLATIONS, UNMASKED, feature_matching_loss
from lama.losses.hrf import HRFPerceptualLoss
from lama.losses.reconstruction import masked_l1_loss
from lama.stand_in import WEIGHT_MODES


@dataclass
class LossConfig:
    """The ``loss`` config section; see the module docstring for the mapping to the official keys."""

    kappa: float = 10.0
    alpha: float = 30.0
    beta: float = 100.0
    gamma: float = 0.001
    l1_known: float = 10.0
    l1_missing: float = 0.0
    mask_interp: str = UNMASKED
    # ADE20k encoder weights; "stand-in" is a seeded random network for offline runs, labelled wherever it is used.
    hrf_weights: str = "pretrained"
    hrf_seed: int = 0
    # "train": batch statistics in the encoder's BatchNorms, as the official trainer ends up doing.
    hrf_bn_mode: str = "train"

    def __post_init__(self) -> None:
        for name in ("kappa", "alpha", "beta", "gamma", "l1_known", "l1_missing"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
                raise ConfigError(f"loss.{name} must be a finite number >= 0, got {value!r}")
        if self.mask_interp not in FM_MASK_INTERPOLATIONS:
            raise ConfigError(f"loss.mask_interp must be one of {', '.join(FM_MASK_INTERPOLATIONS)}, "
                             f"got {self.mask_interp!r}")
        if self.hrf_weights not in WEIGHT_MODES:
            raise ConfigError(f"loss.hrf_weights must be one of {', '.join(WEIGHT_MODES)}, got {self.hrf_weights!r}")
        if self.hrf_bn_mode not in ("train", "eval"):
            raise ConfigError(f"loss.hrf_bn_mode must be 'train' or 'eval', got {self.hrf_bn_mode!r}")
        if self.mask_interp != UNMASKED and self.beta == 0:
            warnings.warn(f"loss.mask_interp={self.mask_interp} has no effect: loss.beta=0 turns feature matching off",
                          stacklevel=2)


# The weights of the paper's recipe (eq. 5 with the official L1 weights): LossConfig's defaults. mask_interp is not
# among them: it is the axis of its own study, and its default is the official behaviour.
RECIPE_WEIGHTS = ("kappa", "alpha", "beta", "gamma", "l1_known", "l1_missing")


def recipe_deviations(loss: Mapping[str, Any]) -> list[str]:
    """How a ``loss`` section departs from the paper's recipe, one entry per key (``loss.alpha=0 (paper 30)``), the
    HRF encoder included; empty for the paper's recipe. Numbers of a model trained otherwise are still numbers, but
    not the paper's method: the report marks them and does not compare them with the paper's."""
    paper = LossConfig()
    known = {field.name for field in fields(LossConfig)}
    config = {**asdict(paper), **{key: value for key, value in loss.items() if key in known}}
    found = [f"loss.{key}={config[key]:g} (paper {getattr(paper, key):g})" for key in RECIPE_WEIGHTS
             if float(config[key]) != float(getattr(paper, key))]
    if float(config["alpha"]) > 0:
        for key in ("hrf_weights", "hrf_bn_mode"):
            if config[key] != getattr(paper, key):
                found.append(f"loss.{key}={config[key]} (paper {getattr(paper, key)})")
    return found


def recipe_label(loss: Mapping[str, Any]) -> str:
    """``paper``, or the deviations joined: what a reader of a model's numbers must know about its training."""
    return "; ".join(recipe_deviations(loss)) or "paper"


class LamaLoss(nn.Module):
    """Generator and discriminator objectives of one LaMa training step.

    The discriminator is called separately on real and generated images (each call has its own BatchNorm batch
    statistics), in whatever mode the caller put it: the official trainer keeps it in train mode for both steps.
    """

    def __init__(self, config: LossConfig | None = None, hrf: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()
        if hrf is None and self.config.alpha > 0:
            hrf = self._build_hrf()
        self.hrf = hrf

    def _build_hrf(self) -> HRFPerceptualLoss:
        c = self.config
        if c.hrf_weights == "stand-in":
            return HRFPerceptualLoss.stand_in(c.hrf_seed, weight=1.0, bn_mode=c.hrf_bn_mode)
        return HRFPerceptualLoss.pretrained(weight=1.0, bn_mode=c.hrf_bn_mode)

    @property
    def labels(self) -> dict[str, str]:
        """What a reader of the numbers must know: whether the HRF term came from a stand-in network, and whether
        the recipe is the paper's."""
        return {"hrf_weights": getattr(self.hrf, "weights_label", "off" if self.hrf is None else "custom"),
                "recipe": recipe_label(asdict(self.config))}

    def generator_loss(
        self, image: Tensor, mask: Tensor, predicted: Tensor, discriminator: nn.Module
    ) -> dict[str, Tensor]:
        """Weighted total and unweighted terms of the G step (the trainer freezes D's parameters for it)."""
        c = self.config
        terms = {"l1": masked_l1_loss(predicted, image, mask, c.l1_known, c.l1_missing)}
        if c.kappa > 0 or c.beta > 0:
            _, real_features = discriminator(image)
            fake_logits, fake_features = discriminator(predicted)
            terms["adversarial"] = generator_adversarial_loss(fake_logits)
            terms["feature_matching"] = feature_matching_loss(fake_features, real_features, mask, c.mask_interp)
        if self.hrf is not None and c.alpha > 0:
            terms["hrf_perceptual"] = self.hrf(predicted, image)
        terms["total"] = sum(self.weighted(terms).values())
        return terms

    def weighted(self, terms: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The G-step terms as they enter the total: each times its weight (the L1 term carries its own)."""
        weights = {"l1": 1.0, "adversarial": self.config.kappa, "feature_matching": self.config.beta,
                   "hrf_perceptual": self.config.alpha}
        return {name: weights[name] * value for name, value in terms.items() if name in weights}

    def discriminator_loss(
        self, image: Tensor, mask: Tensor, predicted: Tensor, discriminator: nn.Module
    ) -> dict[str, Tensor]:
        """The D step: real vs generated (known area labelled real) plus γ·R1; not multiplied by κ."""
        # As officially, R1 is 0 where gradients are off (validation): it needs d D(real) / d real.
        with_r1 = self.config.gamma > 0 and torch.is_grad_enabled()
        real = image.detach().requires_grad_(with_r1)
        real_logits, _ = discriminator(real)
        r1 = r1_penalty(real_logits, real) if with_r1 else real_logits.new_zeros(())
        fake_logits, _ = discriminator(predicted.detach())
        return discriminator_adversarial_loss(real_logits, fake_logits, mask, r1, self.config.gamma)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in asdict(self.config).items())
