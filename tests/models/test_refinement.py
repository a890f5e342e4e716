"""The official refinement: parity with what the official refiner wrote (``fixtures/refinement``, within its README's
tolerances), the objective falling at every level, the official defaults, devices, bf16 and the pixel budget."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import kornia
import numpy as np
import pytest
import torch

from lama.cli import main
from lama.imageio.eval_layout import read_image, read_mask
from lama.models.inference_options import InferenceOptions, RefinerOptions
from lama.models.model_dir import load_model
from lama.models.refinement import LevelTrace, Refiner, budget_size, erosion_kernel, scale_count
from lama.predict import Inpainter, to_uint8
from tests.conftest import FIXTURES

REFINEMENT = FIXTURES / "refinement"
CONFIGS = ("default", "min_side_128")


@cache
def _expected(config: str) -> dict:
    return torch.load(REFINEMENT / "expected" / config / "raw.pt", weights_only=True)


@cache
def _tiny_model():
    return load_model(FIXTURES / "tiny-biglama", map_location="cpu")


def _inpainter(refiner: RefinerOptions, **options) -> Inpainter:
    """The refinement as ``lama predict --refine`` sets it up (norms folded, channels last)."""
    return Inpainter(_tiny_model(), "cpu", inference=InferenceOptions(refine=True, refiner=refiner), **options)


def _refiner_options(config: str) -> RefinerOptions:
    settings = dict(_expected(config)["refiner_kwargs"])
    settings.pop("gpu_ids")  # the official two-GPU split; one device here (it changes no number, README §2.1)
    return RefinerOptions(**settings)


def _inputs(item: dict) -> tuple[np.ndarray, np.ndarray]:
    return read_image(REFINEMENT / item["image_file"]), read_mask(REFINEMENT / item["mask_file"])


def _relative(got: list[float], expected: torch.Tensor) -> float:
    got_, expected_ = np.asarray(got), expected.numpy()
    assert np.array_equal(np.isnan(got_), np.isnan(expected_))  # NaN where no pixel ties a level to the coarser
    finite = ~np.isnan(expected_)
    return float(np.max(np.abs(got_[finite] - expected_[finite]) / np.abs(expected_[finite]), initial=0))


@pytest.mark.parametrize("config", CONFIGS)
def test_refinement_matches_the_official_refiner(fixtures: Path, config: str) -> None:
    expected = _expected(config)
    inpainter = _inpainter(_refiner_options(config))
    multi_level = 0
    for key, item in expected["items"].items():
        image, mask = _inputs(item)
        trace: list[LevelTrace] = []
        refined = inpainter.refiner.refine(torch.from_numpy(image)[None], torch.from_numpy(mask)[None], trace)
        result = refined[0].numpy()
        hole = mask[0] > 0
        assert list(result.shape[1:]) == item["output_size"], key
        np.testing.assert_array_equal(result[:, ~hole], image[:, ~hole], err_msg=key)  # known pixels exact
        delta = np.abs(result[:, hole] - item["refined_hole"].numpy())
        assert len(trace) == item["n_scales"], key
        for level, official in zip(trace, item["scales"], strict=True):
            assert list(level.size_hw) == official["size_hw"] and list(level.padded_hw) == official["padded_hw"]
            if official["optimizer_steps"]:
                assert _relative(level.losses, official["losses"]) <= 1e-4, key
                assert _relative(level.losses_known_term, official["losses_known_term"]) <= 1e-4, key
                assert 3 * level.reference_pixels == official["loss_selected_lowres_pixels"], key
        png_delta = np.abs(to_uint8(result).astype(int) - _official_png(config, key)).max(axis=-1)
        if item["n_scales"] == 1:
            assert delta.max() <= 1e-4, key
            assert png_delta.max() <= 1 and (png_delta > 0).mean() <= 0.005, key
            continue
        multi_level += 1
        if item["n_scales"] == 2:  # the finest level's first loss comes from forwards only: pyramid, coarse level
            terms = "losses" if item["scales"][-1]["loss_selected_lowres_pixels"] else "losses_known_term"
            first = getattr(trace[-1], terms)[0] / item["scales"][-1][terms][0].item()
            assert abs(first - 1) <= 1e-5, key
        assert delta.mean() <= 0.005 and np.quantile(delta, 0.99) <= 0.02, key
        assert (delta > 4 / 255).mean() <= 0.005 and delta.max() <= 0.1, key
        assert png_delta[hole].mean() <= 1.5 and png_delta.max() <= 25, key
        unrefined = _unrefined(key)
        assert np.abs(result[:, hole] - unrefined).mean() >= 0.01, key  # the refinement ran
    assert multi_level == {"default": 1, "min_side_128": 3}[config]


def _official_png(config: str, key: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(REFINEMENT / "expected" / config / f"{key}.png").convert("RGB"), dtype=int)


def _unrefined(key: str) -> np.ndarray:
    items = torch.load(REFINEMENT / "expected/no_refine/raw.pt", weights_only=True)["items"]
    return items[key]["unrefined_hole"].numpy()


def test_defaults_are_the_official_refiners(fixtures: Path) -> None:
    assert _refiner_options("default") == RefinerOptions()
    assert _expected("default")["refiner_kwargs"]["gpu_ids"] == "0,1"  # official: two GPUs; ours: the device


def test_blur_and_erosion_are_the_official_kernels(fixtures: Path) -> None:
    kernels = json.loads((REFINEMENT / "manifest.json").read_text())["kernels"]
    ellipse = np.asarray(kernels["loss_erosion_structuring_element_15x15"], dtype=np.float32)
    np.testing.assert_array_equal(erosion_kernel().numpy(), ellipse)
    gaussian = kornia.filters.get_gaussian_kernel1d(5, 1.0).squeeze()
    np.testing.assert_allclose(gaussian.numpy(), kernels["gaussian_5tap_sigma1_weights"], rtol=1e-6)


@pytest.mark.parametrize(("short_side", "levels"), [(724, 1), (725, 2), (1448, 2), (1449, 3), (5000, 3)])
def test_a_level_per_doubling_of_the_short_side_above_min_side(short_side: int, levels: int) -> None:
    # closed form: 1 + round(log2(side / 512)); 512·2^0.5 = 724.08 and 512·2^1.5 = 1448.15 are the boundaries
    assert scale_count(short_side, short_side + 100, RefinerOptions()) == levels


def test_refinement_lowers_its_objective_at_every_optimised_level(fixtures: Path) -> None:
    item = _expected("min_side_128")["items"]["q_retina_mask001"]  # three levels: two optimised
    image, mask = _inputs(item)
    trace: list[LevelTrace] = []
    _inpainter(RefinerOptions(min_side=128)).refiner.refine(
        torch.from_numpy(image)[None], torch.from_numpy(mask)[None], trace)
    assert [len(level.losses) for level in trace] == [0, 15, 15]
    for level in trace[1:]:
        assert level.losses[-1] < 0.99 * level.losses[0], level.losses
        assert np.mean(np.diff(level.losses) < 0) >= 0.8, level.losses  # falling at nearly every step
        assert level.reference_pixels > 0


def test_a_thin_mask_optimises_the_known_pixels_alone(fixtures: Path) -> None:
    item = _expected("min_side_128")["items"]["p_hubble_mask002"]  # no low-resolution pixel wholly in the hole
    image, mask = _inputs(item)
    trace: list[LevelTrace] = []
    refined = _inpainter(RefinerOptions(min_side=128)).refiner.refine(
        torch.from_numpy(image)[None], torch.from_numpy(mask)[None], trace)
    assert all(math.isnan(loss) for loss in trace[-1].losses) and trace[-1].reference_pixels == 0
    assert trace[-1].losses_known_term[-1] < trace[-1].losses_known_term[0]
    assert torch.isfinite(refined).all()


def _q_retina(min_side: int = 128, **options) -> tuple[torch.Tensor, np.ndarray]:
    item = _expected("min_side_128")["items"]["q_retina_mask001"]
    image, mask = _inputs(item)
    inpainter = _inpainter(RefinerOptions(min_side=min_side, n_iters=4), **options)
    return inpainter.refiner.refine(torch.from_numpy(image)[None], torch.from_numpy(mask)[None]), mask


def test_generator_shared_out_over_devices_computes_the_same(fixtures: Path) -> None:
    one, _ = _q_retina()
    model = _tiny_model()
    generator = Inpainter(model, "cpu").generator
    refiner = Refiner(generator, RefinerOptions(min_side=128, n_iters=4), devices=["cpu", "cpu"],
                      memory_format=torch.channels_last)
    blocks = [sum(type(layer).__name__ == "FFCResnetBlock" for layer in segment) for segment in refiner.split.rear]
    assert len(blocks) == 2 and min(blocks) >= 1 and sum(blocks) == 3  # the tiny model's three blocks, shared out
    item = _expected("min_side_128")["items"]["q_retina_mask001"]
    image, mask = _inputs(item)
    two = refiner.refine(torch.from_numpy(image)[None], torch.from_numpy(mask)[None])
    torch.testing.assert_close(two, one, rtol=0, atol=0)


def test_recomputing_the_blocks_in_the_backward_pass_changes_nothing(fixtures: Path) -> None:
    kept, _ = _q_retina()
    item = _expected("min_side_128")["items"]["q_retina_mask001"]
    image, mask = _inputs(item)
    recomputing = _inpainter(RefinerOptions(min_side=128, n_iters=4, checkpoint_blocks=True))
    assert recomputing.refiner.split.checkpoint_blocks
    refined = recomputing.refiner.refine(torch.from_numpy(image)[None], torch.from_numpy(mask)[None])
    torch.testing.assert_close(refined, kept, rtol=0, atol=0)


def test_bf16_refinement_stays_close_to_fp32(fixtures: Path) -> None:
    fp32, mask = _q_retina()
    bf16, _ = _q_retina(precision="bf16")
    hole = torch.from_numpy(mask[0] > 0)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert (bf16 - fp32)[0][:, hole].abs().mean() < 4 / 255
    torch.testing.assert_close(bf16[0][:, ~hole], fp32[0][:, ~hole], rtol=0, atol=0)


def test_an_image_above_the_pixel_budget_is_refined_at_the_budget(fixtures: Path) -> None:
    item = _expected("min_side_128")["items"]["q_retina_mask001"]  # 384×512
    image, mask = _inputs(item)
    budget = 100_000
    trace: list[LevelTrace] = []
    refined = _inpainter(RefinerOptions(min_side=128, n_iters=3, px_budget=budget)).refiner.refine(
        torch.from_numpy(image)[None], torch.from_numpy(mask)[None], trace)
    assert budget_size(384, 512, budget) == (273, 365)  # the official reduced size (fixture README §4)
    assert trace[-1].size_hw == (273, 365) and budget >= 273 * 365
    assert refined.shape[-2:] == (384, 512)  # pasted back at full size, unlike the official script
    hole = mask[0] > 0
    np.testing.assert_array_equal(refined[0].numpy()[:, ~hole], image[:, ~hole])


def test_cli_refines_with_official_keys(fixtures: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("s_rings.png", "s_rings_mask001.png"):
        (inputs / name).write_bytes((REFINEMENT / "input" / name).read_bytes())
    assert main(["predict", str(fixtures / "tiny-biglama"), str(inputs), str(tmp_path / "out"), "-q", "--refine",
                 "refiner.min_side=128", "refiner.n_iters=15", "device=cpu"]) == 0
    got = _official_png_at(tmp_path / "out/s_rings_mask001.png")
    delta = np.abs(got - _official_png("min_side_128", "s_rings_mask001")).max(axis=-1)
    assert delta.max() <= 1 and (delta > 0).mean() <= 0.005


def _official_png_at(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=int)


@pytest.mark.parametrize(("args", "message"), [
    (["refiner.n_iters=0"], "refiner.n_iters=0: expected a positive integer"),
    (["refiner.lr=0"], "refiner.lr=0.0: expected a positive number"),
    (["refiner.gpu_ids=0,x"], "refiner.gpu_ids='0,x': expected GPU numbers"),
    (["refiner.gpu_ids=0", "device=cpu"], "refiner.gpu_ids=0: names GPUs, but device=cpu"),
    (["out_key=predicted_image"], "out_key=predicted_image: only the blended result exists with refine=true"),
])
def test_bad_refiner_keys_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str],
                                           message: str) -> None:
    assert main(["predict", str(tmp_path), str(tmp_path), str(tmp_path / "out"), "--refine", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_classical_methods_cannot_be_refined(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", "classical:telea", str(tmp_path), str(tmp_path / "out"), "--refine"]) == 2
    assert "refine=true: classical:telea has no generator to refine" in capsys.readouterr().err
