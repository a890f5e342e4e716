"""The TorchScript module is a drop-in ``big-lama.pt``: loaded and called as IOPaint and simple-lama-inpainting
do, it gives what ``lama predict`` writes, at any size and for every generator kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lama.export.to_torchscript import METADATA_FILE
from lama.imageio.eval_layout import read_image, read_mask
from lama.models import load_model
from lama.predict import Inpainter
from tests.conftest import FIXTURE_MODELS, pixels
from tests.export.conftest import Exporter

PAIRS = ["p_hubble_mask001", "q_retina_mask001", "s_rings_mask001"]


def _symmetric_pad(array: np.ndarray, modulo: int = 8) -> np.ndarray:
    """HWC (or HW) padded at the bottom and right to a multiple of ``modulo``, edge rows repeated first: the padding
    both tools apply before the call."""
    height, width = array.shape[:2]
    pads = [(0, -height % modulo), (0, -width % modulo)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pads, mode="symmetric")


def _call_like_the_tools(path: Path, image: np.ndarray, mask: np.ndarray, no_grad: type = torch.no_grad
                         ) -> np.ndarray:
    """Load with ``torch.jit.load(path, map_location="cpu")``, move and ``eval()``; feed a float32 [1,3,H,W] image
    in [0,1] and an int64 [1,1,H,W] mask ``(mask > 0) * 1``; read ``out[0]`` as HWC, ``clip(x * 255)`` to uint8,
    cut back to the image's size."""
    module = torch.jit.load(str(path), map_location="cpu").to("cpu")
    module.eval()
    height, width = image.shape[:2]
    chw = _symmetric_pad(image).transpose(2, 0, 1).astype(np.float32) / 255
    hole = (_symmetric_pad(mask)[None] > 0) * 1
    with no_grad():
        out = module(torch.from_numpy(chw)[None], torch.from_numpy(hole)[None])
    result = np.clip(out[0].permute(1, 2, 0).detach().cpu().numpy() * 255, 0, 255).astype(np.uint8)
    return result[:height, :width]


def _pair(fixtures: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixture pair as the tools receive it: RGB uint8 HWC and a uint8 HW mask."""
    inputs = fixtures / "tiny-biglama" / "input"
    image = np.round(read_image(inputs / f"{name.split('_mask')[0]}.png").transpose(1, 2, 0) * 255).astype(np.uint8)
    mask = (read_mask(inputs / f"{name}.png")[0] * 255).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_called_like_iopaint_it_gives_the_official_prediction(fixtures: Path, exported: Exporter, name: str) -> None:
    path = exported(fixtures / name, ".pt")
    pairs = [pair for pair in PAIRS if (fixtures / name / "expected" / f"{pair}.png").is_file()]
    assert pairs  # each fixture model has expected outputs for some of the pairs
    for pair in pairs:
        got = _call_like_the_tools(path, *_pair(fixtures, pair)).astype(np.int16)
        assert np.abs(got - pixels(fixtures / name / "expected" / f"{pair}.png")).max() <= 1, pair


def test_called_like_simple_lama_at_odd_bottleneck_sizes_it_matches_lama_predict(
        fixtures: Path, exported: Exporter) -> None:
    """Sizes traced as the inputs' own (72×88 → a 9×11 bottleneck; 100×60 padded to 104×64), under
    ``torch.inference_mode`` as simple-lama-inpainting calls it."""
    path = exported(fixtures / "tiny-biglama", ".pt")
    inpainter = Inpainter(load_model(fixtures / "tiny-biglama"), "cpu")
    generator = np.random.default_rng(1)
    photo = np.asarray(Image.open(fixtures / "tiny-biglama/input/q_retina.png").convert("RGB"))
    for height, width in [(72, 88), (100, 60), (40, 40)]:
        image = np.ascontiguousarray(photo[:height, :width])
        mask = ((generator.random((height // 4, width // 4)) > 0.6) * 255).astype(np.uint8).repeat(4, 0).repeat(4, 1)
        image, mask = image[:height, :width], np.pad(mask, ((0, height % 4), (0, width % 4)))
        got = _call_like_the_tools(path, image, mask, torch.inference_mode).astype(np.int16)
        expected = inpainter.predict(image.transpose(2, 0, 1).astype(np.float32) / 255, mask[None].astype(np.float32))
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1, (height, width)


def test_the_module_records_where_it_came_from(fixtures: Path, exported: Exporter) -> None:
    files = {METADATA_FILE: ""}
    torch.jit.load(str(exported(fixtures / "tiny-biglama", ".pt")), map_location="cpu", _extra_files=files)
    metadata = json.loads(files[METADATA_FILE])
    assert metadata["lama.size_multiple"] == "8"
    assert metadata["lama.generator_kind"] == "ffc_resnet"
    assert len(metadata["lama.checkpoint_sha256"]) == 64
