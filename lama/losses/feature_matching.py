"""Feature matching over the discriminator's features (the paper's L_DiscPL, weight β).

Every official config runs it unmasked (``mask_interp: none``): the official code resizes the mask bilinearly
only when ``losses.feature_matching.pass_mask`` is set, and no shipped config sets it. The follow-up study on
how the hole mask is resized therefore only changes anything with masking on; any other ``mask_interp``
weights each map's squared error by ``1 - resize(mask)`` (the known area counts, the hole does not).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lama.losses.adversarial import MASK_INTERPOLATIONS, resize_mask

UNMASKED = "none"  # the paper's setting: feature matching over the whole image
FM_MASK_INTERPOLATIONS = (UNMASKED, *MASK_INTERPOLATIONS)


def feature_matching_loss(
    fake_features: Sequence[Tensor], real_features: Sequence[Tensor], mask: Tensor | None = None,
    mask_interp: str = UNMASKED,
) -> Tensor:
    """Mean over layers of the (optionally known-area-weighted) mean squared feature difference."""
    if mask_interp not in FM_MASK_INTERPOLATIONS:
        raise ValueError(f"loss.mask_interp must be one of {', '.join(FM_MASK_INTERPOLATIONS)}, got {mask_interp!r}")
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(f"need matching, non-empty feature lists, got {len(fake_features)} and {len(real_features)}")
    if mask_interp != UNMASKED and mask is None:
        raise ValueError(f"loss.mask_interp={mask_interp} needs the hole mask")
    terms = []
    for fake, real in zip(fake_features, real_features, strict=True):
        squared = (fake - real).pow(2)
        if mask_interp != UNMASKED:
            squared = squared * (1 - resize_mask(mask, fake.shape[-2:], mask_interp))
        terms.append(squared.mean())
    return torch.stack(terms).mean()
