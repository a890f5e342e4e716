"""``build_report``: read the evaluations, fill the before / after table (when asked for), the anchors, the tables
and Fig. 6, draw the figure and the sample grids, and write ``tables.md`` and ``report.json`` (every cell,
machine-readable) into the output folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lama.eval.schema import EVAL_FORMAT
from lama.files import atomic_write
from lama.report.anchors import AnchorTable, anchor_json, build_anchor_table
from lama.report.area_bins import BIN_METRIC, BINS_FIGURE_NAME, BinSeries, bin_series, write_bins_figure
from lama.report.before_after import BeforeAfterTable, before_after_json, before_after_sources, build_before_after
from lama.report.evaluations import Evaluation, Picker, load_evaluations
from lama.report.figures import RESOLUTION_FIGURE_NAME, ResolutionSeries, write_resolution_figure
from lama.report.markdown import report_markdown
from lama.report.paper import FIG6_NOTE, PAPER_EVAL_NOTE
from lama.report.samples import GridResult, write_sample_grids
from lama.report.tables import MISSING, TABLE_SPECS, Table, build_table, resolution_series

logger = logging.getLogger(__name__)

REPORT_FORMAT = "lama-report/1"
MARKDOWN_NAME = "tables.md"
JSON_NAME = "report.json"


@dataclass(frozen=True)
class ReportSummary:
    """What ``build_report`` wrote, in numbers; ``str()`` is the one-line summary the CLI prints."""

    out_dir: Path
    markdown: Path
    json: Path
    figure: Path
    tables: int
    figures: int
    sample_grids: int
    skipped_grids: int
    evaluations: int
    missing_cells: int  # metric cells (one FID or LPIPS value) with no evaluation behind them

    def __str__(self) -> str:
        text = (f"{_count(self.tables, 'table')}, {_count(self.figures, 'figure')}, "
                f"{_count(self.sample_grids, 'sample grid')} from {_count(self.evaluations, 'evaluation')}; "
                f"{_count(self.missing_cells, 'cell')} missing")
        if self.skipped_grids:
            text += f"; {_count(self.skipped_grids, 'sample grid')} skipped"
        return text


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def build_report(results: Sequence[str | Path], out_dir: str | Path, *, table_size: int | None = None,
                 samples: int = 4, progress: bool = False, experiments: Sequence[Evaluation] = (),
                 before_after: Sequence[str] = ()) -> ReportSummary:
    """Read evaluations, rebuild Tables 1, 2, 4, the mask_interp table, Fig. 6 and sample grids into ``out_dir``.

    ``experiments`` are evaluations read from elsewhere (saved DVC experiments): they fill what the files under
    ``results`` leave empty. The sample grids show the files' predictions only, the ones on disk. ``before_after``:
    two run names (before, after) whose scores head the report side by side; empty: no such table."""
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples}")
    if before_after and (len(before_after) != 2 or before_after[0] == before_after[1]):
        raise ValueError(f"before_after must be two distinct run names (before, after), got {list(before_after)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    evaluations = [*load_evaluations(results), *experiments]
    if not evaluations:
        logger.warning("no %s evaluation files in %s: every table cell will be missing", EVAL_FORMAT,
                       ", ".join(map(str, results)))
    picker = Picker()
    compared = build_before_after(*before_after, evaluations, picker) if before_after else None
    anchors = build_anchor_table(evaluations, table_size, picker)
    tables = [build_table(spec, evaluations, table_size, picker) for spec in TABLE_SPECS]
    series = resolution_series(evaluations, picker)
    write_resolution_figure(series, out / RESOLUTION_FIGURE_NAME)
    bins = bin_series(evaluations, table_size, picker)
    write_bins_figure(bins, out / BINS_FIGURE_NAME)
    used = _evaluations_shown(anchors, tables, compared, evaluations)
    grids = write_sample_grids(used, out, samples, progress, first=before_after) if samples else []
    summary = ReportSummary(
        out_dir=out, markdown=out / MARKDOWN_NAME, json=out / JSON_NAME, figure=out / RESOLUTION_FIGURE_NAME,
        tables=len(tables) + (compared is not None), figures=2,
        sample_grids=sum(grid.path is not None for grid in grids),
        skipped_grids=sum(grid.path is None for grid in grids), evaluations=len(evaluations),
        missing_cells=sum(cell.status == MISSING for table in tables for cell in table.cells()),
    )
    markdown = report_markdown(anchors, tables, series, bins, grids, str(summary), samples, compared)
    atomic_write(summary.markdown, lambda handle: handle.write(markdown.encode("utf-8")))
    payload = _report_json(anchors, tables, series, bins, grids, evaluations, summary, compared)
    atomic_write(summary.json, lambda handle: handle.write(json.dumps(payload, indent=2, ensure_ascii=False)
                                                            .encode("utf-8")))
    return summary


def _evaluations_shown(anchors: AnchorTable, tables: Sequence[Table], compared: BeforeAfterTable | None,
                       evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    """The workspace's evaluations behind a number of the report: theirs are the sample grids."""
    sources = {cell.source for table in tables for cell in table.cells() if cell.source}
    sources.update(before_after_sources(compared))
    sources.update(source for row in anchors.rows for source in row.sources.values())
    return [evaluation for evaluation in evaluations
            if str(evaluation.source) in sources and evaluation.experiment is None]


