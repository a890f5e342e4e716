"""Rebuild the paper's tables (1, 2, 4, the mask_interp follow-up) and Fig. 6 from ``lama evaluate`` results, after
the sanity anchors (``lama.eval.anchors``): every model against the classical baselines by hole SSIM and PSNR.

Input: evaluation JSON files (format ``lama-eval/1``, one per model × eval mask set, read by
``lama.eval.evaluations``). Output, in ``out_dir``: ``tables.md`` (the tables with the paper's numbers beside ours),
``report.json`` (every cell, machine-readable), ``fig6_resolution.png`` and ``samples/<mask set>.png`` (masked
input | mask | every model of that set side by side | ground truth).

Relative changes follow the paper's marks: in an ablation table every row is compared with the table's base row,
ours with our base row and the paper's with the paper's, so the two columns compare like for like; Table 1 compares
ours with the paper. A value computed with a stand-in network is marked †, one of a model trained with another loss
than the paper's §, wherever it is shown, and neither is ever compared with the paper's number.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lama.baselines import LABELS as CLASSICAL_LABELS
from lama.baselines import METHODS
from lama.eval.anchors import AnchorTable, anchor_json, anchor_markdown, build_anchor_table
from lama.eval.evaluations import EVAL_FORMAT, Evaluation, Picker, choose_size, load_evaluations
from lama.eval.paper import (
    FIG6_NOTE,
    MASK_INTERP_NOTE,
    MASK_KIND_OF_WIDTH,
    MASK_WIDTHS,
    METRICS,
    PAPER_EVAL_NOTE,
    TABLE1_LAMA,
    TABLE2,
    TABLE4,
    PaperRow,
)
from lama.eval.report_figures import (
    METRIC_TITLES,
    STAND_IN_MARK,
    ResolutionSeries,
    SeriesPoint,
    grid_columns,
    sample_pairs,
    write_resolution_figure,
    write_sample_grid,
)
from lama.files import atomic_write

logger = logging.getLogger(__name__)

REPORT_FORMAT = "lama-report/1"
MARKDOWN_NAME = "tables.md"
JSON_NAME = "report.json"
FIGURE_NAME = "fig6_resolution.png"
SAMPLES_DIR = "samples"
MISSING = "missing"
NOT_AVAILABLE = "n/a"
PAPER_NOTE_MARK = "‡"
STAND_IN_FOOTNOTE = (
    f"{STAND_IN_MARK} computed with a seeded random stand-in network: not a real LPIPS/FID; fetch the weights with "
    "`lama weights fetch`."
)
RECIPE_MARK = "§"
LEGEND = (
    "▲/▼: relative change, higher/lower than the value it is compared with (ablation tables: the table's base row, "
    "ours against ours and the paper's against the paper's; Table 1: ours against the paper). For FID and LPIPS "
    f"lower is better, so ▼ is an improvement. A value marked {STAND_IN_MARK} (stand-in network) or {RECIPE_MARK} "
    "(trained with another loss than the paper's) is never compared with the paper's."
)
MASK_INTERPS = ("none", "bilinear", "bicubic")


# ------------------------------------------------------------------------------------------------- table structure
@dataclass(frozen=True)
class Selector:
    """Which model a table row means: a trained architecture plus its training masks and mask_interp, or a
    classical baseline."""

    architecture: str | None
    train_masks: str = "wide"
    mask_interp: str = "none"
    classical: str | None = None

    def matches(self, evaluation: Evaluation) -> bool:
        return (evaluation.architecture, evaluation.train_masks, evaluation.mask_interp, evaluation.classical) == (
            self.architecture, self.train_masks, self.mask_interp, self.classical)

    def short(self) -> str:
        """Name of the model in a missing-list line: the architecture plus what differs from the defaults."""
        if self.classical is not None:
            return self.classical
        parts = [str(self.architecture)]
        if self.train_masks != "wide":
            parts.append(f"{self.train_masks}-trained")
        if self.mask_interp != "none":
            parts.append(f"mask_interp={self.mask_interp}")
        return ", ".join(parts)

    def command(self) -> str:
        """The command that adds the row's model to the pipeline's workspace (the sample profile's run is the
        top-level config; the paper profile has a run per row, which plain `dvc repro` trains)."""
        if self.classical is not None:
            return f"dvc exp run -S 'eval.baselines=[{','.join(METHODS)}]'"
        command = f"dvc exp run -S generator={self.architecture}"
        if self.train_masks != "wide":
            command += f" -S masks={self.train_masks}"
        if self.mask_interp != "none":
            command += f" -S loss.mask_interp={self.mask_interp}"
        return command


@dataclass(frozen=True)
class RowSpec:
    label: str
    selector: Selector
    paper: PaperRow | None


@dataclass(frozen=True)
class TableSpec:
    """A paper table: its rows, which row is the base of the relative marks, and what the paper says about it."""

    key: str
    title: str
    rows: tuple[RowSpec, ...]
    base_row: int | None  # None: one-row table, ours compared with the paper's number
    show_params: bool = False
    paper_note: str | None = None  # set when the paper has no numbers for this table


TABLE_SPECS = (
    TableSpec("table1", "Table 1 — LaMa on Places (narrow and wide masks), with classical baselines",
              (RowSpec(TABLE1_LAMA.label, Selector("fourier"), TABLE1_LAMA),
               *(RowSpec(CLASSICAL_LABELS[method], Selector(None, classical=method), None) for method in METHODS)),
              base_row=None, show_params=True),
    TableSpec("table2", "Table 2 — architecture ablation (wide training masks)",
              tuple(RowSpec(row.label, Selector(arch), row) for arch, row in TABLE2.items()), base_row=0,
              show_params=True),
    TableSpec("table4", "Table 4 — training masks (LaMa-Regular)",
              tuple(RowSpec(row.label, Selector("regular", train_masks=masks), row) for masks, row in TABLE4.items()),
              base_row=1),
    TableSpec("mask_interp", "mask_interp ablation — hole-mask resizing in the feature-matching loss (LaMa-Fourier)",
              tuple(RowSpec(f"mask_interp={interp}", Selector("fourier", mask_interp=interp), None)
                    for interp in MASK_INTERPS), base_row=0, paper_note=MASK_INTERP_NOTE),
)


@dataclass
class Cell:
    """One metric on one mask width for one row: ours, the paper's, and both relative changes."""

    width: str
    metric: str
    mask_set: str
    status: str  # "ok", "missing" (no evaluation) or "n/a" (evaluated, no number)
    ours: float | None = None
    stand_in: bool = False
    recipe: tuple[str, ...] = ()  # how the evaluated model's training departs from the paper's recipe
    source: str | None = None
    paper: float | None = None
    paper_note: str | None = None
    ours_change_pct: float | None = None
    paper_change_pct: float | None = None


