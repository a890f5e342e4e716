"""Shared helpers for the evaluation tests: formula-weight networks and the eval-protocol images, built once.

The fixtures' networks carry formula weights (README §8.1); regenerating them is checked against ``formula.json``
before any activation is compared. Helpers are cached per process because several test modules need the same nets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lama.eval.fid import FIDInceptionV3
from lama.eval.lpips import LPIPSVGG
from tests.formula_weights import check_formula_hashes, formula_params, formula_state_dict


@contextmanager
def single_thread() -> Iterator[None]:
    """The fixtures were computed with 1 thread, and 1 thread is also the fastest on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def is_vgg_feature(key: str) -> bool:
    return key.startswith("features.")


@cache
def inception_state_dict(fixtures: Path) -> dict[str, torch.Tensor]:
    """The pytorch-fid Inception formula weights (SEED 0x2a4d10f5, RV0 0.6), hash-checked."""
    folder = fixtures / "fid-inception"
    seed, rv0 = formula_params(folder / "formula.json")
    assert (seed, rv0) == (0x2A4D10F5, 0.6)
    state_dict = formula_state_dict(folder / "keys.json", seed, rv0)
    check_formula_hashes(state_dict, folder / "formula.json")
    return state_dict


@cache
def vgg16_state_dict(fixtures: Path) -> dict[str, torch.Tensor]:
    """The VGG16 ``features.*`` formula weights (SEED 0x76474715), hash-checked; the unused classifier is skipped."""
    folder = fixtures / "eval-protocol"
    seed, rv0 = formula_params(folder / "formula.json", "vgg16")
    assert seed == 0x76474715
    state_dict = formula_state_dict(folder / "keys_vgg16.json", seed, rv0, select=is_vgg_feature)
    check_formula_hashes(state_dict, folder / "formula.json", "vgg16", partial=True)
    assert len(state_dict) == 26
    return state_dict


@cache
def formula_inception(fixtures: Path) -> FIDInceptionV3:
    return FIDInceptionV3.from_state_dict(inception_state_dict(fixtures), weights_label="formula weights (fixture)")


@cache
def formula_lpips(fixtures: Path) -> LPIPSVGG:
    return LPIPSVGG.from_vgg16_state_dict(vgg16_state_dict(fixtures), weights_label="formula weights (fixture)")


def load_rgb(path: Path) -> torch.Tensor:
    """An RGB PNG as float32 (3, H, W) in [0, 1], read as the official evaluator reads it."""
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@cache
def eval_protocol(fixtures: Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(predictions, images, results.json) of ``eval-protocol/``, in the official (sorted mask) order."""
    folder = fixtures / "eval-protocol"
    results = json.loads((folder / "results.json").read_text())
    rows = sorted(results["per_image"], key=lambda row: row["index"])
    assert [row["mask_file"] for row in rows] == sorted(row["mask_file"] for row in rows)
    predicted = torch.stack([load_rgb(folder / "predict" / row["predict_file"]) for row in rows])
    images = torch.stack([load_rgb(folder / "data" / row["image_file"]) for row in rows])
    return predicted, images, results


def write_eval_set(root: Path, count: int, size: int = 32, seed: int = 0, name: str = "thick_32"
                   ) -> tuple[Path, Path]:
    """A tiny eval set ``root/name`` in the official layout (mask areas spread over several bins) and its
    predictions ``root/name-predict``: random images, predictions random inside the holes."""
    rng = np.random.default_rng(seed)
    data, predict = root / name, root / f"{name}-predict"
    data.mkdir(parents=True)
    predict.mkdir()
    for index in range(count):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[: (index % 5 + 1) * size // 6] = 255
        prediction = image.copy()
        prediction[mask > 0] = rng.integers(0, 256, (int((mask > 0).sum()), 3), dtype=np.uint8)
        Image.fromarray(image).save(data / f"im{index:03d}.png")
        Image.fromarray(mask).save(data / f"im{index:03d}_mask000.png")
        Image.fromarray(prediction).save(predict / f"im{index:03d}_mask000.png")
    return data, predict
