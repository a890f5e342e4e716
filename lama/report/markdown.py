"""The report as Markdown: the before / after table, the tables with the paper's numbers beside ours, their marks and
footnotes, the missing lists, and the Fig. 6, scores-by-area and sample-grid sections.

A value computed with a stand-in network is marked †, one of a model trained with another loss than the paper's §,
wherever it is shown; relative changes carry the paper's ▲/▼ marks, the before / after changes ▲/▼ for better/worse.
"""

from __future__ import annotations

from collections.abc import Sequence

from lama.report.anchors import HOLE_COLUMNS, AnchorTable, anchor_markdown
from lama.report.area_bins import BIN_METRIC, BINS_FIGURE_NAME, BinSeries
from lama.report.before_after import BETTER, TITLE, UNCHANGED, WORSE, BeforeAfterTable, Change, higher_is_better
from lama.report.figures import (
    METRIC_TITLES,
    RECIPE_MARK,
    RESOLUTION_FIGURE_NAME,
    STAND_IN_MARK,
    ResolutionSeries,
    grid_columns,
)
from lama.report.paper import FIG6_NOTE, MASK_KIND_OF_WIDTH, MASK_WIDTHS, METRICS, PAPER_EVAL_NOTE
from lama.report.samples import GridResult
from lama.report.tables import MISSING, NOT_AVAILABLE, Cell, Row, Table, column_key

PAPER_NOTE_MARK = "‡"
STAND_IN_FOOTNOTE = (
    f"{STAND_IN_MARK} computed with a seeded random stand-in network: not a real LPIPS/FID; fetch the weights with "
    "`lama weights fetch`."
)
LEGEND = (
    "▲/▼ in the paper's tables: relative change, higher/lower than the value it is compared with (ablation tables: "
    "the table's base row, ours against ours and the paper's against the paper's; Table 1: ours against the paper). "
    f"For FID and LPIPS lower is better, so ▼ is an improvement. A value marked {STAND_IN_MARK} (stand-in network) or "
    f"{RECIPE_MARK} (trained with another loss than the paper's) is never compared with the paper's."
)
CHANGE_MARKS = {BETTER: "▲", WORSE: "▼"}
MINUS = "−"


def format_value(value: float, metric: str) -> str:
    """FID with 2 decimals, LPIPS with 3, as the paper prints them; hole SSIM and PSNR as the anchor table does."""
    if metric in HOLE_COLUMNS:
        return f"{value:.{HOLE_COLUMNS[metric][1]}f}"
    return f"{value:.2f}" if metric == "fid" else f"{value:.3f}"


def metric_title(metric: str) -> str:
    return HOLE_COLUMNS[metric][0] if metric in HOLE_COLUMNS else METRIC_TITLES[metric]


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
    lines += _experiment_footnotes(table)
    paragraphs = [paragraph for line in lines for paragraph in (line, "")]
    missing = [f"- missing: {item}" for item in table.missing] or ["missing: nothing"]
    return [*paragraphs, *missing, ""]


def _experiment_footnotes(table: Table) -> list[str]:
    """Which rows were read from saved DVC experiments rather than the workspace, and from which."""
    sources = {row.spec.label: sorted({cell.experiment for cell in row.cells.values() if cell.experiment})
               for row in table.rows}
    named = [f"{label} from {', '.join(f'`{name}`' for name in names)}" for label, names in sources.items() if names]
    return [f"From saved DVC experiments (`dvc exp show`), not the workspace: {'; '.join(named)}."] if named else []


def recipe_footnotes(recipes: Sequence[tuple[str, tuple[str, ...]]]) -> list[str]:
    """One § paragraph per (model label, recipe) trained otherwise than the paper's, saying how; each once, in
    first-seen order."""
    distinct = dict.fromkeys((label, recipe) for label, recipe in recipes if recipe)
    return [f"{RECIPE_MARK} {label}: trained with a recipe that is not the paper's ({', '.join(recipe)}), so it is "
            "not compared with the paper's numbers." for label, recipe in distinct]


def figure_markdown(series: ResolutionSeries) -> list[str]:
    sizes = sorted({point.size for lines in series.values() for points in lines.values() for point in points})
    lines = ["## Fig. 6 — FID and LPIPS against test resolution", "", f"![Fig. 6]({RESOLUTION_FIGURE_NAME})", ""]
    if not sizes:
        lines.append("No evaluations of trained models on thick mask sets yet: the figure only says so.  ")
    else:
        lines.append(f"Resolutions: {', '.join(map(str, sizes))}; wide (thick) mask sets; one line per trained model "
                     "(its training masks and mask_interp where they are not the paper's, [the saved experiment] "
                     "where it is not the workspace's).  ")
    if any(point.stand_in for lines_ in series.values() for points in lines_.values() for point in points):
        lines.append(STAND_IN_FOOTNOTE + "  ")
    if any(label.endswith(RECIPE_MARK) for lines_ in series.values() for label in lines_):
        lines.append(f"{RECIPE_MARK} trained with a recipe that is not the paper's (see the tables' notes).  ")
    lines += [FIG6_NOTE, ""]
    return lines


