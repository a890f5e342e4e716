"""Can a training config learn at all? Overfit one fixed batch and watch the hole error fall.

It is the first check of any recipe: a generator that cannot fit four crops in a hundred steps will not fit Places
in a million. It runs the trainer's own step (``GanStep.build``: the config's networks, loss, optimizers, clipping
and precision) on one batch again and again, and reports the hole error before and after, with the gradient norm of
each loss term on the generator's output, so a term that drowns the others shows by name.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import Tensor, nn

from lama.train.config import RunConfig
from lama.train.loop import make_accelerator, resolve_precision
from lama.train.step import GanStep


@dataclass
class OverfitResult:
    steps: int
    hole_error_before: float  # mean |prediction − image| over the hole pixels, in [0, 1]
    hole_error_after: float
    seconds: float
    grad_norm_max: float  # the largest generator gradient norm before clipping
    output_gradients: dict[str, float] = field(default_factory=dict)  # term -> its largest norm on the output

    @property
    def factor(self) -> float:
        """How many times smaller the hole error became."""
        return self.hole_error_before / self.hole_error_after if self.hole_error_after > 0 else math.inf


@torch.no_grad()
def hole_error(model: nn.Module, image: Tensor, mask: Tensor) -> float:
    """Mean absolute error over the hole pixels of ``model``'s prediction in eval mode (the mode of predict)."""
    was_training = model.training
    model.eval()
    try:
        predicted = model(image, mask).float()
    finally:
        model.train(was_training)
    hole = mask.expand_as(image)
    return ((predicted - image).abs() * hole).sum().item() / max(hole.sum().item(), 1.0)


def overfit_batch(config: RunConfig, image: Tensor, mask: Tensor, steps: int, accelerator: Accelerator | None = None,
                  measure_every: int = 10) -> OverfitResult:
    """Train ``config``'s networks from ``train.seed`` on one (image, mask) batch for ``steps`` steps."""
    accelerator = accelerator or make_accelerator()
    set_seed(config.train.seed)
    step = GanStep.build(config, accelerator, resolve_precision(config.train.mixed_precision, accelerator.device))
    image, mask = image.to(accelerator.device), mask.to(accelerator.device)
    model = accelerator.unwrap_model(step.generator)
    before = hole_error(model, image, mask)
    grad_max, gradients = 0.0, {}
    started = time.perf_counter()
    for number in range(1, steps + 1):
        terms, _ = step(image, mask, measure=number % measure_every == 0)
        grad_max = max(grad_max, terms.get("gen/grad_norm", torch.zeros(())).item())
        for name, value in terms.items():
            if name.startswith("gen/grad_wrt_output/"):
                term = name.rsplit("/", 1)[1]
                gradients[term] = max(gradients.get(term, 0.0), value.item())
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize(accelerator.device)
    seconds = time.perf_counter() - started
    return OverfitResult(steps, before, hole_error(model, image, mask), seconds, grad_max, gradients)
