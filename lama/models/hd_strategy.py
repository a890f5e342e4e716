"""High-resolution strategies: which pieces of an image go through the model, and how their results come back.

A strategy cuts an image into tiles (``original``: the whole image; ``resize``: a copy whose long side is at most
the limit; ``crop``: each connected hole region's bounding box plus a margin), the model inpaints the tiles (so
tiles of equal size from several images can share a batch), and the strategy pastes the results back. Only hole
pixels are ever pasted, so the known pixels of the result are the input's own, bit for bit, in every strategy.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lama.models.inference_options import (
    DEFAULT_CROP_MARGIN,
    DEFAULT_CROP_TRIGGER_SIZE,
    DEFAULT_HD_STRATEGY,
    DEFAULT_RESIZE_LIMIT,
    HD_STRATEGIES,
    InferenceOptions,
)

Box = tuple[int, int, int, int]  # top, left, bottom, right (exclusive)


@dataclass(frozen=True)
class Tile:
    """A piece to inpaint: float32 CHW image in [0, 1] and [1,h,w] mask (values > 0 are holes)."""

    image: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class Plan:
    """The tiles of one image and what pasting their results back needs (``boxes``/``owners`` for crops)."""

    tiles: list[Tile]
    boxes: list[Box] | None = None
    owners: list[np.ndarray] | None = None  # per crop: the hole pixels of its box that its result fills
    resized: bool = False


@dataclass(frozen=True)
class HDStrategy:
    """One of ``HD_STRATEGIES`` with IOPaint's settings; ``resize`` and ``crop`` leave an image whose long side is
    within their limit to ``original``."""

    name: str = DEFAULT_HD_STRATEGY
    resize_limit: int = DEFAULT_RESIZE_LIMIT
    crop_trigger_size: int = DEFAULT_CROP_TRIGGER_SIZE
    crop_margin: int = DEFAULT_CROP_MARGIN

    def __post_init__(self) -> None:
        if self.name not in HD_STRATEGIES:
            raise ValueError(f"hd_strategy={self.name!r}: expected one of {', '.join(HD_STRATEGIES)}")

    @classmethod
    def from_options(cls, options: InferenceOptions) -> HDStrategy:
        return cls(options.hd_strategy, options.hd_strategy_resize_limit, options.hd_strategy_crop_trigger_size,
                   options.hd_strategy_crop_margin)

    def plan(self, image: np.ndarray, mask: np.ndarray) -> Plan:
        """The tiles to inpaint for a CHW image and its [1,H,W] mask."""
        long_side = max(image.shape[-2:])
        if self.name == "resize" and long_side > self.resize_limit:
            return Plan([_downscaled(image, mask, self.resize_limit)], resized=True) if mask.any() else Plan([])
        if self.name == "crop" and long_side > self.crop_trigger_size:
            return _crops(image, mask, self.crop_margin)
        return Plan([Tile(image, mask)])

    def compose(self, image: np.ndarray, mask: np.ndarray, plan: Plan, results: list[np.ndarray]) -> np.ndarray:
        """The whole float32 CHW result from the tiles' inpainted results (same order as ``plan.tiles``)."""
        if plan.resized:
            height, width = image.shape[-2:]
            upscaled = cv2.resize(results[0].transpose(1, 2, 0), (width, height), interpolation=cv2.INTER_CUBIC)
            return np.where(mask > 0, np.clip(upscaled, 0, 1).transpose(2, 0, 1), image)
        if plan.boxes is None:
            return results[0] if plan.tiles else image
        composed = image.copy()
        for (top, left, bottom, right), owner, result in zip(plan.boxes, plan.owners, results, strict=True):
            region = composed[:, top:bottom, left:right]
            region[:, owner] = result[:, owner]
        return composed


def _downscaled(image: np.ndarray, mask: np.ndarray, limit: int) -> Tile:
    """The image with its long side at ``limit``, area-averaged; a low-resolution pixel is a hole if any pixel
    under it is, so thin strokes survive the downscale."""
    height, width = image.shape[-2:]
    scale = limit / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # OpenCV's (width, height)
    small = cv2.resize(image.transpose(1, 2, 0), size, interpolation=cv2.INTER_AREA).transpose(2, 0, 1)
    small_mask = cv2.resize((mask[0] > 0).astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    return Tile(np.ascontiguousarray(small), small_mask[None].astype(np.float32))


def _crops(image: np.ndarray, mask: np.ndarray, margin: int) -> Plan:
    """A crop per 8-connected hole region: its bounding box grown by ``margin`` on each side within the image.
    A crop keeps every hole inside its box as a hole (no other region's unfilled pixels pass for known ones) and
    fills only its own region, so overlapping boxes never overwrite each other's pixels."""
    height, width = image.shape[-2:]
    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask[0] > 0).astype(np.uint8), connectivity=8)
    tiles, boxes, owners = [], [], []
    for label in range(1, count):
        left, top, box_width, box_height = (int(value) for value in stats[label, :4])
        box = (max(0, top - margin), max(0, left - margin),
               min(height, top + box_height + margin), min(width, left + box_width + margin))
        top_, left_, bottom, right = box
        tiles.append(Tile(np.ascontiguousarray(image[:, top_:bottom, left_:right]),
                          np.ascontiguousarray(mask[:, top_:bottom, left_:right])))
        boxes.append(box)
        owners.append(labels[top_:bottom, left_:right] == label)
    return Plan(tiles, boxes, owners)
