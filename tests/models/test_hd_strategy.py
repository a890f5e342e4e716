"""High-resolution strategies: known pixels exact in every strategy, border-touching and several regions, a mask
covering everything, an empty mask; below their trigger they are the plain path, bit for bit."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from lama.models.hd_strategy import HDStrategy
from lama.models.inference_options import HD_STRATEGIES, InferenceOptions
from lama.models.model_dir import load_model
from lama.predict import Inpainter, to_uint8
from tests.conftest import FIXTURES

SIZE = (900, 1100)  # above both triggers of the defaults (800 for crop, 1280 is lowered below for resize)


@cache
def _model():
    return load_model(FIXTURES / "tiny-biglama", map_location="cpu")


def _inpainter(strategy: str, **settings) -> Inpainter:
    return Inpainter(_model(), "cpu", inference=InferenceOptions(hd_strategy=strategy, **settings))


def _image(seed: int = 0) -> np.ndarray:
    """A smooth random image (float32 CHW, 8-bit values / 255, as read from a PNG)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(3, 9, 11)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None], size=SIZE, mode="bicubic")[0]
    return np.round(smooth.clamp(0, 255).numpy()) / 255


def _regions_mask() -> np.ndarray:
    """Three hole regions: one touching the top-left corner, a thin diagonal stroke, one on the right border."""
    mask = np.zeros((1, *SIZE), np.float32)
    mask[0, :60, :90] = 1
    for offset in range(300):
        mask[0, 400 + offset, 300 + offset:303 + offset] = 1
    mask[0, 200:320, 1040:] = 1
    return mask


def _known_exact(result: np.ndarray, image: np.ndarray, mask: np.ndarray) -> None:
    known = mask[0] == 0
    np.testing.assert_array_equal(result[known], to_uint8(image)[known])


@pytest.mark.parametrize("strategy", HD_STRATEGIES)
def test_known_pixels_stay_exact_and_every_region_is_filled(fixtures: Path, strategy: str) -> None:
    image, mask = _image(), _regions_mask()
    result = _inpainter(strategy, hd_strategy_resize_limit=640).predict(image, mask)
    assert result.shape == (*SIZE, 3)
    _known_exact(result, image, mask)
    hole = mask[0] > 0
    assert np.abs(result[hole].astype(int) - to_uint8(image)[hole]).mean() > 1  # the holes were inpainted


def test_crop_inpaints_one_box_per_region_with_the_margin_inside_the_image() -> None:
    image, mask = _image(), _regions_mask()
    plan = HDStrategy("crop", crop_margin=128).plan(image, mask)
    # the regions' bounding boxes grown by 128, cut at the image
    assert sorted(plan.boxes) == [(0, 0, 188, 218), (72, 912, 448, 1100), (272, 172, 828, 730)]
    for (top, left, bottom, right), tile, owner in zip(plan.boxes, plan.tiles, plan.owners, strict=True):
        assert tile.image.shape[1:] == (bottom - top, right - left) == owner.shape
        np.testing.assert_array_equal(tile.mask, mask[:, top:bottom, left:right])
    owned = sum(np.pad(owner, ((top, SIZE[0] - bottom), (left, SIZE[1] - right)))
                for (top, left, bottom, right), owner in zip(plan.boxes, plan.owners, strict=True))
    np.testing.assert_array_equal(owned, mask[0] > 0)  # every hole pixel filled by exactly one crop


def test_each_region_takes_its_own_crops_result() -> None:
    image, mask = _image(), _regions_mask()
    strategy = HDStrategy("crop")
    plan = strategy.plan(image, mask)
    results = [np.full_like(tile.image, index / 10) for index, tile in enumerate(plan.tiles)]
    composed = strategy.compose(image, mask, plan, results)
    for index, ((top, left, bottom, right), owner) in enumerate(zip(plan.boxes, plan.owners, strict=True)):
        assert (composed[:, top:bottom, left:right][:, owner] == np.float32(index / 10)).all()


def test_resize_keeps_thin_strokes_as_holes_at_the_limit() -> None:
    image, mask = _image(), np.zeros((1, *SIZE), np.float32)
    mask[0, 450, 100:1000] = 1  # one pixel high: area-averaged away by a plain resize's threshold at 0.5
    plan = HDStrategy("resize", resize_limit=550).plan(image, mask)
    (tile,) = plan.tiles
    assert max(tile.image.shape[1:]) == 550 and tile.image.shape[1:] == (450, 550)
    assert tile.mask[0].any(axis=1).sum() >= 1 and tile.mask.sum() >= 0.9 * 900 / 2


@pytest.mark.parametrize("strategy", ["resize", "crop"])
def test_below_the_trigger_a_strategy_is_the_plain_path_bit_for_bit(fixtures: Path, strategy: str) -> None:
    image, mask = _image()[:, :700, :780], _regions_mask()[:, :700, :780]
    plain = _inpainter("original").predict(image, mask)
    np.testing.assert_array_equal(_inpainter(strategy).predict(image, mask), plain)


def test_a_mask_covering_everything(fixtures: Path) -> None:
    image, mask = _image(), np.ones((1, *SIZE), np.float32)
    plan = HDStrategy("crop").plan(image, mask)
    assert plan.boxes == [(0, 0, *SIZE)]
    plain = _inpainter("original").predict(image, mask)
    np.testing.assert_array_equal(_inpainter("crop").predict(image, mask), plain)
    resized = _inpainter("resize", hd_strategy_resize_limit=640).predict(image, mask)
    assert resized.shape == plain.shape and (resized != to_uint8(image)).any(axis=-1).mean() > 0.9


@pytest.mark.parametrize("strategy", ["resize", "crop"])
def test_an_empty_mask_returns_the_image_without_inpainting(fixtures: Path, strategy: str) -> None:
    image, mask = _image(), np.zeros((1, *SIZE), np.float32)
    inpainter = _inpainter(strategy, hd_strategy_resize_limit=640)
    assert HDStrategy(strategy, resize_limit=640).plan(image, mask).tiles == []
    np.testing.assert_array_equal(inpainter.predict(image, mask), to_uint8(image))


def test_crop_with_refinement_keeps_known_pixels(fixtures: Path) -> None:
    from lama.models.inference_options import RefinerOptions

    image, mask = _image(), _regions_mask()
    inpainter = _inpainter("crop", refine=True, refiner=RefinerOptions(min_side=128, n_iters=2))
    _known_exact(inpainter.predict(image, mask), image, mask)
