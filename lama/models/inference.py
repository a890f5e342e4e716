"""Make a loaded generator fast for inference without changing what it computes.

BatchNorm in eval mode is an affine map per channel, so it folds into the convolution that feeds it: one pass
over the activations less per norm layer. In an FFC a norm is fed by a *sum* of two convolutions (local and
global paths), so its scale goes into both and its shift into one. bf16 runs the convolutions in bfloat16 while
the Fourier units keep their FFTs in float32 (see ``FourierUnit.forward``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn

from lama.models.ffc import FFC_BN_ACT, FourierUnit
from lama.models.inference_options import DEFAULT_PRECISION, PRECISIONS, check_precision
from lama.models.pix2pixhd import MultidilatedConv

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


def precision_dtype(precision: str) -> torch.dtype:
    """The torch dtype a generator runs in at ``precision`` (a name of ``PRECISIONS``)."""
    check_precision(precision)
    return getattr(torch, PRECISIONS[precision])


_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


@torch.no_grad()
def fold_batchnorm(convs: list[nn.Module], norm: nn.BatchNorm2d) -> None:
    """Scale the convolutions feeding ``norm`` by its eval-mode scale and add its shift to the first one."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shift = norm.bias - norm.running_mean * scale
    for index, conv in enumerate(convs):
        # A ConvTranspose2d weight is laid out [in, out, kh, kw]; a Conv2d weight [out, in, kh, kw].
        shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
        conv.weight.mul_(scale.reshape(shape))
        bias = conv.bias * scale if conv.bias is not None else torch.zeros_like(scale)
        if index == 0:
            bias = bias + shift
        conv.bias = nn.Parameter(bias)


def _leaf_convs(module: nn.Module | None) -> list[nn.Module]:
    """The convolutions whose outputs are summed to form ``module``'s output."""
    if module is None:
        return []
    if isinstance(module, _CONVS):
        return [module]
    if isinstance(module, MultidilatedConv):
        return list(module.convs)
    if hasattr(module, "conv2") and isinstance(module.conv2, nn.Conv2d):  # SpectralTransform ends in a 1×1 conv
        return [module.conv2]
    raise TypeError(f"cannot fold a BatchNorm into {type(module).__name__}")


@torch.no_grad()
def fold_all_batchnorms(generator: nn.Module) -> nn.Module:
    """A copy of an eval-mode generator with every BatchNorm folded into its convolutions and replaced by Identity."""
    generator = copy.deepcopy(generator).eval()
    for module in list(generator.modules()):
        if isinstance(module, FFC_BN_ACT):
            ffc = module.ffc
            if isinstance(module.bn_l, nn.BatchNorm2d):
                fold_batchnorm(_leaf_convs(ffc.convl2l) + _leaf_convs(ffc.convg2l), module.bn_l)
                module.bn_l = nn.Identity()
            if isinstance(module.bn_g, nn.BatchNorm2d):
                fold_batchnorm(_leaf_convs(ffc.convl2g) + _leaf_convs(ffc.convg2g), module.bn_g)
                module.bn_g = nn.Identity()
        elif isinstance(module, FourierUnit):
            fold_batchnorm([module.conv_layer], module.bn)
            module.bn = nn.Identity()
        elif isinstance(module, nn.Sequential):
            children = list(module)
            for index in range(1, len(children)):
                if isinstance(children[index], nn.BatchNorm2d) and isinstance(
                    children[index - 1], (*_CONVS, MultidilatedConv)
                ):
                    fold_batchnorm(_leaf_convs(children[index - 1]), children[index])
                    module[index] = nn.Identity()
    remaining = [name for name, m in generator.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if remaining:
        raise RuntimeError(f"BatchNorm layers left unfolded: {remaining[:5]}")
    return generator


def prepare_for_inference(
    generator: nn.Module,
    device: str | torch.device = "cpu",
    precision: str = DEFAULT_PRECISION,
    fold_norms: bool = True,
    channels_last: bool = False,
) -> nn.Module:
    """The generator as ``lama predict`` runs it: eval mode, norms folded, on ``device`` in ``precision``."""
    check_precision(precision)
    generator = fold_all_batchnorms(generator) if fold_norms else copy.deepcopy(generator).eval()
    generator = generator.to(device=device, dtype=precision_dtype(precision))
    if channels_last:
        generator = generator.to(memory_format=torch.channels_last)
    return generator.requires_grad_(False)


def is_out_of_memory(error: BaseException) -> bool:
    """A device (CUDA) or host (CPU allocator) allocation failure, as opposed to any other error."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


class BatchRunner:
    """Runs a function over items ``batch_size`` at a time; a batch that runs out of memory is halved and retried
    until it fits, and later batches start at the size that fitted. An item that does not fit even alone gives
    None, so one huge image never costs the others their results."""

    def __init__(self, batch_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: expected a positive integer")
        self.batch_size = batch_size

    def run(self, function: Callable[[list[Item]], list[Result]], items: Sequence[Item],
            batch_size: int | None = None) -> list[Result | None]:
        """``function``'s results for ``items`` in order; ``batch_size`` replaces the runner's own for this call
        (and is not lowered for later calls)."""
        shrinks = batch_size is None
        limit = self.batch_size if shrinks else batch_size
        results: list[Result | None] = []
        start = 0
        while start < len(items):
            size = min(limit, len(items) - start)
            batch = list(items[start:start + size])
            try:
                results.extend(function(batch))
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                _release_cached_memory()
                if size == 1:
                    log.warning("out of memory on one item alone; it is skipped")
                    results.append(None)
                    start += 1
                    continue
                limit = size // 2
                if shrinks:
                    self.batch_size = limit
                log.warning("out of memory with a batch of %d; retrying it in batches of %d", size, limit)
                continue
            start += size
        return results


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
