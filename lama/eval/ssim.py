"""SSIM and PSNR per image, as LaMa's evaluator measures them (``saicinpainting/evaluation/losses/ssim.py``), and
the same two restricted to the hole.

The official SSIM differs from scikit-image's and torchmetrics' in ways that move the numbers by up to 0.14: an
11×11 Gaussian window (σ 1.5) applied per channel with *zero* padding 5, so the map keeps the image size and the
borders count; constants C1 = 0.01², C2 = 0.03² for data in [0, 1]; the value is the mean of the map over channels and
pixels. It is computed in float32 like the official code (σ² = E[x²] − μ² cancels, so float64 differs by ~1e-5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)

WINDOW_SIZE = 11
SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2
# A perfect reconstruction (an empty hole) has an infinite PSNR, which would make every mean infinite; the MSE is
# floored at 1e-10, so PSNR is capped at 100 dB, far above anything an 8-bit image can tell apart from its target.
PSNR_MIN_MSE = 1e-10


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The (size, size) window: float64 exponentials rounded to ``dtype``, normalised, then the outer product."""
    centre = size // 2
    taps = torch.tensor([math.exp(-((x - centre) ** 2) / (2 * sigma**2)) for x in range(size)], dtype=dtype)
    taps = taps / taps.sum()
    return taps[:, None] @ taps[None, :]


def _check_pair(predicted: torch.Tensor, target: torch.Tensor) -> None:
    if predicted.ndim != 4 or predicted.shape != target.shape:
        raise ValueError(
            f"expected two (N, C, H, W) batches of the same shape, got {tuple(predicted.shape)} and "
            f"{tuple(target.shape)}"
        )


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def ssim_map(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The per-pixel SSIM map (N, C, H, W) with zero padding; float32 (float64 stays float64, for references)."""
    _check_pair(predicted, target)
    dtype = _compute_dtype(predicted)
    x, y = predicted.to(dtype), target.to(dtype)
    channels = x.shape[1]
    window = gaussian_window(dtype=dtype).to(x.device).expand(channels, 1, WINDOW_SIZE, WINDOW_SIZE).contiguous()

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, window, padding=WINDOW_SIZE // 2, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = blur(x * x) - mu_xx
    var_y = blur(y * y) - mu_yy
    cov_xy = blur(x * y) - mu_xy
    return ((2 * mu_xy + C1) * (2 * cov_xy + C2)) / ((mu_xx + mu_yy + C1) * (var_x + var_y + C2))


def ssim(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM per image (N,): the mean of ``ssim_map`` over channels and pixels, borders included."""
    return ssim_map(predicted, target).mean(dim=(1, 2, 3))


def psnr(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR per image (N,) in dB for data range 1, from the float64 MSE (capped at 100 dB, see ``PSNR_MIN_MSE``)."""
    _check_pair(predicted, target)
    mse = (predicted.double() - target.double()).pow(2).mean(dim=(1, 2, 3))
    return -10.0 * torch.log10(mse.clamp_min(PSNR_MIN_MSE))


def _hole_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image, the mean of ``values`` (N, C, H, W) weighted by the (N, 1, H, W) mask; NaN where the hole is empty."""
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != values.shape[-2:] or len(mask) != len(values):
        raise ValueError(f"expected an (N, 1, H, W) mask for {tuple(values.shape)} images, got {tuple(mask.shape)}")
    weights = mask.to(values.dtype).expand_as(values)
    return (values * weights).sum(dim=(1, 2, 3)) / weights.sum(dim=(1, 2, 3))


def hole_ssim(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SSIM per image (N,) over the hole: ``ssim_map`` averaged with the mask as weights (NaN for an empty hole).

    The official SSIM averages over the whole image, where the known pixels (copied from the target) lift every
    method towards 1; over the hole it tells inpaintings apart, and a flat fill scores near 0."""
    return _hole_mean(ssim_map(predicted, target), mask)


def hole_psnr(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR per image (N,) in dB over the hole: the float64 MSE weighted by the mask (NaN for an empty hole)."""
    _check_pair(predicted, target)
    mse = _hole_mean((predicted.double() - target.double()).pow(2), mask)
    return -10.0 * torch.log10(mse.clamp_min(PSNR_MIN_MSE))
