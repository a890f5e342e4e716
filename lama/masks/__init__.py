"""Training mask generators and the eval mask-set builder, reproducing the official LaMa masks.

Each name below is imported from its submodule when first used, so that importing ``lama.masks.configs`` (which
the command line reads for its help) does not load numpy and OpenCV.
"""

from __future__ import annotations

from lama.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "lama.masks.configs": ("EVAL_CONFIGS", "TRAIN_CONFIGS", "EvalSetConfig", "eval_set_config"),
    "lama.masks.eval_set": ("MaskSetSummary", "build_eval_mask_set", "select_masks"),
    "lama.masks.generator": ("MaskGenerator",),
})
