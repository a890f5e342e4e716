"""Stage masks: one fixed eval mask set, ``python stages/masks.py val|test NAME`` (``lama masks``)."""

import sys

from layout import PREPARED, mask_set_dir, run_stage

from lama.config import mask_set_config
from lama.masks import build_eval_mask_set


def main(params, raw) -> None:
    split, name = sys.argv[1:3]
    size = mask_set_config(name, "mask set").out_min_size
    print(build_eval_mask_set(name, PREPARED / split / str(size), mask_set_dir(split, name),
                              seed=params.eval.mask_seed))


run_stage("masks", main)
