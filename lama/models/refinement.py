"""The official multi-scale feature refinement (Kulshreshtha et al. 2022, ``refine=True`` of the official predict).

The generator is split where its residual blocks start: the front (encoder) turns the masked image into bottleneck
features once per level, and those features, not the weights, are optimised with Adam so that the rear's output
matches the known pixels and, inside large holes, the coarser level's result. Levels come from an image pyramid
(5×5 Gaussian, σ 1, halving), coarsest first; the coarsest is not optimised. The behaviour pinned down by
``fixtures/refinement`` is followed exactly, with differences that change no fixture: it runs on the CPU
as well as on one or several GPUs (the rear's layers shared out over ``gpu_ids``), in bf16 as well as fp32 (the
features and Adam stay in float32), and an image above ``px_budget`` is refined at the budget and its holes pasted
back at full size (the official script writes the reduced image). ``checkpoint_blocks`` (not official) recomputes
each residual block in the backward pass instead of keeping its activations: same result, a fraction of the memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import kornia
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn
from torch.utils.checkpoint import checkpoint

from lama.models.inference_options import RefinerOptions
from lama.models.parts import RESIDUAL_BLOCKS, generator_parts

# A mask value counts as a hole from here up; a downscaled mask pixel is wholly a hole from 1 - this up.
HOLE_THRESHOLD = 1e-8
BLUR_KERNEL, BLUR_SIGMA = 5, 1.0
EROSION_SIZE = 15  # the elliptical structuring element that keeps the coarse reference off the hole's rim

Features = torch.Tensor | tuple[torch.Tensor, ...]


@dataclass
class LevelTrace:
    """What one pyramid level did: its size, and the loss at each forward (NaN where no pixel ties it to the
    coarser level, as officially); empty lists for the coarsest level, which is not optimised."""

    size_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    losses: list[float] = field(default_factory=list)
    losses_known_term: list[float] = field(default_factory=list)
    reference_pixels: int = 0


class SplitGenerator:
    """A generator cut into a front (everything before the first residual block) and rear segments, each on its
    device: with several devices the residual blocks are shared out evenly and the decoder follows the last."""

    def __init__(self, generator: nn.Module, devices: Sequence[torch.device | str],
                 checkpoint_blocks: bool = False) -> None:
        parts = generator_parts(generator)
        self.checkpoint_blocks = checkpoint_blocks
        self.devices = [torch.device(device) for device in devices] or [torch.device("cpu")]
        self.front = nn.Sequential(*parts["encoder"]).to(self.devices[0])
        blocks = parts["bottleneck"]
        bounds = [round(len(blocks) * index / len(self.devices)) for index in range(len(self.devices) + 1)]
        self.rear = [nn.Sequential(*blocks[start:end]).to(device)
                     for start, end, device in zip(bounds, bounds[1:], self.devices, strict=False)]
        self.rear[-1].extend(nn.Sequential(*parts["decoder"]).to(self.devices[-1]))

    def rear_forward(self, features: Features) -> torch.Tensor:
        recompute = self.checkpoint_blocks and torch.is_grad_enabled()
        for segment, device in zip(self.rear, self.devices, strict=True):
            features = _to(features, device)
            for layer in segment:
                if recompute and isinstance(layer, RESIDUAL_BLOCKS):
                    features = checkpoint(layer, features, use_reentrant=False)
                else:
                    features = layer(features)
        return _to(features, self.devices[0])


def _to(features: Features, device: torch.device, dtype: torch.dtype | None = None) -> Features:
    if isinstance(features, tuple):
        return tuple(_to(part, device, dtype) for part in features)
    return features.to(device, dtype) if torch.is_tensor(features) else features


def scale_count(height: int, width: int, options: RefinerOptions) -> int:
    """Levels of the pyramid: one more per doubling of the short side above ``min_side`` (rounded), at most
    ``max_scales``. With the defaults at most two, since the pixel budget caps the short side near 1341."""
    extra = round(max(0.0, math.log2(min(height, width) / options.min_side)))
    return min(1 + extra, options.max_scales)


def budget_size(height: int, width: int, px_budget: int) -> tuple[int, int]:
    """The size an image is refined at: its own, or scaled to ``px_budget`` pixels (floored) when larger."""
    if height * width <= px_budget:
        return height, width
    ratio = math.sqrt(px_budget / (height * width))
    return int(height * ratio), int(width * ratio)


def downscale(image: torch.Tensor) -> torch.Tensor:
    """One pyramid step: Gaussian blur (reflected border), then bilinear to half size, floored."""
    blurred = kornia.filters.gaussian_blur2d(image, (BLUR_KERNEL, BLUR_KERNEL), (BLUR_SIGMA, BLUR_SIGMA),
                                             border_type="reflect")
    return _resize(blurred, (image.shape[-2] // 2, image.shape[-1] // 2))


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False)


def _binary(mask: torch.Tensor, threshold: float = HOLE_THRESHOLD) -> torch.Tensor:
    return (mask >= threshold).to(mask.dtype)


def pyramid(image: torch.Tensor, mask: torch.Tensor, levels: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(image, mask) per level, coarsest first; each coarser mask is a hole wherever any hole reached it."""
    found = [(image, mask)]
    for _ in range(levels - 1):
        image, mask = downscale(image), _binary(downscale(mask))
        found.append((image, mask))
    return found[::-1]


