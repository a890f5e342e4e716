"""The module that is exported: a whole inpainting call, so that a caller needs no LaMa knowledge.

``(image, mask) -> inpainted`` is the call IOPaint and simple-lama-inpainting make on their ``big-lama.pt``: an
image in [0, 1] and a mask whose values above 0 are holes (they pass it as int64, ``(mask > 0) * 1``); the result
is the image with its holes filled. Sides must follow the generator's ``input_size_rule`` (callers pad, as the
official dataset does); the file records the rule.
"""

from __future__ import annotations

import torch
from torch import nn

from lama.export.fourier import BasisFourierUnit, with_basis_fourier_units
from lama.models.ffc import FourierUnit, SpectralTransform
from lama.models.inference import fold_all_batchnorms
from lama.models.model_dir import InpaintingModel, generator_input

# The number format of each ONNX precision's convolutions.
EXPORT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


class InpaintingCall(nn.Module):
    """The official prediction for a batch: the masked image through the generator, blended into the known pixels
    (``blend``) or raw (the generator's ``predicted_image``). Inputs and output are float32 whatever the generator
    runs in."""

    def __init__(self, generator: nn.Module, concat_mask: bool, blend: bool = True) -> None:
        super().__init__()
        self.generator = generator
        self.concat_mask = concat_mask
        self.blend = blend
        self.dtype = next(generator.parameters()).dtype

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hole = (mask > 0).to(image.dtype)
        predicted = self.generator(generator_input(image, hole, self.concat_mask).to(self.dtype)).to(image.dtype)
        if not self.blend:
            return predicted
        return hole * predicted + (1 - hole) * image


def exportable_call(model: InpaintingModel, basis_fourier: bool = False, precision: str = "fp32",
                    blend: bool = True) -> InpaintingCall:
    """``model`` as it is exported: norms folded (as ``lama predict`` runs it), Fourier units as torch FFTs (which
    TorchScript keeps and ONNX turns into its DFT operator) or, with ``basis_fourier``, as DFT-basis products;
    convolutions in ``precision`` with the Fourier units kept in float32."""
    generator = fold_all_batchnorms(model.generator)  # a copy: the loaded model is untouched
    if basis_fourier:
        with_basis_fourier_units(generator)
    generator = generator.to(EXPORT_DTYPES[precision])
    for module in generator.modules():
        if isinstance(module, FourierUnit | BasisFourierUnit):
            module.float()
    return InpaintingCall(generator.requires_grad_(False), model.concat_mask, blend).eval()


def fewest_multiples(multiple: int, minimum: int) -> int:
    """How many times ``multiple`` the smallest side the generator takes is."""
    return -(-minimum // multiple)


def example_inputs(multiple: int, minimum: int, square: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch to trace with: two items (torch.export specialises a size of 1) and sides above the minimum that
    differ (so that nothing is specialised to a square), except for a square-only generator."""
    side = fewest_multiples(multiple, minimum) + 1
    height, width = multiple * side, multiple * (side if square else side + 1)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, height, width, generator=generator)
    mask = (torch.rand(2, 1, height, width, generator=generator) > 0.5).float()
    return image, mask


def square_only(model: InpaintingModel) -> bool:
    """Whether the generator has a local Fourier unit, which (as officially) folds both axes at half the height and
    so runs only on square inputs."""
    return any(isinstance(module, SpectralTransform) and module.enable_lfu for module in model.generator.modules())
