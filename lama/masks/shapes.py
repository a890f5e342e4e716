"""The official LaMa mask shapes, drawn with the official sequence of random draws.

Each drawer takes a legacy ``numpy.random.RandomState`` and makes exactly the calls the official
generators make on numpy's global state, in the same order, so a ``RandomState(s)`` replays the
official masks for ``np.random.seed(s)`` bit for bit (``tests/masks`` checks this on the fixtures).

Official quirks reproduced on purpose, because the paper's masks depend on them:

- strokes: the stroke count is uniform in ``[min_times, max_times + 1]`` (the official linear ramp adds one
  even when no ramp is configured); angles are whole radians plus 0.01 (``0.01 + randint(max_angle)``),
  mirrored to ``2 * 3.1415926 - angle`` on even strokes; end points are truncated towards zero and clipped to
  ``[0, W]`` / ``[0, H]`` (not ``W - 1``); every segment is an 8-connected ``cv2.line`` of width
  ``5 + randint(max_width)``;
- boxes: sides are uniform in ``[bbox_min_size, min(bbox_max_size, H - 2 margin - 1, W - 2 margin - 1)]``;
- outpainting: the left and right padding fractions are drawn on the height's grid and the top and bottom ones
  on the width's grid (the official code swaps them); the four fractions are drawn before the sides are chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# The official code writes pi as this literal; the mirrored angles (and so the masks) depend on it.
OFFICIAL_TWO_PI = 2 * 3.1415926
MAX_SEGMENTS = 5


@dataclass(frozen=True)
class StrokeParams:
    """Polygonal chains of thick lines (official ``irregular_kwargs``)."""

    max_angle: int = 4
    max_len: int = 60
    max_width: int = 20
    min_times: int = 0
    max_times: int = 10

    def __post_init__(self) -> None:
        _require_positive(self, "max_angle", "max_len", "max_width")
        _require_range(self, "min_times", "max_times")


@dataclass(frozen=True)
class BoxParams:
    """Axis-aligned filled rectangles (official ``box_kwargs``)."""

    margin: int = 10
    bbox_min_size: int = 30
    bbox_max_size: int = 100
    min_times: int = 0
    max_times: int = 3

    def __post_init__(self) -> None:
        if self.margin < 0 or self.bbox_min_size < 1:
            raise ValueError(f"box masks: margin must be >= 0 and bbox_min_size >= 1, got {self}")
        if self.bbox_max_size < self.bbox_min_size:
            raise ValueError(f"box masks: bbox_max_size {self.bbox_max_size} < bbox_min_size {self.bbox_min_size}")
        _require_range(self, "min_times", "max_times")


@dataclass(frozen=True)
class OutpaintingParams:
    """Bands along the image borders (official ``OutpaintingMaskGenerator`` arguments)."""

    min_padding_percent: float = 0.04
    max_padding_percent: float = 0.25
    left_padding_prob: float = 0.5
    top_padding_prob: float = 0.5
    right_padding_prob: float = 0.5
    bottom_padding_prob: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.min_padding_percent <= self.max_padding_percent <= 1 or self.max_padding_percent <= 0:
            raise ValueError(
                "outpainting masks: need 0 <= min_padding_percent <= max_padding_percent <= 1 and a positive "
                f"max_padding_percent, got {self.min_padding_percent}, {self.max_padding_percent}"
            )
        probs = self.side_probs
        if not all(0 <= p <= 1 for p in probs) or sum(probs) <= 0:
            raise ValueError(f"outpainting masks: side probabilities must lie in [0, 1], not all 0, got {probs}")

    @property
    def side_probs(self) -> tuple[float, float, float, float]:
        return (self.left_padding_prob, self.top_padding_prob, self.right_padding_prob, self.bottom_padding_prob)


def _require_positive(params: object, *names: str) -> None:
    for name in names:
        if getattr(params, name) < 1:
            raise ValueError(f"{type(params).__name__}.{name} must be >= 1, got {getattr(params, name)}")


def _require_range(params: object, low: str, high: str) -> None:
    if not 0 <= getattr(params, low) <= getattr(params, high):
        raise ValueError(
            f"{type(params).__name__}: need 0 <= {low} <= {high}, got {getattr(params, low)}, {getattr(params, high)}"
        )


class StrokeDrawer:
    """Draws official irregular masks; the sines and cosines of the few possible angles are tabulated once."""

    def __init__(self, params: StrokeParams) -> None:
        self.params = params
        angles = 0.01 + np.arange(params.max_angle, dtype=np.float64)
        mirrored = OFFICIAL_TWO_PI - angles
        # numpy's sin/cos (not math's) so the end points are the official ones to the last bit.
        self._steps = (
            (np.sin(mirrored).tolist(), np.cos(mirrored).tolist()),  # even strokes
            (np.sin(angles).tolist(), np.cos(angles).tolist()),  # odd strokes
        )

    def draw(self, rng: np.random.RandomState, mask: np.ndarray) -> None:
        p = self.params
        height, width = mask.shape
        randint = rng.randint
        for stroke in range(randint(p.min_times, p.max_times + 2)):
            sines, cosines = self._steps[stroke % 2]
            x = randint(width)
            y = randint(height)
            for _ in range(1 + randint(MAX_SEGMENTS)):
                angle = randint(p.max_angle)
                length = 10 + randint(p.max_len)
                thickness = 5 + randint(p.max_width)
                end_x = min(max(math.trunc(x + length * sines[angle]), 0), width)
                end_y = min(max(math.trunc(y + length * cosines[angle]), 0), height)
                cv2.line(mask, (x, y), (end_x, end_y), 1, thickness)
                x, y = end_x, end_y


class BoxDrawer:
    """Draws official box masks."""

    def __init__(self, params: BoxParams) -> None:
        self.params = params

    def draw(self, rng: np.random.RandomState, mask: np.ndarray) -> None:
        p = self.params
        height, width = mask.shape
        side_limit = min(p.bbox_max_size + 1, height - 2 * p.margin, width - 2 * p.margin)
        if side_limit <= p.bbox_min_size:
            raise ValueError(
                f"box masks: a {height}x{width} image with margin {p.margin} has no room for "
                f"bbox_min_size {p.bbox_min_size}"
            )
        randint = rng.randint
        for _ in range(randint(p.min_times, p.max_times + 1)):
            box_w = randint(p.bbox_min_size, side_limit)
            box_h = randint(p.bbox_min_size, side_limit)
            x = randint(p.margin, width - p.margin - box_w + 1)
            y = randint(p.margin, height - p.margin - box_h + 1)
            mask[y : y + box_h, x : x + box_w] = 1


class OutpaintingDrawer:
    """Draws official outpainting masks: a band along each chosen border."""

    def __init__(self, params: OutpaintingParams) -> None:
        self.params = params
        probs = np.asarray(params.side_probs, dtype=np.float64)
        self._fallback_probs = probs / probs.sum()

    def _fraction(self, rng: np.random.RandomState, size: int) -> float:
        low = int(self.params.min_padding_percent * size)
        high = int(self.params.max_padding_percent * size)
        if high <= low:
            raise ValueError(f"outpainting masks: padding range [{low}, {high}) pixels is empty for side {size}")
        return rng.randint(low, high) / size

    def draw(self, rng: np.random.RandomState, mask: np.ndarray) -> None:
        height, width = mask.shape
        left = self._fraction(rng, height)
        top = self._fraction(rng, width)
        right = self._fraction(rng, height)
        bottom = self._fraction(rng, width)
        bands = (
            (slice(None), slice(0, int(left * width))),
            (slice(0, int(top * height)), slice(None)),
            (slice(None), slice(int((1 - right) * width), width)),
            (slice(int((1 - bottom) * height), height), slice(None)),
        )
        chosen = [rng.random_sample() < p for p in self.params.side_probs]
        if not any(chosen):
            chosen[rng.choice(len(bands), p=self._fallback_probs)] = True
        for band, on in zip(bands, chosen, strict=True):
            if on:
                mask[band] = 1