def erosion_kernel(device: torch.device | str = "cpu") -> torch.Tensor:
    """The 15×15 ellipse OpenCV draws (``cv2.getStructuringElement``), as the official refiner uses it."""
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (EROSION_SIZE, EROSION_SIZE))
    return torch.from_numpy(ellipse).to(device, torch.float32)


def reference_mask(mask: torch.Tensor) -> torch.Tensor:
    """Where a level's downscaled prediction is tied to the coarser result: the low-resolution pixels wholly inside
    the hole, eroded by the ellipse (pixels outside the image do not erode), so only the interior of large holes."""
    height, width = mask.shape[-2:]
    inside = _binary(_resize(mask, (height // 2, width // 2)), 1 - HOLE_THRESHOLD)
    eroded = kornia.morphology.erosion(inside, erosion_kernel(mask.device))
    return _binary(eroded, 1 - HOLE_THRESHOLD).bool()


def _pad(tensor: torch.Tensor, modulo: int) -> torch.Tensor:
    """Bottom/right padding to a multiple of ``modulo``, PyTorch 'reflect' (the edge row is not repeated)."""
    pad_h, pad_w = -tensor.shape[-2] % modulo, -tensor.shape[-1] % modulo
    return F.pad(tensor, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else tensor


class Refiner:
    """Refines single images with a generator split into front and rear; the generator's weights never change."""

    def __init__(self, generator: nn.Module, options: RefinerOptions | None = None,
                 devices: Sequence[torch.device | str] = ("cpu",), dtype: torch.dtype = torch.float32,
                 memory_format: torch.memory_format = torch.contiguous_format, concat_mask: bool = True) -> None:
        if not concat_mask:
            raise ValueError("the refinement needs a generator that takes the mask as its fourth input channel")
        self.options = options or RefinerOptions()
        self.split = SplitGenerator(generator, devices, self.options.checkpoint_blocks)
        self.device = self.split.devices[0]
        self.dtype = dtype
        self.memory_format = memory_format

    def refine(self, image: torch.Tensor, mask: torch.Tensor, trace: list[LevelTrace] | None = None
               ) -> torch.Tensor:
        """The refined, blended [1,3,H,W] result for a [1,3,H,W] image in [0,1] and a [1,1,H,W] mask (values
        above 1e-8 are holes, soft masks allowed); known pixels come back unchanged. ``trace`` gets a
        :class:`LevelTrace` per level, coarsest first."""
        image = image.to(self.device, torch.float32)
        mask = mask.to(self.device, torch.float32)
        height, width = image.shape[-2:]
        size = budget_size(height, width, self.options.px_budget)
        if size == (height, width):
            return self._refine_levels(image, mask, trace)
        small_mask = _resize(mask, size)
        small_mask[small_mask > HOLE_THRESHOLD] = 1
        small = self._refine_levels(_resize(image, size), small_mask, trace)
        hole = _binary(mask)
        return hole * _resize(small, (height, width)).clamp(0, 1) + (1 - hole) * image

    def _refine_levels(self, image: torch.Tensor, mask: torch.Tensor, trace: list[LevelTrace] | None
                       ) -> torch.Tensor:
        reference = None
        for level_image, level_mask in pyramid(image, mask, scale_count(*image.shape[-2:], self.options)):
            level = LevelTrace(tuple(level_image.shape[-2:]), (0, 0))
            reference = self._refine_level(level_image, level_mask, reference, level)
            if trace is not None:
                trace.append(level)
        return reference

    def _refine_level(self, image: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None,
                      trace: LevelTrace) -> torch.Tensor:
        height, width = image.shape[-2:]
        padded_image, padded_mask = _pad(image, self.options.modulo), _binary(_pad(mask, self.options.modulo))
        trace.padded_hw = tuple(padded_image.shape[-2:])
        with torch.no_grad():
            generator_input = torch.cat([padded_image * (1 - padded_mask), padded_mask], dim=1)
            features = self.split.front(generator_input.to(self.dtype, memory_format=self.memory_format))
        leaves = [part.detach().float().requires_grad_() for part in _parts(features) if torch.is_tensor(part)]
        if reference is None:  # the coarsest level has nothing to match: one forward
            with torch.no_grad():
                predicted = self._rear(leaves, features)
        else:
            predicted = self._optimise(leaves, features, padded_image, padded_mask, reference, trace)
        blended = padded_mask * predicted + (1 - padded_mask) * padded_image
        return blended[..., :height, :width]

    def _optimise(self, leaves: list[torch.Tensor], features: Features, image: torch.Tensor, mask: torch.Tensor,
                  reference: torch.Tensor, trace: LevelTrace) -> torch.Tensor:
        """``n_iters`` forwards with an Adam step after each but the last, whose prediction is the level's."""
        size = trace.size_hw
        tied = reference_mask(mask[..., :size[0], :size[1]]).expand_as(reference)
        known = (mask == 0).expand_as(image)
        trace.reference_pixels = int(tied[:, 0].sum())
        optimiser = torch.optim.Adam(leaves, lr=self.options.lr)
        predicted = None
        for step in range(self.options.n_iters):
            last = step == self.options.n_iters - 1
            with torch.set_grad_enabled(not last):
                predicted = self._rear(leaves, features)
                known_term = (predicted - image).abs()[known].mean()
                coarse = downscale(predicted[..., :size[0], :size[1]])
                reference_term = (coarse - reference).abs()[tied].mean() if tied.any() else None
                loss = known_term if reference_term is None else known_term + reference_term
                trace.losses.append(float("nan") if reference_term is None else loss.item())
                trace.losses_known_term.append(known_term.item())
                if not last:
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
        return predicted.detach()

    def _rear(self, leaves: list[torch.Tensor], features: Features) -> torch.Tensor:
        """The rear's output for the optimised features, in the front's layout (an FFC's (local, global) pair,
        whose global part may be an empty 0, or one tensor)."""
        optimised = iter(leaf.to(self.dtype) for leaf in leaves)
        parts = [next(optimised) if torch.is_tensor(part) else part for part in _parts(features)]
        return self.split.rear_forward(tuple(parts) if isinstance(features, tuple) else parts[0]).float()


def _parts(features: Features) -> list:
    return list(features) if isinstance(features, tuple) else [features]
