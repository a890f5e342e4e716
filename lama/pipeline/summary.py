"""The pipeline's headline scores, ``metrics/summary.json``: the only file DVC treats as metrics, so
``dvc metrics show``, ``dvc metrics diff`` and ``dvc exp show`` fit a terminal.

Per trained run, four scores on the widest of the tables' mask sets (thick, the paper's "wide masks"): hole SSIM and
hole PSNR, which need no pretrained network, and LPIPS and FID, keyed as the evaluation keys them (``_stand-in``
when a seeded stand-in network computed them). Every score of every mask set stays in ``metrics/eval/``,
``results/`` and the report.
"""

from __future__ import annotations

import json

from lama.eval.metrics import STAND_IN_SUFFIX
from lama.eval.provenance import MASK_SET_KINDS, kind_from_name
from lama.pipeline.layout import EVAL_METRICS
from lama.pipeline.params import PipelineParams

HEADLINE_METRICS = ("hole_ssim", "hole_psnr", "lpips", "fid")


def headline_mask_set(mask_sets: list[str]) -> str:
    """The widest of ``mask_sets`` by the kind its name says (thin < medium < thick); the last on a tie."""
    def width(name: str) -> int:
        kind = kind_from_name(name)
        return -1 if kind is None else MASK_SET_KINDS.index(kind)

    return max(reversed(mask_sets), key=width)


def headline_scores(params: PipelineParams) -> dict[str, dict[str, float]]:
    """{run: {metric: value}} from the evaluate stage's totals of each run on the headline mask set."""
    mask_set = headline_mask_set(params.eval.mask_sets)
    scores = {}
    for run in params.run_names:
        totals = json.loads((EVAL_METRICS / run / f"{mask_set}.json").read_text())
        scores[run] = {key: totals[key] for metric in HEADLINE_METRICS for key in (metric, metric + STAND_IN_SUFFIX)
                       if key in totals}
    return scores
