"""SSIM and PSNR against the official evaluator's per-image values, a float64 SciPy reference and torchmetrics; their
hole-restricted variants against the same references restricted to the hole, and closed forms."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from lama.eval.ssim import C1, gaussian_window, hole_psnr, hole_ssim, psnr, ssim, ssim_map
from tests.eval import eval_protocol, single_thread


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with single_thread():
        yield


def image_pair(shape: tuple[int, ...] = (2, 3, 23, 31), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth structure plus noise (so that means, variances and covariances all matter), and a distorted copy."""
    generator = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(0, 3, h), torch.linspace(0, 4, w), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(yy * (1 + torch.arange(n * c).view(n, c, 1, 1))) * torch.cos(xx)
    target = (base + 0.1 * torch.rand(shape, generator=generator)).clamp(0, 1)
    predicted = (0.8 * target + 0.1 + 0.15 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return predicted, target


def scipy_ssim_maps(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Float64 SSIM maps (N, C, H, W) with an independently built window and zero ("constant") borders."""
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()
    window = np.outer(taps, taps)

    def blur(image: np.ndarray) -> np.ndarray:
        return ndimage.correlate(image, window, mode="constant", cval=0.0)

    maps = np.empty(predicted.shape)
    for index in np.ndindex(*predicted.shape[:2]):
        x, y = predicted[index], target[index]
        mu_x, mu_y = blur(x), blur(y)
        var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
        c1, c2 = 0.01**2, 0.03**2
        maps[index] = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return maps


def scipy_ssim(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """One float64 SSIM per image: the mean of its maps."""
    return scipy_ssim_maps(predicted, target).mean(axis=(1, 2, 3))


def test_ssim_matches_the_official_evaluator_per_image(fixtures: Path) -> None:
    predicted, images, results = eval_protocol(fixtures)
    reference = torch.tensor([row["ssim"] for row in sorted(results["per_image"], key=lambda row: row["index"])])
    values = ssim(predicted, images)
    assert values.shape == (32,) and values.dtype == torch.float32
    # The same 2-D zero-padded float32 formulation reproduces the official values to about 1e-7 (README §8.4).
    assert (values - reference).abs().max() <= 1e-6
    assert abs(values.double().mean().item() - results["results"]["ssim"]["total"]["mean"]) <= 1e-6


def test_ssim_equals_a_float64_scipy_reference() -> None:
    predicted, target = image_pair()
    reference = scipy_ssim(predicted.double().numpy(), target.double().numpy())
    assert np.abs(ssim(predicted.double(), target.double()).numpy() - reference).max() <= 1e-10
    # float32 (the official precision) differs from float64 by ~1e-5 because σ² = E[x²] − μ² cancels.
    assert np.abs(ssim(predicted, target).numpy() - reference).max() <= 5e-5


def test_ssim_map_interior_agrees_with_torchmetrics_and_borders_are_zero_padded() -> None:
    predicted, target = (x.double() for x in image_pair((2, 3, 40, 36), seed=1))  # float64: no cancellation noise
    _, reference_map = structural_similarity_index_measure(
        predicted, target, data_range=1.0, reduction="none", return_full_image=True
    )
    ours = ssim_map(predicted, target)
    assert ours.shape == reference_map.shape == predicted.shape
    # Where the 11×11 window stays inside the image, zero padding and torchmetrics' reflect padding coincide...
    interior = (..., slice(5, -5), slice(5, -5))
    assert (ours[interior] - reference_map[interior]).abs().max() <= 1e-10
    # ...and at the borders they must not (the official SSIM counts zero-padded borders).
    assert (ours[..., :5, :] - reference_map[..., :5, :]).abs().max() > 1e-3


def test_ssim_window_and_basic_properties() -> None:
    window = gaussian_window()
    assert window.shape == (11, 11) and abs(window.sum().item() - 1) <= 1e-6
    assert window.argmax().item() == 5 * 11 + 5 and torch.equal(window, window.T)
    predicted, target = image_pair()
    values = ssim(predicted, target)
    assert torch.allclose(values, ssim(target, predicted), atol=1e-7)
    assert (values < 0.99).all()
    assert torch.allclose(ssim(target, target), torch.ones(2), atol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        ssim(predicted, target[:, :, :-1])


def test_psnr_matches_torchmetrics_and_the_closed_form() -> None:
    predicted, target = image_pair((3, 3, 32, 24), seed=2)
    reference = peak_signal_noise_ratio(predicted, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    values = psnr(predicted, target)
    assert values.shape == (3,)
    assert (values - reference.double()).abs().max() <= 1e-4
    offset = torch.full_like(target, 0.05)
    assert torch.allclose(psnr(target.double() + offset.double(), target.double()),
                          torch.full((3,), -20 * np.log10(0.05), dtype=torch.float64), atol=1e-9)
    # A perfect prediction (an empty hole) is capped at 100 dB instead of making every mean infinite.
    assert torch.equal(psnr(target, target), torch.full((3,), 100.0, dtype=torch.float64))


def test_hole_scores_match_the_references_restricted_to_the_hole() -> None:
    predicted, target = image_pair((3, 3, 32, 40), seed=3)
    mask = torch.zeros(3, 1, 32, 40)
    mask[0, :, 4:20, 6:30] = 1
    mask[1, :, :, 25:] = 1
    mask[2, :, 10:12, :] = 0.5  # a soft mask weights its pixels
    mask[2, :, 20:30, 3:9] = 1
    weights = mask.expand_as(target).double().numpy()
    maps = scipy_ssim_maps(predicted.double().numpy(), target.double().numpy())
    reference = (maps * weights).sum(axis=(1, 2, 3)) / weights.sum(axis=(1, 2, 3))
    assert np.abs(hole_ssim(predicted.double(), target.double(), mask).numpy() - reference).max() <= 1e-10
    assert np.abs(hole_ssim(predicted, target, mask).numpy() - reference).max() <= 5e-5
    for index in range(2):  # binary masks: torchmetrics' PSNR of the hole pixels alone
        hole = mask[index].expand_as(target[index]).bool()
        expected = peak_signal_noise_ratio(predicted[index][hole], target[index][hole], data_range=1.0)
        assert hole_psnr(predicted, target, mask)[index].item() == pytest.approx(expected.item(), abs=1e-4)
    # Outside the hole nothing counts: a prediction that is exact there and off by 0.2 inside scores -20·log10(0.2).
    off = torch.where(mask[:2].bool(), target[:2] + 0.2, target[:2]).double()
    assert torch.allclose(hole_psnr(off, target[:2].double(), mask[:2]),
                          torch.full((2,), -20 * np.log10(0.2), dtype=torch.float64), atol=1e-9)


def test_hole_ssim_of_flat_images_is_the_closed_form_and_an_empty_hole_has_no_score() -> None:
    # Two flat images a and b: wherever the window stays inside the image, the map is (2ab + C1) / (a² + b² + C1).
    a, b = 0.6, 0.3
    target, predicted = (torch.full((2, 3, 40, 40), value, dtype=torch.float64) for value in (a, b))
    mask = torch.zeros(2, 1, 40, 40)
    mask[0, :, 10:30, 12:28] = 1
    expected = (2 * a * b + C1) / (a * a + b * b + C1)
    values = hole_ssim(predicted, target, mask)
    assert values[0].item() == pytest.approx(expected, abs=1e-9)
    assert hole_ssim(target, target, mask)[0].item() == pytest.approx(1.0, abs=1e-9)
    assert torch.isnan(values[1]) and torch.isnan(hole_psnr(predicted, target, mask)[1])
    with pytest.raises(ValueError, match="mask"):
        hole_ssim(predicted, target, mask[:, :, :20])
