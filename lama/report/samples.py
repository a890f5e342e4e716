"""The report's sample grids: one per eval mask set, every model evaluated on it side by side (trained models first,
then the classical baselines), drawn by ``lama.report.figures``. A model whose files are gone loses its column with a
warning; the report never fails on them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lama.baselines import METHODS
from lama.progress import progress_bar
from lama.report.evaluations import Evaluation
from lama.report.figures import sample_pairs, write_sample_grid

logger = logging.getLogger(__name__)

SAMPLES_DIR = "samples"


@dataclass(frozen=True)
class GridResult:
    """One mask set's grid: the models shown side by side, the evaluations they come from, and those left out."""

    mask_set: str
    models: list[str]
    sources: list[str]
    path: str | None  # relative to out_dir; None when no model could be shown
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why its column is missing

    @property
    def title(self) -> str:
        return f"{self.mask_set}: {', '.join(self.models) or 'nothing to show'}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "evaluation"


def _unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when two mask sets share a name."""
    candidate, number = name, 2
    while candidate in used:
        candidate, number = f"{name}-{number}", number + 1
    used.add(candidate)
    return candidate


def _grid_order(evaluation: Evaluation, first: Sequence[str]) -> tuple[int, str]:
    """The models named in ``first`` in that order (a before / after pair side by side), then the other trained
    models by name, then the classical baselines in their usual order."""
    if evaluation.classical is None:
        label = evaluation.model_label
        return (0, f"{first.index(label):03d}") if label in first else (1, label)
    return 2, f"{METHODS.index(evaluation.classical):03d}" if evaluation.classical in METHODS else evaluation.classical


def write_sample_grids(evaluations: Sequence[Evaluation], out_dir: Path, samples: int, progress: bool,
                       first: Sequence[str] = ()) -> list[GridResult]:
    """One grid per mask set with every model evaluated on it side by side, those named in ``first`` first. A model
    whose files are gone loses its column (with a warning) and a grid with no model left is skipped: the report
    itself never fails on them."""
    by_set: dict[tuple[str, Path], list[Evaluation]] = {}
    for evaluation in evaluations:
        by_set.setdefault((evaluation.mask_set, evaluation.mask_dir), []).append(evaluation)
    results: list[GridResult] = []
    used: set[str] = set()
    for (mask_set, mask_dir), members in progress_bar(sorted(by_set.items(), key=lambda item: str(item[0])),
                                                      desc="sample grids", unit="grid", disable=not progress):
        shown: dict[str, Path] = {}
        sources: list[str] = []
        skipped: dict[str, str] = {}
        for evaluation in sorted(members, key=lambda evaluation: _grid_order(evaluation, first)):
            name = evaluation.classical or evaluation.model_label
            try:
                sample_pairs(mask_dir, evaluation.predictions_dir, samples)
            except (OSError, ValueError) as error:
                logger.warning("leaving %s out of the %s sample grid (%s): %s", name, mask_set, evaluation.source,
                               error)
                skipped[name] = str(error)
                continue
            shown.setdefault(name, evaluation.predictions_dir)
            sources.append(str(evaluation.source))
        relative = f"{SAMPLES_DIR}/{_unique_name(_slug(mask_set), used)}.png"
        if shown:
            try:
                write_sample_grid(mask_dir, shown, samples, out_dir / relative)
            except (OSError, ValueError) as error:
                logger.warning("skipping the %s sample grid: %s", mask_set, error)
                skipped.update(dict.fromkeys(shown, str(error)))
                shown = {}
        results.append(GridResult(mask_set, list(shown), sources, relative if shown else None, skipped))
    return results