@dataclass
class Row:
    spec: RowSpec
    cells: dict[str, Cell]  # "narrow_fid", "narrow_lpips", "wide_fid", "wide_lpips"
    parameters: int | None = None


@dataclass
class Table:
    spec: TableSpec
    size: int | None
    mask_sets: dict[str, list[str]]  # width -> mask set names the cells used (or would use)
    rows: list[Row]
    missing: list[str] = field(default_factory=list)

    def cells(self) -> list[Cell]:
        return [cell for row in self.rows for cell in row.cells.values()]


def column_key(width: str, metric: str) -> str:
    return f"{width}_{metric}"


def relative_change_pct(value: float | None, base: float | None) -> float | None:
    """(value − base) / base in percent; None when either is unknown or the base is zero."""
    if value is None or base is None or base == 0:
        return None
    return (value - base) / base * 100.0


def _table_candidates(spec: TableSpec, evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    kinds = set(MASK_KIND_OF_WIDTH.values())
    return [evaluation for evaluation in evaluations if evaluation.mask_kind in kinds
            and any(row.selector.matches(evaluation) for row in spec.rows)]


def _default_mask_set(width: str, size: int | None) -> str:
    kind = MASK_KIND_OF_WIDTH[width]
    return kind if size is None else f"{kind}_{size}"


def build_table(spec: TableSpec, evaluations: Sequence[Evaluation], table_size: int | None, picker: Picker) -> Table:
    """Fill a table's cells from the evaluations at its resolution, then its relative changes and missing list."""
    candidates = _table_candidates(spec, evaluations)
    size = choose_size(candidates, table_size)
    table = Table(spec, size, {width: [] for width in MASK_WIDTHS}, [])
    for row_spec in spec.rows:
        row = Row(row_spec, {})
        for width in MASK_WIDTHS:
            matches = [evaluation for evaluation in candidates if row_spec.selector.matches(evaluation)
                       and evaluation.mask_kind == MASK_KIND_OF_WIDTH[width] and evaluation.mask_size == size]
            chosen = picker.pick(matches, f"{row_spec.selector.short()} × {_default_mask_set(width, size)}")
            mask_set = chosen.mask_set if chosen else _default_mask_set(width, size)
            if mask_set not in table.mask_sets[width]:
                table.mask_sets[width].append(mask_set)
            if chosen is None:
                table.missing.append(_missing_line(row_spec.selector, mask_set, width, size))
            elif row.parameters is None:
                row.parameters = chosen.parameters
            for metric in METRICS:
                row.cells[column_key(width, metric)] = _cell(width, metric, mask_set, chosen, row_spec.paper)
        table.rows.append(row)
    _fill_relative_changes(table)
    return table


def _missing_line(selector: Selector, mask_set: str, width: str, size: int | None) -> str:
    """What is missing and the command that fills it, e.g. "dilated × thick_512 — `dvc exp run -S ...`"."""
    where = f" at {size}×{size}" if size else ""
    return (f"{selector.short()} × {mask_set} — `{selector.command()}` (with a {MASK_KIND_OF_WIDTH[width]} mask set"
            f"{where} in eval.mask_sets)")


def _cell(width: str, metric: str, mask_set: str, evaluation: Evaluation | None, paper: PaperRow | None) -> Cell:
    cell = Cell(width, metric, mask_set, MISSING)
    if paper is not None:
        cell.paper = paper.value(width, metric)
        cell.paper_note = paper.notes.get(column_key(width, metric))
    if evaluation is None:
        return cell
    cell.source = str(evaluation.source)
    cell.recipe = evaluation.recipe or ()
    measured = evaluation.metric(metric)
    if measured is None or measured.value is None:
        cell.status = NOT_AVAILABLE
        cell.stand_in = measured.stand_in if measured else False
        return cell
    cell.status, cell.ours, cell.stand_in = "ok", measured.value, measured.stand_in
    return cell


def _fill_relative_changes(table: Table) -> None:
    """Ablations: every non-base row against the base row (ours vs ours, paper vs paper); Table 1: ours vs paper.

    Only like is compared with like: a value from a stand-in network or from a model trained with another recipe is
    never set against the paper's number, and ours against our base row only when both were measured and trained
    alike."""
    base_index = table.spec.base_row
    for index, row in enumerate(table.rows):
        for key, cell in row.cells.items():
            if base_index is None:
                if not (cell.stand_in or cell.recipe):
                    cell.ours_change_pct = relative_change_pct(cell.ours, cell.paper)
            elif index != base_index:
                base = table.rows[base_index].cells[key]
                if (cell.stand_in, bool(cell.recipe)) == (base.stand_in, bool(base.recipe)):
                    cell.ours_change_pct = relative_change_pct(cell.ours, base.ours)
                cell.paper_change_pct = relative_change_pct(cell.paper, base.paper)


# ------------------------------------------------------------------------------------------------------ formatting
def format_value(value: float, metric: str) -> str:
    """FID with 2 decimals, LPIPS with 3, as the paper prints them."""
    return f"{value:.2f}" if metric == "fid" else f"{value:.3f}"


def format_change(pct: float | None) -> str:
    """The paper's relative mark: ▲ higher, ▼ lower, with the size of the change in percent."""
    if pct is None:
        return ""
    arrow = "▲" if pct > 0 else "▼" if pct < 0 else "="
    return f"{arrow}{abs(pct):.1f}%"


def _with_change(text: str, pct: float | None) -> str:
    change = format_change(pct)
    return f"{text} {change}" if change else text


def ours_text(cell: Cell) -> str:
    """What a reader sees in an "ours" cell; a stand-in value always carries the † mark, a value of a model trained
    with another recipe than the paper's the § mark."""
    if cell.status == MISSING:
        return MISSING
    mark = (STAND_IN_MARK if cell.stand_in else "") + (RECIPE_MARK if cell.recipe else "")
    if cell.ours is None:
        return f"{NOT_AVAILABLE}{mark}"
    return _with_change(f"{format_value(cell.ours, cell.metric)}{mark}", cell.ours_change_pct)


def paper_text(cell: Cell) -> str:
    if cell.paper is None:
        return f"not printed{PAPER_NOTE_MARK}" if cell.paper_note else "—"
    return _with_change(format_value(cell.paper, cell.metric), cell.paper_change_pct)


def format_parameters(count: int | None) -> str:
    return NOT_AVAILABLE if count is None else f"{count / 1e6:.1f}M"


def _column_title(width: str, metric: str, whose: str) -> str:
    return f"{width.capitalize()} {METRIC_TITLES[metric]} ({whose})"


def table_markdown(table: Table) -> list[str]:
    """One table as Markdown lines: heading, what it was evaluated on, the grid, footnotes and the missing list."""
    spec = table.spec
    with_paper = spec.paper_note is None
    header = ["Model"]
    if spec.show_params:
        header += ["Params (paper)", "Params (ours)", "Blocks (paper)"]
    for width in MASK_WIDTHS:
        for metric in METRICS:
            header.append(_column_title(width, metric, "ours"))
            if with_paper:
                header.append(_column_title(width, metric, "paper"))
    lines = [f"## {spec.title}", "", _evaluated_on(table), ""]
    if spec.paper_note:
        lines.append(f"{spec.paper_note} Relative changes are against our `{spec.rows[spec.base_row or 0].label}` row.")
    elif spec.base_row is None:
        lines.append("Relative changes: ours against the paper's number.")
    else:
        lines.append(f"Relative changes: against the base row, {spec.rows[spec.base_row].label} "
                     "(ours against ours, the paper's against the paper's).")
    lines += ["", _markdown_row(header), _markdown_row(["---"] * len(header))]
    lines += [_markdown_row(_row_cells(row, spec.show_params, with_paper)) for row in table.rows]
    lines.append("")
    lines += _table_footnotes(table)
    return lines


def _evaluated_on(table: Table) -> str:
    size = "unknown size" if table.size is None else f"{table.size}×{table.size}"
    sets = "; ".join(f"{width} = {', '.join(table.mask_sets[width])} ({MASK_KIND_OF_WIDTH[width]} masks)"
                     for width in MASK_WIDTHS)
    return f"Our mask sets: {sets}; resolution {size}. Paper: Places365 512×512."


def _row_cells(row: Row, show_params: bool, with_paper: bool) -> list[str]:
    paper = row.spec.paper
    cells = [row.spec.label]
    if show_params:
        cells += [(paper.params or "—") if paper else "—", format_parameters(row.parameters),
                  str(paper.blocks) if paper and paper.blocks else "—"]
    for width in MASK_WIDTHS:
        for metric in METRICS:
            cell = row.cells[column_key(width, metric)]
            cells.append(ours_text(cell))
            if with_paper:
                cells.append(paper_text(cell))
    return cells


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table_footnotes(table: Table) -> list[str]:
    """Stand-in and recipe footnotes and notes on cells the paper leaves empty (a paragraph each), then one line per
    missing evaluation, each starting with "missing:" so it reads on its own."""
    lines = []
    if any(cell.stand_in for cell in table.cells()):
        lines.append(STAND_IN_FOOTNOTE)
    lines += recipe_footnotes([(row.spec.label, cell.recipe) for row in table.rows for cell in row.cells.values()])
    for row in table.rows:
        for cell in row.cells.values():
            if cell.paper is None and cell.paper_note:
                title = _column_title(cell.width, cell.metric, "paper")
                lines.append(f"{PAPER_NOTE_MARK} {row.spec.label}, {title}: {cell.paper_note}.")
    paragraphs = [paragraph for line in lines for paragraph in (line, "")]
    missing = [f"- missing: {item}" for item in table.missing] or ["missing: nothing"]
    return [*paragraphs, *missing, ""]


def recipe_footnotes(recipes: Sequence[tuple[str, tuple[str, ...]]]) -> list[str]:
    """One § paragraph per (model label, recipe) trained otherwise than the paper's, saying how; each once, in
    first-seen order."""
    distinct = dict.fromkeys((label, recipe) for label, recipe in recipes if recipe)
    return [f"{RECIPE_MARK} {label}: trained with a recipe that is not the paper's ({', '.join(recipe)}), so it is "
            "not compared with the paper's numbers." for label, recipe in distinct]


# ---------------------------------------------------------------------------------------------------------- Fig. 6
def resolution_series(evaluations: Sequence[Evaluation], picker: Picker) -> dict[str, dict[str, list[SeriesPoint]]]:
    """Fig. 6's points: per architecture (wide-trained, mask_interp none), FID and LPIPS on thick masks by size."""
    series: dict[str, dict[str, list[SeriesPoint]]] = {metric: {} for metric in METRICS}
    for architecture, paper_row in TABLE2.items():
        selector = Selector(architecture)
        by_size: dict[int, list[Evaluation]] = {}
        for evaluation in evaluations:
            if selector.matches(evaluation) and evaluation.mask_kind == "thick" and evaluation.mask_size:
                by_size.setdefault(evaluation.mask_size, []).append(evaluation)
        chosen = {size: picker.pick(found, f"{selector.short()} × thick at {size}×{size}")
                  for size, found in sorted(by_size.items())}
        deviates = any(evaluation.deviates for evaluation in chosen.values() if evaluation)
        label = f"{paper_row.label} ({architecture}){RECIPE_MARK if deviates else ''}"
        for size, evaluation in chosen.items():
            for metric in METRICS:
                measured = evaluation.metric(metric) if evaluation else None
                if measured is None:
                    continue
                point = SeriesPoint(size, measured.value, measured.stand_in, str(evaluation.source))
                series[metric].setdefault(label, []).append(point)
    return series


def figure_markdown(series: ResolutionSeries, figure_name: str) -> list[str]:
    sizes = sorted({point.size for lines in series.values() for points in lines.values() for point in points})
    lines = ["## Fig. 6 — FID and LPIPS against test resolution", "", f"![Fig. 6]({figure_name})", ""]
    if not sizes:
        lines.append("No evaluations on thick mask sets of wide-trained models yet: the figure only says so.  ")
    else:
        lines.append(f"Resolutions: {', '.join(map(str, sizes))}; wide (thick) mask sets; one line per architecture "
                     "(wide-trained, mask_interp none).  ")
    if any(point.stand_in for lines_ in series.values() for points in lines_.values() for point in points):
        lines.append(STAND_IN_FOOTNOTE + "  ")
    if any(label.endswith(RECIPE_MARK) for lines_ in series.values() for label in lines_):
        lines.append(f"{RECIPE_MARK} trained with a recipe that is not the paper's (see the tables' notes).  ")
    lines += [FIG6_NOTE, ""]
    return lines


# ---------------------------------------------------------------------------------------------------- sample grids
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


def _grid_order(evaluation: Evaluation) -> tuple[int, str]:
    """Trained models first (by name), then the classical baselines in their usual order."""
    if evaluation.classical is None:
        return 0, evaluation.model_label
    return 1, f"{METHODS.index(evaluation.classical):03d}" if evaluation.classical in METHODS else evaluation.classical


def write_sample_grids(evaluations: Sequence[Evaluation], out_dir: Path, samples: int, progress: bool
                       ) -> list[GridResult]:
    """One grid per mask set with every model evaluated on it side by side. A model whose files are gone loses its
    column (with a warning) and a grid with no model left is skipped: the report itself never fails on them."""
    by_set: dict[tuple[str, Path], list[Evaluation]] = {}
    for evaluation in evaluations:
        by_set.setdefault((evaluation.mask_set, evaluation.mask_dir), []).append(evaluation)
    results: list[GridResult] = []
    used: set[str] = set()
    for (mask_set, mask_dir), members in tqdm(sorted(by_set.items(), key=lambda item: str(item[0])),
                                              desc="sample grids", unit="grid", disable=not progress):
        shown: dict[str, Path] = {}
        sources: list[str] = []
        skipped: dict[str, str] = {}
        for evaluation in sorted(members, key=_grid_order):
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


def samples_markdown(grids: Sequence[GridResult], samples: int) -> list[str]:
    columns = " | ".join(grid_columns(["one column per model"]))
    lines = ["## Samples", "", f"Columns: {columns}; the first {samples} masks of each mask set in sorted order.", ""]
    if not grids:
        lines += ["No evaluations in the tables, so no sample grids.", ""]
    for grid in grids:
        if grid.path:
            lines += [f"### {grid.mask_set}", "", f"![{grid.title}]({grid.path})", ""]
        for model, reason in grid.skipped.items():
            lines += [f"{grid.mask_set}: {model} left out ({reason})", ""]
    return lines


# ----------------------------------------------------------------------------------------------------- the report
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
                 samples: int = 4, progress: bool = False) -> ReportSummary:
    """Read evaluations, rebuild Tables 1, 2, 4, the mask_interp table, Fig. 6 and sample grids into ``out_dir``."""
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    evaluations = load_evaluations(results)
    if not evaluations:
        logger.warning("no %s evaluation files in %s: every table cell will be missing", EVAL_FORMAT,
                       ", ".join(map(str, results)))
    picker = Picker()
    anchors = build_anchor_table(evaluations, table_size, picker)
    tables = [build_table(spec, evaluations, table_size, picker) for spec in TABLE_SPECS]
    series = resolution_series(evaluations, picker)
    write_resolution_figure(series, out / FIGURE_NAME)
    used = _evaluations_shown(anchors, tables, evaluations)
    grids = write_sample_grids(used, out, samples, progress) if samples else []
    summary = ReportSummary(
        out_dir=out, markdown=out / MARKDOWN_NAME, json=out / JSON_NAME, figure=out / FIGURE_NAME,
        tables=len(tables), figures=1, sample_grids=sum(grid.path is not None for grid in grids),
        skipped_grids=sum(grid.path is None for grid in grids), evaluations=len(evaluations),
        missing_cells=sum(cell.status == MISSING for table in tables for cell in table.cells()),
    )
    markdown = _report_markdown(anchors, tables, series, grids, summary, samples)
    atomic_write(summary.markdown, lambda handle: handle.write(markdown.encode("utf-8")))
    payload = _report_json(anchors, tables, series, grids, evaluations, summary)
    atomic_write(summary.json, lambda handle: handle.write(json.dumps(payload, indent=2, ensure_ascii=False)
                                                            .encode("utf-8")))
    logger.info("report written to %s: %s", out, summary)
    return summary


