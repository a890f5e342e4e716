"""The before / after table: two runs of the workspace (a model as it is and the same model fine-tuned) on every eval
mask set both were evaluated on, each metric as before, after and the change, judged by the metric's direction so a
reader sees at once whether the fine-tuning helped.

Only the workspace's evaluations count (a saved experiment holds other trainings under the same run names); the
metrics are the ones the other tables show, with their directions from the trainer's ``MAXIMISED``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lama.eval.provenance import MASK_SET_KINDS
from lama.report.anchors import HOLE_COLUMNS
from lama.report.evaluations import Evaluation, Picker
from lama.report.paper import METRICS
from lama.train.config import MAXIMISED

TITLE = "Before / after fine-tuning"
# The anchors' network-free scores first, then the paper tables' FID and LPIPS.
BEFORE_AFTER_METRICS = (*HOLE_COLUMNS, *METRICS)
BETTER, WORSE, UNCHANGED = "better", "worse", "unchanged"


@dataclass
class Change:
    """One metric on one mask set: both runs' values (None: n/a) and whether a stand-in network made each, the change
    after − before and its verdict.

    The change is left out when either value is unknown or only one of them comes from a stand-in network."""

    before: float | None
    after: float | None
    before_stand_in: bool
    after_stand_in: bool
    higher_is_better: bool
    change: float | None = None
    verdict: str | None = None  # better, worse or unchanged, by the metric's direction

    @property
    def stand_in(self) -> bool:
        return self.before_stand_in or self.after_stand_in


@dataclass
class BeforeAfterRow:
    mask_set: str
    before_source: str
    after_source: str
    cells: dict[str, Change]  # metric -> change; a metric neither file holds is absent


@dataclass
class BeforeAfterTable:
    before: str
    after: str
    metrics: list[str]  # the columns: the metrics of BEFORE_AFTER_METRICS some row holds
    rows: list[BeforeAfterRow]
    recipes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # run -> how it departs from the paper's recipe
    missing: list[str] = field(default_factory=list)

    def stand_in(self) -> bool:
        return any(cell.stand_in for row in self.rows for cell in row.cells.values())


def higher_is_better(metric: str) -> bool:
    return metric in MAXIMISED


def verdict(change: float, higher: bool) -> str:
    """Better, worse or unchanged for a change after − before of a metric where ``higher`` is better (or not)."""
    if change == 0:
        return UNCHANGED
    return BETTER if (change > 0) == higher else WORSE


def _mask_set_order(evaluation: Evaluation) -> tuple[int, int, str]:
    """Thin, medium, thick (then sets of no known kind), each by size, then by name."""
    kind = MASK_SET_KINDS.index(evaluation.mask_kind) if evaluation.mask_kind in MASK_SET_KINDS else len(MASK_SET_KINDS)
    return kind, evaluation.mask_size or 0, evaluation.mask_set


def _by_mask_set(run: str, evaluations: Sequence[Evaluation], picker: Picker) -> dict[str, Evaluation]:
    """The run's workspace evaluation of each mask set, in the report's mask-set order."""
    found: dict[str, list[Evaluation]] = {}
    for evaluation in sorted(evaluations, key=_mask_set_order):
        if evaluation.classical is None and evaluation.experiment is None and evaluation.model_label == run:
            found.setdefault(evaluation.mask_set, []).append(evaluation)
    chosen = {name: picker.pick(matches, f"{run} × {name}") for name, matches in found.items()}
    return {name: evaluation for name, evaluation in chosen.items() if evaluation is not None}


def _change(metric: str, before: Evaluation, after: Evaluation) -> Change | None:
    measured = before.metric(metric), after.metric(metric)
    if measured == (None, None):
        return None
    old, new = (item.value if item else None for item in measured)
    old_stand_in, new_stand_in = (bool(item and item.stand_in) for item in measured)
    cell = Change(old, new, old_stand_in, new_stand_in, higher_is_better(metric))
    if old is not None and new is not None and old_stand_in == new_stand_in:
        cell.change = new - old
        cell.verdict = verdict(cell.change, cell.higher_is_better)
    return cell


def build_before_after(before: str, after: str, evaluations: Sequence[Evaluation], picker: Picker
                       ) -> BeforeAfterTable:
    """One row per mask set both runs were evaluated on; a run with no evaluation, or a mask set only one run has,
    goes to the missing list."""
    runs = {run: _by_mask_set(run, evaluations, picker) for run in (before, after)}
    table = BeforeAfterTable(before, after, [], [])
    for run, found in runs.items():
        if not found:
            table.missing.append(f"`{run}` has no evaluation in the workspace")
        for evaluation in found.values():
            table.recipes[run] = table.recipes.get(run) or (evaluation.recipe or ())
    for mask_set, old in runs[before].items():
        new = runs[after].get(mask_set)
        if new is None:
            continue
        cells = {metric: cell for metric in BEFORE_AFTER_METRICS if (cell := _change(metric, old, new))}
        table.rows.append(BeforeAfterRow(mask_set, str(old.source), str(new.source), cells))
    for run, other in ((before, after), (after, before)):
        if runs[run]:  # a run with no evaluation at all is one line above
            table.missing += [f"`{run}` × {name}" for name in runs[other] if name not in runs[run]]
    table.metrics = [metric for metric in BEFORE_AFTER_METRICS if any(metric in row.cells for row in table.rows)]
    return table


def before_after_sources(table: BeforeAfterTable | None) -> set[str]:
    """The evaluations behind the table's numbers."""
    if table is None:
        return set()
    return {source for row in table.rows for source in (row.before_source, row.after_source)}


def before_after_json(table: BeforeAfterTable) -> dict[str, Any]:
    return {"title": TITLE, "before": table.before, "after": table.after, "metrics": table.metrics,
            "recipes": {run: list(recipe) for run, recipe in table.recipes.items()},
            "rows": [{"mask_set": row.mask_set, "before_source": row.before_source, "after_source": row.after_source,
                      "cells": {metric: vars(cell) for metric, cell in row.cells.items()}} for row in table.rows],
            "missing": table.missing}
