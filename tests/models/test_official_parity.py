"""Generator numerics against the official implementation (fixtures/tiny-*: raw outputs and intermediate taps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lama.imageio.eval_layout import read_image, read_mask
from lama.models import load_model, prepare_for_inference
from lama.predict import pad_bottom_right
from tests.conftest import FIXTURE_MODELS

SAMPLE = "s_rings_mask001"


def _raw(fixtures: Path, name: str) -> dict:
    return torch.load(fixtures / name / "raw.pt", weights_only=True)[SAMPLE]


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_raw_generator_output_matches_official(fixtures: Path, name: str) -> None:
    raw = _raw(fixtures, name)
    model = load_model(fixtures / name)
    with torch.no_grad():
        delta = (model.generator(raw["input"]) - raw["predicted_image"]).abs()
    assert delta.max() <= 1e-4
    assert delta.mean() <= 1e-6


def test_intermediate_activations_match_official_taps(fixtures: Path) -> None:
    raw = _raw(fixtures, "tiny-biglama")
    layers = load_model(fixtures / "tiny-biglama").generator.model
    taps: dict[str, torch.Tensor] = {}
    x = raw["input"]
    with torch.no_grad():
        for index, layer in enumerate(layers):
            x = layer(x)
            if isinstance(x, tuple):
                taps[f"model.{index}.local"], taps[f"model.{index}.global"] = x
            else:
                taps[f"model.{index}"] = x.clone()  # later in-place ReLUs must not alter the tap
    assert set(raw["taps"]) <= set(taps)
    for key, reference in raw["taps"].items():
        assert taps[key].shape == reference.shape, key
        tolerance = 1e-4 * max(1.0, reference.abs().max().item())
        assert (taps[key] - reference).abs().max() <= tolerance, key


def test_preprocessing_is_bit_exact(fixtures: Path) -> None:
    """RGBA image, 3-channel colour mask, odd size: the padded, binarised input equals the official one."""
    raw = _raw(fixtures, "tiny-biglama")
    image = read_image(fixtures / "tiny-biglama/input/s_rings.png")
    mask = read_mask(fixtures / f"tiny-biglama/input/{SAMPLE}.png")
    assert list(image.shape[1:]) == list(raw["unpad_to_size"])
    image, mask = pad_bottom_right(image, 8), (pad_bottom_right(mask, 8) > 0).astype(np.float32)
    model = load_model(fixtures / "tiny-biglama")
    batch = model.make_input(torch.from_numpy(image)[None], torch.from_numpy(mask)[None])
    assert torch.equal(batch, raw["input"])


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_folded_batchnorm_keeps_official_output(fixtures: Path, name: str) -> None:
    raw = _raw(fixtures, name)
    model = load_model(fixtures / name)
    generator = prepare_for_inference(model.generator, fold_norms=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules())
    with torch.no_grad():
        delta = (generator(raw["input"]) - raw["predicted_image"]).abs()
    assert delta.max() <= 1e-4


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_bf16_stays_close_to_fp32_inside_holes(fixtures: Path, name: str) -> None:
    raw = _raw(fixtures, name)
    model = load_model(fixtures / name)
    generator = prepare_for_inference(model.generator, precision="bf16")
    with torch.no_grad():
        out = generator(raw["input"].to(torch.bfloat16)).float()
    hole = raw["input"][:, 3:] > 0
    delta = (out - raw["predicted_image"]).abs().expand(-1, 3, -1, -1)[hole.expand(-1, 3, -1, -1)]
    assert delta.mean() <= 2 / 255
