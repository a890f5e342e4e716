"""Evaluation metrics as LaMa's evaluator defines them: SSIM, PSNR, LPIPS (VGG), FID (pytorch-fid Inception)."""

from lama.eval.fid import FIDInceptionV3, activation_statistics, frechet_distance, frechet_distance_from_statistics
from lama.eval.lpips import LPIPSVGG
from lama.eval.metrics import METRIC_NAMES, ValidationMetrics, affected_by_stand_ins, fid100_f1
from lama.eval.ssim import psnr, ssim, ssim_map

__all__ = [
    "LPIPSVGG",
    "METRIC_NAMES",
    "FIDInceptionV3",
    "ValidationMetrics",
    "activation_statistics",
    "affected_by_stand_ins",
    "fid100_f1",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "psnr",
    "ssim",
    "ssim_map",
]
