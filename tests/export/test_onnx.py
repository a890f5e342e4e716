"""ONNX files: exact against the PyTorch generator at dynamic sizes (odd bottleneck FFTs included), for every
generator kind and both Fourier formulations, checked by the ONNX checker, run in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lama.export import OnnxRunner
from lama.export.options import FOURIER_MODES, META_MULTIPLE, META_OUT_KEY
from lama.models import InpaintingModel, build_generator, generator_config, load_model, save_model_dir
from tests.conftest import FIXTURE_MODELS
from tests.export.conftest import Exporter

RAW = {"out_key": "predicted_image"}
# Sides whose bottleneck (1/8) is odd in one or both axes, an even square, and a wide one.
SIZES = [(72, 88), (40, 56), (64, 64), (24, 120)]


def _inputs(height: int, width: int, batch: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    image = generator.random((batch, 3, height, width), dtype=np.float32)
    mask = (generator.random((batch, 1, height, width)) > 0.6).astype(np.float32)
    return image, mask


def _torch_raw(model_dir: Path, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    model = load_model(model_dir)
    with torch.no_grad():
        return model(torch.from_numpy(image), torch.from_numpy(mask)).numpy()


@pytest.mark.parametrize("fourier", FOURIER_MODES)
def test_random_weights_match_pytorch_within_1e_4_at_every_size(exported: Exporter, random_model_dir: Path,
                                                                 fourier: str) -> None:
    runner = OnnxRunner(exported(random_model_dir, fourier=fourier, **RAW))
    for index, (height, width) in enumerate(SIZES):
        image, mask = _inputs(height, width, batch=3 if index == 0 else 1, seed=index)
        expected = _torch_raw(random_model_dir, image, mask)
        output = runner(image, mask)
        assert output.shape == expected.shape
        assert np.abs(output - expected).max() <= 1e-4, (height, width)
        assert expected.std() > 1e-2  # the generator's output varies: the comparison says something


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_each_generator_kind_matches_the_official_raw_output(fixtures: Path, exported: Exporter, name: str) -> None:
    """The fixtures' official generator output (tiny Big LaMa, LaMa-Regular, multi-dilated), and ours at odd sizes."""
    raw = torch.load(fixtures / name / "raw.pt", weights_only=True)["s_rings_mask001"]
    runner = OnnxRunner(exported(fixtures / name, **RAW))
    masked, mask = raw["input"][:, :3].numpy(), raw["input"][:, 3:].numpy()  # the graph masks again: a no-op
    assert np.abs(runner(masked, mask) - raw["predicted_image"].numpy()).max() <= 1e-4
    image, mask = _inputs(72, 88)
    assert np.abs(runner(image, mask) - _torch_raw(fixtures / name, image, mask)).max() <= 1e-4


@pytest.mark.parametrize(("fourier", "present", "absent"), [("dft", "DFT", "Cos"), ("matmul", "Cos", "DFT")])
def test_both_fourier_formulations_match_the_official_raw_output(fixtures: Path, exported: Exporter, fourier: str,
                                                                 present: str, absent: str) -> None:
    raw = torch.load(fixtures / "tiny-biglama" / "raw.pt", weights_only=True)["s_rings_mask001"]
    runner = OnnxRunner(exported(fixtures / "tiny-biglama", fourier=fourier, **RAW))
    masked, mask = raw["input"][:, :3].numpy(), raw["input"][:, 3:].numpy()
    assert np.abs(runner(masked, mask) - raw["predicted_image"].numpy()).max() <= 1e-4
    graph_ops = {node.op_type for node in onnx.load(runner.path).graph.node}
    assert present in graph_ops and absent not in graph_ops


def test_the_file_passes_the_checker_and_records_its_contract(fixtures: Path, exported: Exporter) -> None:
    path = exported(fixtures / "tiny-biglama")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    properties = {prop.key: prop.value for prop in model.metadata_props}
    assert properties[META_MULTIPLE] == "8" and properties[META_OUT_KEY] == "inpainted"
    assert {node.op_type for node in model.graph.node} >= {"MatMul", "Cos", "Conv"}
    shape = model.graph.input[0].type.tensor_type.shape.dim
    assert [dim.dim_value or None for dim in shape][1] == 3
    assert all(dim.dim_param for index, dim in enumerate(shape) if index != 1)  # batch, height, width are dynamic


def test_the_blended_output_keeps_known_pixels_and_fills_holes(fixtures: Path, exported: Exporter) -> None:
    runner = OnnxRunner(exported(fixtures / "tiny-biglama"))
    image, mask = _inputs(48, 64)
    output = runner(image, mask)
    known = mask[:, 0] == 0
    assert np.array_equal(output.transpose(1, 0, 2, 3)[:, known], image.transpose(1, 0, 2, 3)[:, known])
    raw = _torch_raw(fixtures / "tiny-biglama", image, mask)
    hole = ~known
    assert np.abs(output.transpose(1, 0, 2, 3)[:, hole] - raw.transpose(1, 0, 2, 3)[:, hole]).max() <= 1e-4


def test_a_size_the_generator_cannot_take_is_one_line(fixtures: Path, exported: Exporter) -> None:
    runner = OnnxRunner(exported(fixtures / "tiny-biglama"))
    with pytest.raises(ValueError, match=r"an input of 60x64; expected sides that are multiples of 8"):
        runner(*_inputs(60, 64))


def test_a_generator_with_local_fourier_units_exports_for_square_sides(
        exported: Exporter, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The local Fourier unit folds both axes at half the height (as officially): such a file takes square sides
    that are multiples of 16, odd folded spectra included (80² → a 5×5 fold)."""
    config = {**generator_config("lama-fourier"), "ngf": 16, "n_blocks": 1,
              "resnet_conv_kwargs": {"ratio_gin": 0.75, "ratio_gout": 0.75, "enable_lfu": True}}
    torch.manual_seed(1)
    model_dir = tmp_path_factory.mktemp("lfu")
    save_model_dir(InpaintingModel(build_generator(config), config), model_dir)
    runner = OnnxRunner(exported(model_dir, **RAW))
    assert (runner.multiple, runner.square_only) == (16, True)
    for side in (64, 80):
        image, mask = _inputs(side, side)
        assert np.abs(runner(image, mask) - _torch_raw(model_dir, image, mask)).max() <= 1e-4
    with pytest.raises(ValueError, match="expected square sides that are multiples of 16"):
        runner(*_inputs(64, 80))
