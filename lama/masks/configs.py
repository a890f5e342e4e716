"""The official mask configs, under the names the paper uses.

Training (``configs/training/data/*.yaml`` of the official code, ``data.train.mask_gen_kwargs``):

- ``wide``: ``abl-04-256-mh-dist``, the masks of every model in the paper's main tables;
- ``narrow``: ``abl-02-thin-bb``, the DeepFill-v2-like masks of Table 4;
- ``outpainting``: the official ``OutpaintingMaskGenerator`` defaults (no paper model uses it).

Evaluation (``configs/data_gen/random_<width>_<size>.yaml``): ``thin_256`` … ``thick_512``; the README of the
official code maps Narrow = thin, Medium = medium, Wide = thick. The official file names with the ``random_``
prefix are accepted as aliases.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


def _strokes(min_times: int, max_times: int, max_width: int, max_len: int, max_angle: int = 4) -> dict[str, int]:
    return {"min_times": min_times, "max_times": max_times, "max_width": max_width, "max_angle": max_angle,
            "max_len": max_len}


def _boxes(margin: int, bbox_min_size: int, bbox_max_size: int, min_times: int, max_times: int) -> dict[str, int]:
    return {"margin": margin, "bbox_min_size": bbox_min_size, "bbox_max_size": bbox_max_size,
            "min_times": min_times, "max_times": max_times}


TRAIN_CONFIGS: dict[str, dict[str, Any]] = {
    "wide": {
        "irregular_proba": 1, "irregular_kwargs": _strokes(1, 5, max_width=100, max_len=200),
        "box_proba": 1, "box_kwargs": _boxes(10, 30, 150, 1, 4),
    },
    "narrow": {
        "irregular_proba": 1, "irregular_kwargs": _strokes(4, 12, max_width=40, max_len=80),
        "box_proba": 1, "box_kwargs": _boxes(0, 30, 128, 1, 1),
    },
    "outpainting": {"outpainting_proba": 1, "outpainting_kwargs": {}},
}


@dataclass(frozen=True)
class EvalSetConfig:
    """How the official ``gen_mask_dataset.py`` turns one image into an eval (image, mask) pair."""

    generator: dict[str, Any]
    out_min_size: int
    variants_n: int = 5
    handle_small_mode: str = "upscale"  # or "drop"
    out_square_crop: bool = True
    crop_min_overlap: float = 1.0
    max_tamper_area: float = 0.5
    max_masks_per_image: int = 1
    attempts: int = 10  # the official builder retries an image 10 times before giving up on it

    def __post_init__(self) -> None:
        if self.handle_small_mode not in ("upscale", "drop"):
            raise ValueError(f"handle_small_mode must be 'upscale' or 'drop', got {self.handle_small_mode!r}")
        for name in ("out_min_size", "variants_n", "max_masks_per_image", "attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.max_tamper_area <= 1 or not 0 <= self.crop_min_overlap <= 1:
            raise ValueError(
                f"need 0 < max_tamper_area <= 1 and 0 <= crop_min_overlap <= 1, got {self.max_tamper_area}, "
                f"{self.crop_min_overlap}"
            )


def _eval(size: int, strokes: dict[str, int], boxes: dict[str, int] | None = None) -> EvalSetConfig:
    generator: dict[str, Any] = {"irregular_proba": 1, "irregular_kwargs": strokes}
    if boxes is not None:
        generator.update(box_proba=0.3, box_kwargs=boxes)
    return EvalSetConfig(generator=generator, out_min_size=size)


EVAL_CONFIGS: dict[str, EvalSetConfig] = {
    "thin_256": _eval(256, _strokes(4, 50, max_width=10, max_len=40)),
    "medium_256": _eval(256, _strokes(4, 5, max_width=50, max_len=100), _boxes(0, 10, 50, 1, 5)),
    "thick_256": _eval(256, _strokes(1, 5, max_width=100, max_len=200), _boxes(10, 30, 150, 1, 3)),
    "thin_512": _eval(512, _strokes(4, 70, max_width=20, max_len=100)),
    "medium_512": _eval(512, _strokes(4, 10, max_width=100, max_len=200), _boxes(0, 30, 150, 1, 5)),
    "thick_512": _eval(512, _strokes(1, 5, max_width=250, max_len=450), _boxes(10, 30, 300, 1, 4)),
}
# The image files an eval mask set is built from unless told otherwise (``lama masks --ext``).
DEFAULT_EXTENSIONS = (".png", ".jpg", ".jpeg")


# Stroke and box lengths in pixels: what scales with the image side when a config is used at another size.
_SCALED_KEYS = {"max_width", "max_len", "margin", "bbox_min_size", "bbox_max_size"}
# The crop side the official training configs were made for (abl-04-256-..., the paper's 256² training crops).
TRAIN_MASK_SIZE = 256


def scale_lengths(generator: dict[str, Any], factor: float) -> dict[str, Any]:
    """A generator config with every stroke and box length multiplied by ``factor`` (rounded, at least 1 px); the
    counts and angles stay. A factor of 1 returns an equal config, so the masks are the official ones bit for bit."""

    if factor == 1:  # a zero margin would otherwise become 1 px
        return copy.deepcopy(generator)

    def scale(section: dict[str, Any]) -> dict[str, Any]:
        return {key: max(1, round(value * factor)) if key in _SCALED_KEYS else value for key, value in section.items()}

    return {key: scale(value) if isinstance(value, dict) else value for key, value in generator.items()}


def scaled_eval_config(kind: str, size: int) -> EvalSetConfig:
    """``kind`` masks for ``size``² images: the official config of the nearest smaller size (256 below 512) with
    its lengths scaled by size / base, the recipe for the paper's resolution study (Fig. 6, 256 to 1536)."""
    base = 512 if size >= 512 else 256
    official = EVAL_CONFIGS[f"{kind}_{base}"]
    return EvalSetConfig(generator=scale_lengths(official.generator, size / base), out_min_size=size)


def generator_config_for_size(name: str, size: int) -> dict[str, Any]:
    """The generator config ``name`` (a training or eval config) with its lengths scaled from the size it was made
    for to ``size``: the official ``wide`` masks cover about 36 % of a 256² crop, but 66 % of a 64² crop (35 % of
    them all of it), where a generator sees too little to learn from; scaled, a 64² crop gets 41 %. KeyError if
    ``name`` is not a known config."""
    if name in TRAIN_CONFIGS:
        return scale_lengths(TRAIN_CONFIGS[name], size / TRAIN_MASK_SIZE)
    config = eval_set_config(name)
    return scale_lengths(config.generator, size / config.out_min_size)


def eval_set_config(name: str) -> EvalSetConfig:
    """The eval config ``name``: an official one (``thin_256`` or ``random_thin_256``) or a scaled ``<kind>_<size>``
    such as ``thick_1024`` (:func:`scaled_eval_config`); KeyError if neither."""
    name = name.removeprefix("random_")
    if name in EVAL_CONFIGS:
        return EVAL_CONFIGS[name]
    kind, _, size = name.partition("_")
    if kind in ("thin", "medium", "thick") and size.isdigit() and 32 <= int(size) <= 8192:
        return scaled_eval_config(kind, int(size))
    raise KeyError(name)


def known_config_names() -> list[str]:
    return [*TRAIN_CONFIGS, *EVAL_CONFIGS]
