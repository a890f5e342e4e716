"""Evaluation metrics as LaMa's evaluator defines them: SSIM, PSNR, LPIPS (VGG), FID (pytorch-fid Inception).

Each name below is imported from its submodule when first used, so that importing a torch-free submodule (such as
``lama.eval.options``, which the command line reads for its help) does not load torch.
"""

from __future__ import annotations

from lama.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "lama.eval.fid": ("FIDInceptionV3", "activation_statistics", "frechet_distance",
                      "frechet_distance_from_statistics"),
    "lama.eval.lpips": ("LPIPSVGG",),
    "lama.eval.metrics": ("METRIC_NAMES", "ValidationMetrics", "affected_by_stand_ins", "fid100_f1"),
    "lama.eval.ssim": ("psnr", "ssim", "ssim_map"),
})