def _evaluations_shown(anchors: AnchorTable, tables: Sequence[Table], evaluations: Sequence[Evaluation]
                       ) -> list[Evaluation]:
    """The evaluations behind a number of the report: theirs are the sample grids."""
    sources = {cell.source for table in tables for cell in table.cells() if cell.source}
    sources.update(source for row in anchors.rows for source in row.sources.values())
    return [evaluation for evaluation in evaluations if str(evaluation.source) in sources]


def _report_markdown(anchors: AnchorTable, tables: Sequence[Table], series: ResolutionSeries,
                     grids: Sequence[GridResult], summary: ReportSummary, samples: int) -> str:
    lines = ["# LaMa paper tables, rebuilt", "", f"{summary}.", "", PAPER_EVAL_NOTE, "", LEGEND, ""]
    lines += anchor_markdown(anchors, RECIPE_MARK,
                             recipe_footnotes([(row.label, row.recipe) for row in anchors.rows]))
    for table in tables:
        lines += table_markdown(table)
    lines += figure_markdown(series, FIGURE_NAME)
    lines += samples_markdown(grids, samples)
    return "\n".join(lines)


def _report_json(anchors: AnchorTable, tables: Sequence[Table], series: ResolutionSeries,
                 grids: Sequence[GridResult], evaluations: Sequence[Evaluation], summary: ReportSummary
                 ) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "summary": str(summary),
        "evaluations": [_evaluation_json(evaluation) for evaluation in evaluations],
        "paper_note": PAPER_EVAL_NOTE,
        "anchors": anchor_json(anchors),
        "tables": {table.spec.key: _table_json(table) for table in tables},
        "figure": {
            "path": FIGURE_NAME,
            "note": FIG6_NOTE,
            "series": {metric: {label: [vars(point) for point in points] for label, points in lines.items()}
                       for metric, lines in series.items()},
        },
        "samples": [{**vars(grid), "title": grid.title} for grid in grids],
    }


def _evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "path": str(evaluation.source), "model": evaluation.model_label, "architecture": evaluation.architecture,
        "train_masks": evaluation.train_masks, "mask_interp": evaluation.mask_interp,
        "classical": evaluation.classical, "recipe": None if evaluation.recipe is None else list(evaluation.recipe),
        "mask_set": evaluation.mask_set, "kind": evaluation.mask_kind, "size": evaluation.mask_size,
        "n": evaluation.n, "stand_in": list(evaluation.stand_in_networks),
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
