"""Batched LaMa augmentations against OpenCV (what albumentations/imgaug run officially) and closed forms."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lama.data.augment import (
    Affine,
    AugmentConfig,
    BrightnessContrast,
    Clahe,
    HueSaturationValue,
    LamaAugmentation,
    OpticalDistortion,
    Perspective,
)

ASTRONAUT = Path(__file__).resolve().parents[2] / "examples" / "input" / "astronaut.png"
SMALL = AugmentConfig(crop_size=64)


def _smooth(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, colourful float32 (H, W, 3) image in [0, 1]: bicubic upsampling of a coarse random grid."""
    coarse = np.random.default_rng(seed).random((6, 6, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def _numpy(images: torch.Tensor) -> np.ndarray:
    return images[0].permute(1, 2, 0).numpy()


def _params(**values: float) -> dict[str, torch.Tensor]:
    return {name: torch.tensor([float(value)], dtype=torch.float64) for name, value in values.items()}


def _photo() -> np.ndarray:
    """uint8 RGB photo for CLAHE (the repository's astronaut), else a synthetic image with texture."""
    if ASTRONAUT.is_file():
        return cv2.cvtColor(cv2.imread(str(ASTRONAUT)), cv2.COLOR_BGR2RGB)[:256, :256]
    noise = np.random.default_rng(1).random((256, 256, 3)).astype(np.float32) * 0.2
    return (np.clip(_smooth(256, 256, 2) * 0.8 + noise, 0, 1) * 255).round().astype(np.uint8)


def test_no_augs_is_the_exact_centre_crop() -> None:
    images = torch.rand(2, 3, 80, 96)
    expected = images[..., 8:72, 16:80]  # (80 - 64) / 2 and (96 - 64) / 2
    assert torch.equal(LamaAugmentation(AugmentConfig(variant="no_augs", crop_size=64))(images), expected)
    # every op of the full pipeline at p = 0 must leave the pixels untouched too (no identity resampling)
    assert torch.equal(LamaAugmentation(AugmentConfig(crop_size=64, p=0.0))(images), expected)


def test_flip_with_p1_mirrors_the_crop() -> None:
    images = torch.rand(3, 3, 72, 72)
    out = LamaAugmentation(AugmentConfig(variant="flip", crop_size=64, p=1.0))(images)
    assert torch.equal(out, torch.flip(images[..., 4:68, 4:68], dims=[-1]))


def test_brightness_contrast_is_the_closed_form() -> None:
    images = torch.rand(2, 3, 16, 16)
    params = {"alpha": torch.tensor([1.15, 0.85]), "beta": torch.tensor([0.1, -0.2])}
    out = BrightnessContrast().apply(images, params)
    alpha, beta = (params[name].numpy()[:, None, None, None] for name in ("alpha", "beta"))
    expected = np.clip(images.numpy() * alpha + beta, 0, 1)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)


def test_brightness_contrast_draws_official_ranges() -> None:
    torch.manual_seed(0)
    images = torch.rand(64, 3, 8, 8) * 0.35 + 0.3  # in [0.3, 0.65] nothing clips, so each image is x·alpha + beta
    out = BrightnessContrast(p=1.0)(images)
    for x, y in zip(images.flatten(1).numpy(), out.flatten(1).numpy(), strict=True):
        (alpha, beta), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)
        assert 0.8 - 1e-4 <= alpha <= 1.2 + 1e-4 and -0.2 - 1e-4 <= beta <= 0.2 + 1e-4
        np.testing.assert_allclose(y, x * alpha + beta, atol=1e-5)


@pytest.mark.parametrize(("hue", "saturation", "value"), [(4, -20, 3), (-5, 30, -5), (3, 25, 5)])
def test_hsv_shift_matches_opencv(hue: int, saturation: int, value: int) -> None:
    image = (_smooth(96, 96, 3) * 255).round().astype(np.uint8)
    # albumentations 0.5.2 _shift_hsv_uint8: LUTs on OpenCV's 8-bit HSV (H in 0..179); integer shifts are exact there
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int16)
    hsv[..., 0] = np.mod(hsv[..., 0] + hue, 180)
    hsv[..., 1:] = np.clip(hsv[..., 1:] + [saturation, value], 0, 255)
    expected = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255
    out = _numpy(HueSaturationValue().apply(_tensor(image) / 255, _params(hue=hue, saturation=saturation, value=value)))
    # OpenCV rounds H to 2° steps and S, V to 1/255 (measured 0.46-0.55/255 mean); the shift itself is 11-16/255.
    assert np.abs(out - expected).mean() < 1.5 / 255
    assert np.abs(expected - image / 255).mean() > 5 / 255


