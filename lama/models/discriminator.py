"""The PatchGAN discriminator LaMa trains against (official ``NLayerDiscriminator``, kind ``pix2pixhd_nlayer``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lama.models.model_dir import DISCRIMINATOR_PREFIX, checkpoint_part


class NLayerDiscriminator(nn.Module):
    """Returns patch logits and the five intermediate activations used by the feature-matching loss.

    Stages are the attributes ``model0`` ... ``model{n_layers+1}``, as in official checkpoints
    (``discriminator.model0.0.weight`` ...).
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 4) -> None:
        super().__init__()
        self.n_layers = n_layers
        kernel = 4
        pad = math.ceil((kernel - 1) / 2)
        stages: list[list[nn.Module]] = [
            [nn.Conv2d(input_nc, ndf, kernel, stride=2, padding=pad), nn.LeakyReLU(0.2, inplace=True)]
        ]
        nf = ndf
        for _ in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            stages.append(
                [
                    nn.Conv2d(prev, nf, kernel, stride=2, padding=pad),
                    nn.BatchNorm2d(nf),
                    nn.LeakyReLU(0.2, inplace=True),
                ]
            )
        prev, nf = nf, min(nf * 2, 512)
        stages.append(
            [nn.Conv2d(prev, nf, kernel, stride=1, padding=pad), nn.BatchNorm2d(nf), nn.LeakyReLU(0.2, inplace=True)]
        )
        stages.append([nn.Conv2d(nf, 1, kernel, stride=1, padding=pad)])
        for index, stage in enumerate(stages):
            setattr(self, f"model{index}", nn.Sequential(*stage))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for index in range(self.n_layers + 1):
            x = getattr(self, f"model{index}")(x)
            features.append(x)
        logits = getattr(self, f"model{self.n_layers + 1}")(x)
        return logits, features

    def load_official_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Load ``discriminator.*`` weights from an official checkpoint's state dict (other keys are ignored)."""
        own = checkpoint_part(state_dict, DISCRIMINATOR_PREFIX, "checkpoint")
        if not own:
            raise KeyError(f"the checkpoint holds no '{DISCRIMINATOR_PREFIX}*' weights")
        self.load_state_dict(own, strict=strict)
