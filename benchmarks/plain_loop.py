"""A plain eager fp32 LaMa iteration with no orchestration: the reference the trainer's step is checked against
(tests) and timed against (benchmarks/train_speed.py)."""

from __future__ import annotations

import torch
from torch import nn

from lama.losses.total import LamaLoss


def plain_step(generator: nn.Module, discriminator: nn.Module, loss: LamaLoss, generator_optimizer:
               torch.optim.Optimizer, discriminator_optimizer: torch.optim.Optimizer, image: torch.Tensor,
               mask: torch.Tensor, grad_clip: float = 1.0) -> tuple[float, float]:
    """G step with D frozen, then D step on a fresh no-grad prediction, as the official trainer; (G, D) totals."""
    for parameter in discriminator.parameters():
        parameter.requires_grad = False
    predicted = generator(image, mask)
    generator_total = loss.generator_loss(image, mask, predicted, discriminator)["total"]
    _update(generator, generator_optimizer, generator_total, grad_clip)
    for parameter in discriminator.parameters():
        parameter.requires_grad = True
    with torch.no_grad():
        predicted = generator(image, mask)
    discriminator_total = loss.discriminator_loss(image, mask, predicted, discriminator)["total"]
    _update(discriminator, discriminator_optimizer, discriminator_total, grad_clip)
    return generator_total.item(), discriminator_total.item()


def _update(network: nn.Module, optimizer: torch.optim.Optimizer, total: torch.Tensor, grad_clip: float) -> None:
    """One optimiser step on ``total`` with the gradient norm clipped, as Lightning's ``gradient_clip_val`` does."""
    optimizer.zero_grad()
    total.backward()
    torch.nn.utils.clip_grad_norm_(network.parameters(), grad_clip)
    optimizer.step()