@pytest.mark.parametrize("clip", [1.5, 4.0])
def test_clahe_on_lightness_matches_opencv(clip: float) -> None:
    image = _photo()
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)  # what albumentations' F.clahe does to an RGB uint8 image
    lab[..., 0] = cv2.createCLAHE(clipLimit=clip, tileGridSize=(8, 8)).apply(lab[..., 0])
    expected = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255
    out = _numpy(Clahe().apply(_tensor(image) / 255, _params(clip=clip)))
    error = np.abs(out - expected)
    # Measured on the astronaut: mean 1.05/255 (clip 1.5) to 1.38/255 (clip 4), 99th percentile ≤ 6.5/255. The
    # floor is OpenCV's 8-bit Lab (its own RGB→Lab→RGB round trip errs 0.4/255 on average) plus OpenCV rounding
    # each tile's LUT to integers where kornia interpolates in float (0.3-0.6/255 on the same L).
    assert error.mean() < 2 / 255
    assert np.percentile(error, 99) < 8 / 255
    assert np.abs(expected - image / 255).mean() > 8 / 255  # CLAHE itself moves pixels far more than that


@pytest.mark.parametrize(("k", "dx", "dy"), [(0.05, 0, 0), (-0.05, 0, 0), (0.04, 3, -2), (-0.03, -5, 4)])
def test_optical_distortion_matches_opencv(k: float, dx: int, dy: int) -> None:
    height, width = 80, 96
    image = _smooth(height, width, 4)
    # albumentations 0.5.2 F.optical_distortion, verbatim in OpenCV calls
    camera = np.array([[width, 0, width * 0.5 + dx], [0, height, height * 0.5 + dy], [0, 0, 1]], dtype=np.float32)
    coefficients = np.array([k, k, 0, 0, 0], dtype=np.float32)
    map_x, map_y = cv2.initUndistortRectifyMap(camera, coefficients, None, None, (width, height), cv2.CV_32FC1)
    expected = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out = _numpy(OpticalDistortion().apply(_tensor(image), _params(k=k, dx=dx, dy=dy)))
    assert np.abs(out - expected)[2:-2, 2:-2].max() < 1e-3  # measured 5e-7
    assert np.abs(expected - image).max() > 0.02


def test_optical_distortion_draws_like_albumentations_052() -> None:
    params = OpticalDistortion().sample(4000, torch.Generator().manual_seed(0))
    assert params["k"].abs().max() <= 0.05 and params["k"].std() > 0.025
    # round(uniform(-0.05, 0.05)) pixels: the official centre shift is always zero
    assert not params["dx"].any() and not params["dy"].any()
    shifted = OpticalDistortion(shift_limit=3.0).sample(4000, torch.Generator().manual_seed(0))["dx"]
    assert set(shifted.unique().tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}


@pytest.mark.parametrize(("angle", "scale"), [(30.0, 1.2), (-25.0, 0.8), (40.0, 0.7)])
def test_affine_matches_opencv(angle: float, scale: float) -> None:
    height, width = 80, 96
    image = _smooth(height, width, 5)
    centre = ((width - 1) / 2, (height - 1) / 2)  # imgaug rotates about width/2 - 0.5, i.e. the pixel-centre middle
    out = _numpy(Affine().apply(_tensor(image), _params(scale=scale, angle=angle, shear=0.0)))

    # Our angle is imgaug's: positive turns clockwise on screen; cv2's positive angle turns counter-clockwise.
    def warp(cv2_angle: float) -> np.ndarray:
        matrix = cv2.getRotationMatrix2D(centre, cv2_angle, scale)
        return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    assert np.abs(out - warp(-angle))[2:-2, 2:-2].max() < 1e-4  # measured 8e-7
    assert np.abs(out - warp(angle)).max() > 0.1


def test_affine_shear_is_tiny_and_sampled_in_range() -> None:
    params = Affine().sample(4000, torch.Generator().manual_seed(0))
    assert params["angle"].abs().max() <= 40 and params["angle"].abs().max() > 39
    assert params["scale"].min() >= 0.7 and params["scale"].max() <= 1.3
    assert params["shear"].abs().max() <= 0.1
    image = _tensor(_smooth(64, 64, 6))
    sheared = Affine().apply(image, _params(scale=1.0, angle=0.0, shear=0.1))
    assert 0 < (sheared - image).abs().max() < 0.02  # imgaug's shear is in degrees: ±0.1° barely moves a pixel