def _report_json(anchors: AnchorTable, tables: Sequence[Table], series: ResolutionSeries, bins: BinSeries,
                 grids: Sequence[GridResult], evaluations: Sequence[Evaluation], summary: ReportSummary,
                 compared: BeforeAfterTable | None) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "summary": str(summary),
        "evaluations": [_evaluation_json(evaluation) for evaluation in evaluations],
        "paper_note": PAPER_EVAL_NOTE,
        "before_after": None if compared is None else before_after_json(compared),
        "anchors": anchor_json(anchors),
        "tables": {table.spec.key: _table_json(table) for table in tables},
        "figure": {
            "path": RESOLUTION_FIGURE_NAME,
            "note": FIG6_NOTE,
            "series": {metric: {label: [vars(point) for point in points] for label, points in lines.items()}
                       for metric, lines in series.items()},
        },
        "area_bins": {"path": BINS_FIGURE_NAME, "metric": BIN_METRIC, "series": bins},
        "samples": [{**vars(grid), "title": grid.title} for grid in grids],
    }


def _evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "path": str(evaluation.source), "model": evaluation.model_label, "architecture": evaluation.architecture,
        "train_masks": evaluation.train_masks, "mask_interp": evaluation.mask_interp,
        "classical": evaluation.classical, "recipe": None if evaluation.recipe is None else list(evaluation.recipe),
        "mask_set": evaluation.mask_set, "kind": evaluation.mask_kind, "size": evaluation.mask_size,
        "n": evaluation.n, "stand_in": list(evaluation.stand_in_networks), "experiment": evaluation.experiment,
    }


def _table_json(table: Table) -> dict[str, Any]:
    spec = table.spec
    return {
        "title": spec.title,
        "size": table.size,
        "mask_sets": table.mask_sets,
        "base_row": None if spec.base_row is None else spec.rows[spec.base_row].label,
        "ours_compared_with": "paper" if spec.base_row is None else "base_row",
        "paper_note": spec.paper_note,
        "rows": [{
            "label": row.spec.label,
            "architecture": row.spec.selector.architecture,
            "classical": row.spec.selector.classical,
            "train_masks": row.spec.selector.train_masks,
            "mask_interp": row.spec.selector.mask_interp,
            "parameters": row.parameters,
            "paper_parameters": row.spec.paper.params if row.spec.paper else None,
            "paper_blocks": row.spec.paper.blocks if row.spec.paper else None,
            "cells": {key: vars(cell) for key, cell in row.cells.items()},
        } for row in table.rows],
        "missing": table.missing,
    }
