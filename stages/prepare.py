"""Stage prepare: the train shards and the fixed val/test image folders (``lama prepare``)."""

import os

from lama.data.prepare import prepare
from lama.pipeline.layout import PREPARED_DIR
from lama.pipeline.stage import run_stage


def main(params) -> None:
    print(prepare(params.prepare, PREPARED_DIR, n_jobs=os.cpu_count() or 1))


run_stage("prepare", main)
