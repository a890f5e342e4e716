"""One LaMa training iteration: the generator step, then the discriminator step (official flow, §5.3).

G step: D's parameters frozen; L1 + κ·adversarial + β·feature matching + α·HRF perceptual; Adam step.
D step: the updated generator predicts again without gradients (as the official trainer does), then real vs
generated (known area labelled real) + γ·R1; Adam step. Both steps clip the gradient norm.

Under DDP the G step calls the *unwrapped* discriminator: its parameters get no gradient there, and a DDP forward
would then wait for a reduction that never comes. Mixed precision is an explicit ``torch.autocast`` around the
generator and the G-step losses only: the D step with R1's double backward stays in float32, as recommended for
gradient penalties, and the Fourier units run their FFTs in float32 anyway (``lama.models.ffc``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from lama.losses.total import LamaLoss


def autocast_for(device: torch.device, dtype: torch.dtype | None) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of autocast contexts: bf16 where asked, a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


class GanStep:
    """Callable on (image, mask) batches; returns detached loss terms and the generator's prediction."""

    def __init__(self, accelerator: Accelerator, generator: nn.Module, discriminator: nn.Module, loss: LamaLoss,
                 generator_optimizer: torch.optim.Optimizer, discriminator_optimizer: torch.optim.Optimizer,
                 grad_clip: float | None, autocast_dtype: torch.dtype | None = None) -> None:
        self.accelerator = accelerator
        self.generator = generator
        self.discriminator = discriminator
        self.plain_discriminator = accelerator.unwrap_model(discriminator)
        self.loss = loss
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.grad_clip = grad_clip
        self.autocast = autocast_for(accelerator.device, autocast_dtype)

    def _update(self, total: Tensor, module: nn.Module, optimizer: torch.optim.Optimizer) -> Tensor | None:
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(total)
        norm = None
        if self.grad_clip is not None:
            norm = self.accelerator.clip_grad_norm_(module.parameters(), self.grad_clip)
        optimizer.step()
        return norm

    def __call__(self, image: Tensor, mask: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        self.plain_discriminator.requires_grad_(False)
        with self.autocast():
            predicted = self.generator(image, mask)
            generator_terms = self.loss.generator_loss(image, mask, predicted, self.plain_discriminator)
        generator_norm = self._update(generator_terms["total"], self.generator, self.generator_optimizer)

        self.plain_discriminator.requires_grad_(True)
        with torch.no_grad(), self.autocast():
            regenerated = self.generator(image, mask)
        discriminator_terms = self.loss.discriminator_loss(image, mask, regenerated.float(), self.discriminator)
        discriminator_norm = self._update(discriminator_terms["total"], self.discriminator,
                                          self.discriminator_optimizer)

        terms = {f"gen/{name}": value.detach().float() for name, value in generator_terms.items()}
        terms.update({f"discr/{name}": value.detach().float() for name, value in discriminator_terms.items()})
        if generator_norm is not None and discriminator_norm is not None:
            terms["gen/grad_norm"] = generator_norm.detach().float()
            terms["discr/grad_norm"] = discriminator_norm.detach().float()
        return terms, predicted.detach().float()
