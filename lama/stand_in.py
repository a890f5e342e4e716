"""Seeded random weights for the pretrained networks that cannot be downloaded offline (the "stand-ins").

One recipe for every stand-in (HRF encoder, LPIPS backbone, FID Inception), drawn from its own generator so the
global RNG is untouched: Kaiming-normal convolutions, zero biases, identity BatchNorms, 1/√fan-in linear layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from torch import nn

# Where a pretrained network's weights come from: the registry's file, or a seeded stand-in (labelled as such).
WeightsMode = Literal["pretrained", "stand-in"]
WEIGHT_MODES: tuple[str, ...] = get_args(WeightsMode)


def seeded_random_init(module: nn.Module, seed: int) -> None:
    """Overwrite every conv, BatchNorm and linear layer of ``module`` in place, reproducibly from ``seed``."""
    import torch  # here, not above: the command line reads WEIGHT_MODES without loading torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):
                fan_in = layer.weight[0].numel()
                gain = 2.0 if isinstance(layer, nn.Conv2d) else 1.0
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * (gain / fan_in) ** 0.5)
                if layer.bias is not None:
                    layer.bias.zero_()
            elif isinstance(layer, nn.BatchNorm2d):
                layer.reset_parameters()
