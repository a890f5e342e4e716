"""Validation during training: the val mask set, split over ranks, scored like the official online evaluator.

Scores are computed on the blend the official evaluator scores (``inpainted``: known pixels from the image, holes
from the generator), with the generator in eval mode. ``lama.eval.ValidationMetrics`` gathers per-image values and
Inception features from every rank, so all ranks agree on the numbers and on the best checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from lama.eval.metrics import ValidationMetrics
from lama.imageio.eval_layout import MaskImagePair, find_pairs, read_image, read_mask


class ValidationSet(Dataset):
    """(image, mask) pairs of an eval mask set in the official layout, this rank's share of them."""

    def __init__(self, folder: str | Path, rank: int = 0, world_size: int = 1, limit: int | None = None) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: validation mask set not found (data.val; build it with lama masks)")
        pairs = find_pairs(folder, folder)
        if limit is not None:
            pairs = pairs[:limit]
        if len(pairs) < 2:
            raise ValueError(f"{folder}: {len(pairs)} image/mask pairs; validation needs at least 2 (FID)")
        missing = [pair.image for pair in pairs if not pair.image.is_file()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: the image of a val mask is missing")
        self.pairs: list[MaskImagePair] = pairs[rank::world_size]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        pair = self.pairs[index]
        image, mask = read_image(pair.image), read_mask(pair.mask)
        if image.shape[1:] != mask.shape[1:]:
            raise ValueError(f"{pair.mask}: mask size {mask.shape[1:]} differs from its image {image.shape[1:]}")
        return torch.from_numpy(image), torch.from_numpy((mask > 0.5).astype(np.float32))


@torch.no_grad()
def validate(model: nn.Module, data: ValidationSet, metrics: ValidationMetrics, batch_size: int,
             device: torch.device) -> dict[str, float]:
    """Scores of ``model`` (an ``InpaintingModel``) on ``data``; restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    metrics.reset()
    try:
        for image, mask in DataLoader(data, batch_size=batch_size):
            image, mask = image.to(device), mask.to(device)
            predicted = model(image, mask).float()
            metrics.update(mask * predicted + (1 - mask) * image, image, mask)
        return metrics.compute()
    finally:
        model.train(was_training)


def sample_grid(image: Tensor, mask: Tensor, predicted: Tensor, count: int) -> np.ndarray:
    """HWC uint8 rows of (masked input | mask | inpainted | ground truth) for the first ``count`` samples."""
    image, mask, predicted = (t[:count].detach().float().cpu().clamp(0, 1) for t in (image, mask, predicted))
    masked = image * (1 - mask)
    inpainted = mask * predicted + (1 - mask) * image
    rows = [torch.cat([masked[i], mask[i].expand(3, -1, -1), inpainted[i], image[i]], dim=2)
            for i in range(image.shape[0])]
    grid = torch.cat(rows, dim=1)
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
