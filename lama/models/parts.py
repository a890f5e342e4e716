"""The parts of a generator a fine-tuning may freeze: ``encoder`` (the input convolution and the downsampling
layers), ``bottleneck`` (the residual blocks) and ``decoder`` (upsampling and output layers).

Every generator we build (``ffc_resnet``, ``pix2pixhd_global`` with or without multi-dilation) is one ``model``
sequence of encoder layers, residual blocks and decoder layers, so the parts are found by where the residual
blocks start and end.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lama.models.ffc import FFCResnetBlock
from lama.models.model_dir import InpaintingModel
from lama.models.pix2pixhd import MultidilatedResnetBlock, ResnetBlock

GENERATOR_PARTS = ("encoder", "bottleneck", "decoder")
RESIDUAL_BLOCKS = (FFCResnetBlock, ResnetBlock, MultidilatedResnetBlock)


def generator_parts(generator: nn.Module) -> dict[str, list[nn.Module]]:
    """The layers of each part of ``generator`` (a generator or an ``InpaintingModel`` around one)."""
    network = getattr(generator, "generator", generator)
    layers = list(getattr(network, "model", ()))
    blocks = [index for index, layer in enumerate(layers) if isinstance(layer, RESIDUAL_BLOCKS)]
    if not blocks:
        raise ValueError(f"{type(network).__name__}: no residual blocks found; expected a generator of this "
                         "package (a 'model' sequence of encoder, residual blocks and decoder)")
    first, last = blocks[0], blocks[-1]
    return {"encoder": layers[:first], "bottleneck": layers[first:last + 1], "decoder": layers[last + 1:]}


def freeze(model: InpaintingModel, parts: Sequence[str]) -> int:
    """Freeze ``parts`` of the model's generator; returns how many parameters they hold. Frozen layers stay as
    loaded: no gradients, and their BatchNorm layers normalise with the running statistics and never update them
    (``InpaintingModel.train`` keeps them in eval mode), which is what a small fine-tuning batch needs."""
    found = generator_parts(model)
    unknown = [part for part in parts if part not in found]
    if unknown:
        raise ValueError(f"unknown generator part {unknown[0]!r}; expected any of {', '.join(GENERATOR_PARTS)}")
    layers = [layer for part in parts for layer in found[part]]
    for layer in layers:
        layer.requires_grad_(False)
        layer.eval()
    model.frozen_layers.extend(layers)
    return sum(parameter.numel() for layer in layers for parameter in layer.parameters())
