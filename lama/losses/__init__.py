"""LaMa training losses: adversarial with R1, feature matching, HRF perceptual, reconstruction, weighted total."""

from lama.losses.adversarial import (
    discriminator_adversarial_loss,
    generator_adversarial_loss,
    r1_penalty,
    resize_mask,
)
from lama.losses.feature_matching import FM_MASK_INTERPOLATIONS, UNMASKED, feature_matching_loss
from lama.losses.hrf import HRFPerceptualLoss, ResNet50DilatedEncoder
from lama.losses.reconstruction import masked_l1_loss
from lama.losses.total import LamaLoss, LossConfig

__all__ = [
    "FM_MASK_INTERPOLATIONS",
    "UNMASKED",
    "HRFPerceptualLoss",
    "LamaLoss",
    "LossConfig",
    "ResNet50DilatedEncoder",
    "discriminator_adversarial_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "masked_l1_loss",
    "r1_penalty",
    "resize_mask",
]
