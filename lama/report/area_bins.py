"""Scores by hole area: one panel per table mask set, the area bins in order along x, a bar per model.

The evaluate stage also hands these numbers to DVC's plots, but DVC draws them in a browser page that loads its
plotting library from the internet; this PNG is the same view for eyes offline, drawn with matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lama.baselines import LABELS as CLASSICAL_LABELS
from lama.baselines import METHODS
from lama.eval.bins import BIN_NAMES
from lama.eval.provenance import MASK_SET_KINDS
from lama.files import atomic_write
from lama.report.evaluations import Evaluation, Picker, choose_size

BINS_FIGURE_NAME = "area_bins.png"
BIN_METRIC = "hole_ssim"  # needs no pretrained network, so it is a real number offline too
NO_BINS_TEXT = "no evaluations with area bins yet"

# mask set -> model label -> area bin -> value (None: not computed)
BinSeries = Mapping[str, Mapping[str, Mapping[str, float | None]]]


def bin_series(evaluations: Sequence[Evaluation], table_size: int | None, picker: Picker
               ) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per mask kind at the tables' size (thin, medium, thick), each model's mean ``BIN_METRIC`` per area bin: the
    workspace's trained models by name, then the classical methods in their usual order, named as in the tables."""
    sized = [evaluation for evaluation in evaluations
             if evaluation.mask_kind is not None and evaluation.experiment is None]
    size = choose_size(sized, table_size)
    series: dict[str, dict[str, dict[str, float | None]]] = {}
    for kind in MASK_SET_KINDS:
        at_kind = [evaluation for evaluation in sized if evaluation.mask_kind == kind and evaluation.mask_size == size]
        trained = [evaluation for evaluation in at_kind if evaluation.classical is None]
        models = [(label, [evaluation for evaluation in trained if evaluation.model_label == label])
                  for label in sorted({evaluation.model_label for evaluation in trained})]
        models += [(CLASSICAL_LABELS[method], [evaluation for evaluation in at_kind if evaluation.classical == method])
                   for method in METHODS]
        for label, matches in models:
            chosen = picker.pick(matches, f"{label} × {kind}_{size} by area")
            values = {name: scores.get(BIN_METRIC) for name, scores in chosen.bins.items()} if chosen else {}
            if values:
                series.setdefault(chosen.mask_set, {})[label] = values
    return series


def draw_bins_figure(series: BinSeries) -> Figure:
    """The figure without pyplot (no global state): one panel per mask set, grouped bars per area bin."""
    figure = Figure(figsize=(4.5 * max(len(series), 1), 3.8), layout="constrained")
    if not series:
        figure.text(0.5, 0.5, NO_BINS_TEXT, ha="center", va="center", fontsize=14)
        return figure
    axes = np.atleast_1d(figure.subplots(1, len(series), sharey=True))
    for ax, (mask_set, models) in zip(axes, series.items(), strict=True):
        bins = [name for name in BIN_NAMES if any(name in values for values in models.values())]
        width = 0.8 / max(len(models), 1)
        for index, (label, values) in enumerate(models.items()):
            heights = [math.nan if values.get(name) is None else values[name] for name in bins]
            ax.bar(np.arange(len(bins)) + (index - (len(models) - 1) / 2) * width, heights, width, label=label)
        ax.set_xticks(range(len(bins)), bins, rotation=45, ha="right", fontsize=8)
        ax.set_title(mask_set, fontsize=10)
        ax.set_xlabel("hole area (share of the image)")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel(f"{BIN_METRIC} (higher is better)")
    axes[-1].legend(fontsize=8)
    figure.suptitle(f"{BIN_METRIC} by hole area, per test mask set", fontsize=10)
    return figure


def write_bins_figure(series: BinSeries, path: Path) -> None:
    """Render the figure to a PNG with the Agg renderer (offline, no display needed)."""
    figure = draw_bins_figure(series)
    atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