def test_perspective_matches_opencv_warp_of_the_jittered_quad() -> None:
    height, width = 80, 96
    image = _smooth(height, width, 7)
    offsets = np.array([[0.05, 0.03], [0.02, 0.06], [0.04, 0.01], [0.07, 0.02]])  # tl tr br bl, inwards
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    # The quad the corners are pulled in to goes onto the whole image, outer pixel edges to outer pixel edges;
    # OpenCV puts pixel centres at integers, so the edges are at -0.5 and size - 0.5.
    quad = (corners + np.where(corners > 0, -offsets, offsets)) * [width, height] - 0.5
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), (corners * [width, height] - 0.5).astype(np.float32))
    expected = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    out = _numpy(Perspective().apply(_tensor(image), {"offsets": torch.from_numpy(offsets)[None]}))
    assert np.abs(out - expected)[2:-2, 2:-2].max() < 1e-4  # measured 1.4e-6
    assert np.abs(expected - image).max() > 0.05


def test_perspective_with_p1_changes_the_image_and_keeps_its_shape() -> None:
    torch.manual_seed(0)
    images = _tensor(_smooth(64, 64, 8)).repeat(4, 1, 1, 1)
    out = Perspective(p=1.0)(images)
    assert out.shape == images.shape
    assert ((out - images).abs().flatten(1).max(1).values > 1e-3).all()


def test_perspective_corner_jitter_statistics() -> None:
    offsets = Perspective().sample(20000, torch.Generator().manual_seed(0))["offsets"]
    assert offsets.shape == (20000, 4, 2) and offsets.min() >= 0 and offsets.max() < 0.4
    # |N(0, σ)| with σ ~ U(0, 0.06): mean sqrt(2/π)·0.03, mean square E[σ²] = 0.06²/3
    assert offsets.mean().item() == pytest.approx(math.sqrt(2 / math.pi) * 0.03, rel=0.03)
    assert offsets.square().mean().item() == pytest.approx(0.06**2 / 3, rel=0.05)
    fixed = Perspective(scale=(0.05, 0.05)).sample(20000, torch.Generator().manual_seed(1))["offsets"]
    assert fixed.square().mean().sqrt().item() == pytest.approx(0.05, rel=0.02)
    assert not Perspective(scale=(0.0, 0.0)).sample(100)["offsets"].any()


def test_output_contract_float_uint8_half() -> None:
    augment = LamaAugmentation(SMALL)
    images = torch.rand(4, 3, 96, 96)
    torch.manual_seed(3)
    out = augment(images)
    assert out.shape == (4, 3, 64, 64) and out.dtype == torch.float32 and out.device == images.device
    assert out.min() >= 0 and out.max() <= 1
    as_bytes = (images * 255).round().to(torch.uint8)
    torch.manual_seed(3)
    from_bytes = augment(as_bytes)
    torch.manual_seed(3)
    assert torch.allclose(from_bytes, augment(as_bytes.float() / 255), atol=1e-6)
    torch.manual_seed(3)
    from_half = augment(images.half())
    assert from_half.dtype == torch.float32 and (from_half - out).abs().mean() < 0.01


def test_too_small_window_is_refused_naming_the_shape() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3, 60, 96\)"):
        LamaAugmentation(SMALL)(torch.rand(2, 3, 60, 96))
    with pytest.raises(ValueError, match=r"\(3, 96, 96\)"):
        LamaAugmentation(SMALL)(torch.rand(3, 96, 96))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("variant", "places"),
        ("crop_size", 0),
        ("perspective_scale", (0.06, 0.0)),
        ("affine_scale", (0.0, 1.3)),
        ("clahe_clip", (1.0,)),
        ("clahe_grid", 2.5),
        ("contrast", 1.5),
        ("hue", -5.0),
        ("p", 1.5),
    ],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    config = AugmentConfig(**{field: value})
    with pytest.raises(ValueError, match=rf"AugmentConfig\.{field}="):
        config.validate()
    with pytest.raises(ValueError, match=rf"AugmentConfig\.{field}="):
        LamaAugmentation(config)


def test_same_seed_same_output_other_seed_differs() -> None:
    augment = LamaAugmentation(SMALL)
    images = torch.rand(8, 3, 96, 96)
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.append(augment(images))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_gpu_like_on_the_cpu() -> None:
    augment = LamaAugmentation(SMALL)
    images = torch.rand(8, 3, 96, 96)
    torch.manual_seed(0)
    on_cpu = augment(images)
    torch.manual_seed(0)
    on_gpu = augment(images.cuda())
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
    # parameters are drawn on the CPU, so only floating-point rounding (and a rare CLAHE level flip) may differ
    assert (on_gpu.cpu() - on_cpu).abs().mean() < 1e-3
