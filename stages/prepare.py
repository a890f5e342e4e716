"""Stage prepare: the train shards and the fixed val/test image folders (``lama prepare``)."""

import os

from layout import PREPARED, run_stage

from lama.data.prepare import prepare


def main(params, raw) -> None:
    print(prepare(params.prepare, PREPARED, n_jobs=os.cpu_count() or 1))


run_stage("prepare", main)
