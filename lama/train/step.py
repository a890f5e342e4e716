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
from lama.models.discriminator import NLayerDiscriminator
from lama.models.generators import build_generator
from lama.models.model_dir import InpaintingModel
from lama.train.config import RunConfig


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

    @classmethod
    def build(cls, config: RunConfig, accelerator: Accelerator, autocast_dtype: torch.dtype | None = None
              ) -> GanStep:
        """Fresh networks, loss and Adam optimizers of ``config``, prepared by ``accelerator``."""
        generator = InpaintingModel(build_generator(config.generator), config.generator)
        discriminator = NLayerDiscriminator(config.discriminator.input_nc, config.discriminator.ndf,
                                            config.discriminator.n_layers)
        loss = LamaLoss(config.loss).to(accelerator.device)
        optim = config.optim
        generator_optimizer = torch.optim.Adam(generator.parameters(), lr=optim.generator_lr,
                                               betas=tuple(optim.betas), eps=optim.eps)
        discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=optim.discriminator_lr,
                                                   betas=tuple(optim.betas), eps=optim.eps)
        prepared = accelerator.prepare(generator, discriminator, generator_optimizer, discriminator_optimizer)
        return cls(accelerator, *prepared[:2], loss, *prepared[2:], optim.grad_clip, autocast_dtype)

    def _output_gradient_norms(self, terms: dict[str, Tensor], predicted: Tensor) -> dict[str, Tensor]:
        weighted = self.loss.weighted(terms)
        norms = {}
        for name, value in weighted.items():
            (gradient,) = torch.autograd.grad(value, predicted, retain_graph=True, allow_unused=True)
            norms[name] = (predicted.new_zeros((), dtype=torch.float32) if gradient is None
                           else gradient.detach().float().norm())
        return norms

    def _update(self, total: Tensor, module: nn.Module, optimizer: torch.optim.Optimizer) -> Tensor | None:
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(total)
        norm = None
        if self.grad_clip is not None:
            norm = self.accelerator.clip_grad_norm_(module.parameters(), self.grad_clip)
        optimizer.step()
        return norm

    def __call__(self, image: Tensor, mask: Tensor, measure: bool = False) -> tuple[dict[str, Tensor], Tensor]:
        """One G step and one D step. With ``measure``, also the norm of each weighted G-step term's gradient with
        respect to the generator's output (``gen/grad_wrt_output/<term>``): which term drives the generator, and
        whether one explodes. It costs a backward per term, so the trainer asks for it on logged steps only."""
        self.plain_discriminator.requires_grad_(False)
        with self.autocast():
            predicted = self.generator(image, mask)
            generator_terms = self.loss.generator_loss(image, mask, predicted, self.plain_discriminator)
        output_norms = self._output_gradient_norms(generator_terms, predicted) if measure else {}
        generator_norm = self._update(generator_terms["total"], self.generator, self.generator_optimizer)

        self.plain_discriminator.requires_grad_(True)
        with torch.no_grad(), self.autocast():
            regenerated = self.generator(image, mask)
        discriminator_terms = self.loss.discriminator_loss(image, mask, regenerated.float(), self.discriminator)
        discriminator_norm = self._update(discriminator_terms["total"], self.discriminator,
                                          self.discriminator_optimizer)

        terms = {f"gen/{name}": value.detach().float() for name, value in generator_terms.items()}
        terms.update({f"gen/grad_wrt_output/{name}": norm for name, norm in output_norms.items()})
        terms.update({f"discr/{name}": value.detach().float() for name, value in discriminator_terms.items()})
        if generator_norm is not None and discriminator_norm is not None:
            terms["gen/grad_norm"] = generator_norm.detach().float()
            terms["discr/grad_norm"] = discriminator_norm.detach().float()
        return terms, predicted.detach().float()
