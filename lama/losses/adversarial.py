"""The official non-saturating adversarial loss with the R1 penalty (``NonSaturatingWithR1``, kind ``r1``).

The discriminator labels the known area of a generated image as real (``mask_as_fake_target``): only the patches
whose nearest-resized mask is 1 are "fake". The generator side is a plain mean of softplus(-D(fake)) — in every
official config the mask does not enter it. The discriminator loss is not multiplied by the weight κ; R1 enters
it with the coefficient γ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the PyTorch convention
from torch import Tensor

MASK_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")


def resize_mask(mask: Tensor, size: tuple[int, int] | torch.Size, mode: str) -> Tensor:
    """Resize a hole mask to a feature map's size; values are clamped to [0, 1] because bicubic overshoots."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    if mode not in MASK_INTERPOLATIONS:
        raise ValueError(f"mask interpolation must be one of {', '.join(MASK_INTERPOLATIONS)}, got {mode!r}")
    # 'nearest' is PyTorch's legacy nearest (src = floor(dst * in / out)), exactly what the official code used.
    smooth = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(mask, size=tuple(size), mode=mode, **smooth).clamp(0, 1)


def r1_penalty(real_logits: Tensor, real_images: Tensor) -> Tensor:
    """Mean over the batch of ||d sum(D(real)) / d real||², differentiable (``create_graph``) for the D step."""
    (gradient,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradient.flatten(1).pow(2).sum(1).mean()


def generator_adversarial_loss(fake_logits: Tensor) -> Tensor:
    """Unweighted non-saturating generator loss: mean softplus(-D(fake))."""
    return F.softplus(-fake_logits).mean()


def discriminator_adversarial_loss(
    real_logits: Tensor, fake_logits: Tensor, mask: Tensor, r1: Tensor, gamma: float
) -> dict[str, Tensor]:
    """The official D loss and its parts; ``mask`` is the full-resolution hole mask, resized here with nearest."""
    fake_patches = resize_mask(mask, fake_logits.shape[-2:], "nearest")
    real_term = F.softplus(-real_logits)
    fake_term = fake_patches * F.softplus(fake_logits) + (1 - fake_patches) * F.softplus(-fake_logits)
    total = (real_term + gamma * r1 + fake_term).mean()
    return {"total": total, "real": real_term.mean(), "fake": fake_term.mean(), "r1": r1}
