"""Training mask generators and the eval mask-set builder, reproducing the official LaMa masks."""

from lama.masks.configs import EVAL_CONFIGS, TRAIN_CONFIGS, EvalSetConfig, eval_set_config
from lama.masks.eval_set import MaskSetSummary, build_eval_mask_set, select_masks
from lama.masks.generator import MaskGenerator

__all__ = [
    "EVAL_CONFIGS",
    "TRAIN_CONFIGS",
    "EvalSetConfig",
    "MaskGenerator",
    "MaskSetSummary",
    "build_eval_mask_set",
    "eval_set_config",
    "select_masks",
]
