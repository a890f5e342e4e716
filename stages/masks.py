"""Stage masks: one fixed eval mask set, ``python stages/masks.py val|test NAME`` (``lama masks``)."""

import sys

from lama.masks import build_eval_mask_set
from lama.pipeline.layout import PREPARED_DIR, mask_set_dir
from lama.pipeline.params import mask_set_config
from lama.pipeline.stage import run_stage


def main(params) -> None:
    split, name = sys.argv[1:3]
    size = mask_set_config(name, "mask set").out_min_size
    print(build_eval_mask_set(name, PREPARED_DIR / split / str(size), mask_set_dir(split, name),
                              seed=params.eval.mask_seed))


run_stage("masks", main)