def area_bins_markdown(series: BinSeries) -> list[str]:
    """The scores-by-hole-area figure and what it shows."""
    lines = ["## Scores by hole area", "", f"![{BIN_METRIC} by hole area]({BINS_FIGURE_NAME})", ""]
    if not series:
        return [*lines, "No evaluations with area bins yet.", ""]
    return [*lines, f"Mean {BIN_METRIC} per bin of hole area (the share of the image masked), per test mask set at "
            "the tables' resolution, for the workspace's models: a model that learned to inpaint loses less as the "
            "hole grows. `dvc plots show` draws the same numbers per evaluation.", ""]


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


def before_after_markdown(table: BeforeAfterTable) -> list[str]:
    """The before / after table: a row per mask set, each metric as before, after and the change judged by its
    direction; then the footnotes and the missing list."""
    runs = {run: f"`{run}`{RECIPE_MARK if table.recipes.get(run) else ''}" for run in (table.before, table.after)}
    lines = [f"## {TITLE}", "", f"Before: {runs[table.before]}; after: {runs[table.after]} (the workspace's "
             f"evaluations). Change: after − before, ▲ better, ▼ worse, 0 unchanged{_directions(table.metrics)}.", ""]
    if not table.rows:
        lines += ["No mask set evaluated for both runs.", ""]
    else:
        header = ["Mask set"]
        for metric in table.metrics:
            header += [f"{metric_title(metric)} {which}" for which in ("before", "after", "change")]
        lines += [_markdown_row(header), _markdown_row(["---"] * len(header))]
        for row in table.rows:
            cells = [row.mask_set]
            for metric in table.metrics:
                cell = row.cells.get(metric)
                cells += [_before_after_value(cell, "before", metric), _before_after_value(cell, "after", metric),
                          _change_text(cell, metric)]
            lines.append(_markdown_row(cells))
        lines.append("")
    notes = [STAND_IN_FOOTNOTE] if table.stand_in() else []
    notes += recipe_footnotes([(f"`{run}`", recipe) for run, recipe in table.recipes.items()])
    missing = [f"- missing: {item}" for item in table.missing] or ["missing: nothing"]
    return [*lines, *(paragraph for note in notes for paragraph in (note, "")), *missing, ""]


def _directions(metrics: Sequence[str]) -> str:
    """Which way is better for each column, e.g. " (higher is better for hole SSIM; lower for FID)"."""
    higher = [metric_title(metric) for metric in metrics if higher_is_better(metric)]
    lower = [metric_title(metric) for metric in metrics if not higher_is_better(metric)]
    parts = [f"{word} for {', '.join(titles)}" for word, titles in (("higher is better", higher), ("lower", lower))
             if titles]
    return f" ({'; '.join(parts)})" if parts else ""


def _before_after_value(cell: Change | None, which: str, metric: str) -> str:
    if cell is None:
        return NOT_AVAILABLE
    value = getattr(cell, which)
    text = NOT_AVAILABLE if value is None else format_value(value, metric)
    return text + (STAND_IN_MARK if getattr(cell, f"{which}_stand_in") else "")


def _change_text(cell: Change | None, metric: str) -> str:
    """``+0.012 ▲`` (better), ``−0.80 ▼`` (worse), ``0`` (unchanged), ``—`` (not comparable)."""
    if cell is None or cell.change is None or cell.verdict is None:
        return "—"
    if cell.verdict == UNCHANGED:
        return "0"
    sign = "+" if cell.change > 0 else MINUS
    mark = STAND_IN_MARK if cell.stand_in else ""
    return f"{sign}{format_value(abs(cell.change), metric)}{mark} {CHANGE_MARKS[cell.verdict]}"


def report_markdown(anchors: AnchorTable, tables: Sequence[Table], series: ResolutionSeries, bins: BinSeries,
                    grids: Sequence[GridResult], summary: str, samples: int,
                    before_after: BeforeAfterTable | None = None) -> str:
    """The whole ``tables.md``: the one-line ``summary``, notes and legend, the before / after table when asked for,
    anchors, tables, Fig. 6, the scores by hole area and samples."""
    lines = ["# LaMa paper tables, rebuilt", "", f"{summary}.", "", PAPER_EVAL_NOTE, "", LEGEND, ""]
    if before_after is not None:
        lines += before_after_markdown(before_after)
    lines += anchor_markdown(anchors, RECIPE_MARK,
                             recipe_footnotes([(row.label, row.recipe) for row in anchors.rows]))
    for table in tables:
        lines += table_markdown(table)
    lines += figure_markdown(series)
    lines += area_bins_markdown(bins)
    lines += samples_markdown(grids, samples)
    return "\n".join(lines)
