"""One LaMa training iteration: the generator step, then the discriminator step (official flow, §5.3).

G step: D's parameters frozen; L1 + κ·adversarial + β·feature matching + α·HRF perceptual; Adam step.
D step: the updated generator predicts again without gradients (as the official trainer does), then real vs
generated (known area labelled real) + γ·R1; Adam step. Both steps clip the gradient norm.

Under DDP the G step calls the *unwrapped* discriminator: its parameters get no gradient there, and a DDP forward
would then wait for a reduction that never comes. Mixed precision is an explicit ``torch.autocast`` around the
generator and the G-step losses only: the D step with R1's double backward stays in float32, as recommended for
gradient penalties, and the Fourier units run their FFTs in float32 anyway (``lama.models.ffc``).

With ``train.accumulate`` = k, each step's batch is cut into k micro-batches: each network's gradient is the mean of
theirs (each loss is a mean over its micro-batch), and DDP reduces it once, on the last. Every loss term is a
per-sample mean, so this equals one batch of k times the size, except for BatchNorm in train mode (the networks' and
the HRF encoder's, which official training runs in train mode), which normalises each micro-batch with its own
statistics, as each GPU does with its share under DDP (the generator's unless ``train.sync_bn``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from lama.config import ConfigError
from lama.losses.total import LamaLoss
from lama.models.discriminator import NLayerDiscriminator
from lama.models.generators import build_generator
from lama.models.model_dir import InpaintingModel
from lama.models.parts import freeze
from lama.train.config import RunConfig
from lama.train.init import init_spec, load_init

log = logging.getLogger(__name__)


def autocast_for(device: torch.device, dtype: torch.dtype | None) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of autocast contexts: bf16 where asked, a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


class GanStep:
    """Callable on (image, mask) batches; returns detached loss terms and the generator's prediction."""

    def __init__(self, accelerator: Accelerator, generator: nn.Module, discriminator: nn.Module, loss: LamaLoss,
                 generator_optimizer: torch.optim.Optimizer, discriminator_optimizer: torch.optim.Optimizer,
                 grad_clip: float | None, autocast_dtype: torch.dtype | None = None, accumulate: int = 1) -> None:
        self.accelerator = accelerator
        self.generator = generator
        self.discriminator = discriminator
        self.plain_discriminator = accelerator.unwrap_model(discriminator)
        self.loss = loss
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.grad_clip = grad_clip
        self.autocast = autocast_for(accelerator.device, autocast_dtype)
        self.accumulate = accumulate
        self.base_lrs = [[group["lr"] for group in optimizer.param_groups]
                         for optimizer in (generator_optimizer, discriminator_optimizer)]

    @classmethod
    def build(cls, config: RunConfig, accelerator: Accelerator, autocast_dtype: torch.dtype | None = None,
              initialise: bool = True) -> GanStep:
        """The networks, loss and Adam optimizers of ``config``, prepared by ``accelerator``: fresh, or, with
        ``train.init`` and ``initialise``, loaded from that model dir (a resumed run passes False: its state is
        loaded over the networks next); then SyncBatchNorm (``train.sync_bn``) and frozen parts (``train.freeze``)."""
        generator = InpaintingModel(build_generator(config.generator), config.generator)
        discriminator = NLayerDiscriminator(config.discriminator.input_nc, config.discriminator.ndf,
                                            config.discriminator.n_layers)
        train = config.train
        if train.init is not None and initialise:
            loaded = load_init(init_spec(train.init), generator,
                               discriminator if train.init_discriminator else None)
            log.info("initialised from the %s", loaded)
        if train.sync_bn:
            generator = synchronise_batchnorm(generator, accelerator)
        if train.freeze:
            count = freeze(generator, train.freeze)
            log.info("frozen generator parts %s: %d parameters", ", ".join(train.freeze), count)
        loss = LamaLoss(config.loss).to(accelerator.device)
        optim = config.optim
        generator_optimizer = torch.optim.Adam(generator.parameters(), lr=optim.generator_lr,
                                               betas=tuple(optim.betas), eps=optim.eps)
        discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=optim.discriminator_lr,
                                                   betas=tuple(optim.betas), eps=optim.eps)
        prepared = accelerator.prepare(generator, discriminator, generator_optimizer, discriminator_optimizer)
        return cls(accelerator, *prepared[:2], loss, *prepared[2:], optim.grad_clip, autocast_dtype,
                   train.accumulate)

    def scale_learning_rates(self, factor: float) -> None:
        """Set both optimizers' rates to ``factor`` times the configured ones (``lama.train.schedule``)."""
        for optimizer, rates in zip((self.generator_optimizer, self.discriminator_optimizer), self.base_lrs,
                                    strict=True):
            for group, rate in zip(optimizer.param_groups, rates, strict=True):
                group["lr"] = rate * factor

    def _output_gradient_norms(self, terms: dict[str, Tensor], predicted: Tensor) -> dict[str, Tensor]:
        weighted = self.loss.weighted(terms)
        norms = {}
        for name, value in weighted.items():
            (gradient,) = torch.autograd.grad(value, predicted, retain_graph=True, allow_unused=True)
            norms[name] = (predicted.new_zeros((), dtype=torch.float32) if gradient is None
                           else gradient.detach().float().norm())
        return norms

    def _backward(self, total: Tensor, module: nn.Module, index: int) -> None:
        """Backward of one micro-batch's share; DDP reduces the gradients on the last micro-batch only."""
        last = index == self.accumulate - 1
        with contextlib.nullcontext() if last else self.accelerator.no_sync(module):
            self.accelerator.backward(total / self.accumulate)

    def _step(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> Tensor | None:
        norm = None
        if self.grad_clip is not None:
            norm = self.accelerator.clip_grad_norm_(module.parameters(), self.grad_clip)
        optimizer.step()
        return norm

    def __call__(self, image: Tensor, mask: Tensor, measure: bool = False) -> tuple[dict[str, Tensor], Tensor]:
        """One G step and one D step over the batch (in ``accumulate`` micro-batches). With ``measure``, also the
        norm of each weighted G-step term's gradient with respect to the generator's output on the first
        micro-batch (``gen/grad_wrt_output/<term>``): which term drives the generator, and whether one explodes. It
        costs a backward per term, so the trainer asks for it on logged steps only. The terms returned are the means
        over the micro-batches."""
        micro = list(zip(image.tensor_split(self.accumulate), mask.tensor_split(self.accumulate), strict=True))
        self.plain_discriminator.requires_grad_(False)
        self.generator_optimizer.zero_grad(set_to_none=True)
        generator_terms: list[dict[str, Tensor]] = []
        predictions, output_norms = [], {}
        for index, (part_image, part_mask) in enumerate(micro):
            with self.autocast():
                predicted = self.generator(part_image, part_mask)
                terms = self.loss.generator_loss(part_image, part_mask, predicted, self.plain_discriminator)
            if measure and index == 0:
                output_norms = self._output_gradient_norms(terms, predicted)
            self._backward(terms["total"], self.generator, index)
            generator_terms.append({name: value.detach().float() for name, value in terms.items()})
            predictions.append(predicted.detach().float())
        generator_norm = self._step(self.generator, self.generator_optimizer)

        self.plain_discriminator.requires_grad_(True)
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        discriminator_terms: list[dict[str, Tensor]] = []
        for index, (part_image, part_mask) in enumerate(micro):
            with torch.no_grad(), self.autocast():
                regenerated = self.generator(part_image, part_mask)
            terms = self.loss.discriminator_loss(part_image, part_mask, regenerated.float(), self.discriminator)
            self._backward(terms["total"], self.discriminator, index)
            discriminator_terms.append({name: value.detach().float() for name, value in terms.items()})
        discriminator_norm = self._step(self.discriminator, self.discriminator_optimizer)

        terms = {f"gen/{name}": value for name, value in _mean(generator_terms).items()}
        terms.update({f"gen/grad_wrt_output/{name}": norm for name, norm in output_norms.items()})
        terms.update({f"discr/{name}": value for name, value in _mean(discriminator_terms).items()})
        if generator_norm is not None and discriminator_norm is not None:
            terms["gen/grad_norm"] = generator_norm.detach().float()
            terms["discr/grad_norm"] = discriminator_norm.detach().float()
        return terms, torch.cat(predictions)


def _mean(terms: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {name: torch.stack([part[name] for part in terms]).mean() for name in terms[0]}


def synchronise_batchnorm(generator: InpaintingModel, accelerator: Accelerator) -> InpaintingModel:
    """The generator with SyncBatchNorm layers when the launch has several processes (on one, nothing to sync)."""
    if accelerator.num_processes == 1:
        log.info("train.sync_bn: one process, nothing to synchronise")
        return generator
    if accelerator.device.type != "cuda":
        raise ConfigError(f"train.sync_bn=true: torch's SyncBatchNorm runs on GPUs only; this launch is "
                          f"{accelerator.num_processes} {accelerator.device.type} processes")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(generator)
