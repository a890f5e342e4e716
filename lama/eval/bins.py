"""Scores per mask-area bin, as LaMa's offline evaluator groups them, and its TSV layout.

The area of a mask is the float32 mean of its values in [0, 1] (not the fraction of nonzero pixels), binned into
left-closed tenths ``0-10%`` … ``90-100%`` with an area of exactly 1 folded into the last bin. Per-image metrics get a
mean and a population standard deviation per bin (the hole scores over the images that have a hole); FID is
recomputed on each bin's images (NaN for a single image). The TSV is the official file: two header rows, one row
per non-empty bin, then ``total``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from lama.eval.fid import FIDMethod, frechet_distance
from lama.eval.metrics import HOLE_METRICS, PER_IMAGE_METRICS, fid100_f1, labelled_name

BIN_EDGES = np.linspace(0, 1, 11)
BIN_NAMES = tuple(f"{100 * low:.0f}-{100 * high:.0f}%" for low, high in itertools.pairwise(BIN_EDGES))
TOTAL = "total"
# The official TSV's columns, in its order; PSNR is not among them (it is in the JSON).
TSV_COLUMNS = (("ssim", "mean"), ("ssim", "std"), ("lpips", "mean"), ("lpips", "std"), ("fid", "mean"),
               ("lpips_fid100_f1", "mean"))

GroupScores = dict[str, object]


def mask_areas(masks: torch.Tensor) -> np.ndarray:
    """Float32 mean of each (N, 1, H, W) mask's values, computed like the official evaluator (torch, float32)."""
    return masks.reshape(masks.shape[0], -1).to(torch.float32).mean(-1).numpy()


def area_bin_indices(areas: np.ndarray) -> np.ndarray:
    """Bin index 0…9 per area; right-open bins, so an area of exactly 0.5 lands in ``50-60%``."""
    indices = np.searchsorted(BIN_EDGES, np.asarray(areas), side="right") - 1
    return np.minimum(indices, len(BIN_NAMES) - 1).astype(np.int64)


def bin_members(bins: np.ndarray) -> dict[str, np.ndarray]:
    """Bin name → indices of its images, for the non-empty bins in bin order.

    Within a bin the images keep the order of ``np.argsort`` with numpy's default (unstable) sort, as in the
    official evaluator: the Fréchet distance depends on the sample order only through rounding, but that rounding
    can flip the fourth decimal of the TSV.
    """
    order = np.argsort(bins)
    sorted_bins = bins[order]
    return {BIN_NAMES[b]: order[sorted_bins == b] for b in np.unique(bins)}


def group_scores(
    per_image: Mapping[str, np.ndarray],
    bins: np.ndarray,
    features_predicted: np.ndarray,
    features_target: np.ndarray,
    fid_method: FIDMethod = "sqrtm",
) -> dict[str, GroupScores]:
    """Scores of every non-empty bin and of ``total``: ``n``, mean/std per per-image metric, ``fid``; ``total`` also
    has the two integral scores. Bins come first in bin order, ``total`` last."""
    groups = {**bin_members(bins), TOTAL: np.arange(len(bins))}
    scores: dict[str, GroupScores] = {}
    for name, members in groups.items():
        group: GroupScores = {"n": len(members)}
        for metric in PER_IMAGE_METRICS:
            values = np.asarray(per_image[metric], dtype=np.float64)[members]
            if metric in HOLE_METRICS:
                values = values[np.isfinite(values)]  # an empty hole has no hole score
            group[metric] = {"mean": float(values.mean()), "std": float(values.std())} if len(values) else None
        group["fid"] = frechet_distance(features_predicted[members], features_target[members], method=fid_method)
        scores[name] = group
    total = scores[TOTAL]
    total["lpips_fid100_f1"] = fid100_f1(1.0 - total["lpips"]["mean"], total["fid"])
    total["ssim_fid100_f1"] = fid100_f1(total["ssim"]["mean"], total["fid"])
    return scores


def format_tsv(scores: Mapping[str, GroupScores], stand_in_networks: Iterable[str] = ()) -> str:
    """The official ``metrics.tsv`` text for ``group_scores`` output.

    Written here rather than through pandas because the official file came from pandas' legacy ``stack``: pandas 3
    puts ``total`` first, so the layout would depend on the installed pandas. Rows are the non-empty bins sorted as
    strings, then ``total``; a column with no value at all is dropped, a missing value is an empty cell, numbers
    have 4 decimals. Column names carry ``_stand-in`` where a stand-in network computed them.
    """
    stand_ins = tuple(stand_in_networks)
    row_names = [*sorted(name for name in scores if name != TOTAL), TOTAL]

    def cell_value(row: str, metric: str, stat: str) -> float:
        value = scores[row].get(metric)
        if isinstance(value, Mapping):
            value = value[stat]
        return math.nan if value is None else float(value)

    table = {column: [cell_value(row, *column) for row in row_names] for column in TSV_COLUMNS}
    columns = [column for column in TSV_COLUMNS if not all(math.isnan(v) for v in table[column])]
    lines = [
        "\t" + "\t".join(labelled_name(metric, stand_ins) for metric, _ in columns),
        "\t" + "\t".join(stat for _, stat in columns),
    ]
    for index, row in enumerate(row_names):
        cells = ("" if math.isnan(table[column][index]) else f"{table[column][index]:.4f}" for column in columns)
        lines.append(row + "\t" + "\t".join(cells))
    return "\n".join(lines) + "\n"


def labelled_scores(scores: Mapping[str, GroupScores], stand_in_networks: Iterable[str]) -> dict[str, GroupScores]:
    """``group_scores`` output with every metric key renamed by ``labelled_name`` (``lpips`` → ``lpips_stand-in``…)
    and NaN written as None, ready for JSON."""
    stand_ins = tuple(stand_in_networks)

    def plain(value: object) -> object:
        if isinstance(value, Mapping):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, float) and math.isnan(value):
            return None
        return value

    return {
        group: {key if key == "n" else labelled_name(key, stand_ins): plain(value) for key, value in values.items()}
        for group, values in scores.items()
    }
