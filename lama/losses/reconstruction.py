"""Per-pixel L1 with separate weights for the known and the missing pixels (official ``masked_l1_loss``)."""

from __future__ import annotations

from torch import Tensor


def masked_l1_loss(
    predicted: Tensor, target: Tensor, mask: Tensor, weight_known: float, weight_missing: float
) -> Tensor:
    """Mean over all elements of |predicted - target| weighted per pixel; the paper's models use 10 / 0."""
    weights = mask * weight_missing + (1 - mask) * weight_known
    return (weights * (predicted - target).abs()).mean()
