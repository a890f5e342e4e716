"""What the report shows: the paper's tables (1, 2, 4, the mask_interp follow-up) as row specs with the selector of the
model each row means, filled from evaluations into cells with relative changes, and the selection behind Fig. 6.

Relative changes follow the paper's marks: in an ablation table every row is compared with the table's base row,
ours with our base row and the paper's with the paper's, so the two columns compare like for like; Table 1 compares
ours with the paper. A value computed with a stand-in network or of a model trained with another loss than the
paper's is never compared with the paper's number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lama.baselines import LABELS as CLASSICAL_LABELS
from lama.baselines import METHODS
from lama.losses.feature_matching import UNMASKED
from lama.report.evaluations import Evaluation, Picker, choose_size
from lama.report.figures import RECIPE_MARK, SeriesPoint
from lama.report.paper import (
    MASK_INTERP_NOTE,
    MASK_KIND_OF_WIDTH,
    MASK_WIDTHS,
    METRICS,
    TABLE1_LAMA,
    TABLE2,
    TABLE4,
    PaperRow,
)

MISSING = "missing"
NOT_AVAILABLE = "n/a"
# The rows of the mask_interp table: the follow-up study's settings (the paper's, then the two smooth resizings);
# nearest and area are valid settings of the loss that the study did not run.
MASK_INTERP_ROWS = (UNMASKED, "bilinear", "bicubic")


@dataclass(frozen=True)
class Selector:
    """Which model a table row means: a trained architecture plus its training masks and mask_interp, or a
    classical baseline."""

    architecture: str | None
    train_masks: str = "wide"
    mask_interp: str = UNMASKED
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
        if self.mask_interp != UNMASKED:
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
        if self.mask_interp != UNMASKED:
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
                    for interp in MASK_INTERP_ROWS), base_row=0, paper_note=MASK_INTERP_NOTE),
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
    experiment: str | None = None  # the saved DVC experiment the value was read from; None: the workspace
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
    cell.source, cell.experiment = str(evaluation.source), evaluation.experiment
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


# ---------------------------------------------------------------------------------------------------------- Fig. 6
def resolution_series(evaluations: Sequence[Evaluation], picker: Picker) -> dict[str, dict[str, list[SeriesPoint]]]:
    """Fig. 6's points: FID and LPIPS on thick masks by size, one line per trained model found (its architecture,
    training masks and mask_interp, and the saved experiment it comes from), so every run evaluated at several
    resolutions is drawn, in the workspace or in an experiment."""
    series: dict[str, dict[str, list[SeriesPoint]]] = {metric: {} for metric in METRICS}
    by_line: dict[tuple[Selector, str | None], dict[int, list[Evaluation]]] = {}
    for evaluation in evaluations:
        if evaluation.classical is None and evaluation.mask_kind == "thick" and evaluation.mask_size:
            selector = Selector(evaluation.architecture, evaluation.train_masks, evaluation.mask_interp)
            line = by_line.setdefault((selector, evaluation.experiment), {})
            line.setdefault(evaluation.mask_size, []).append(evaluation)
    for (selector, experiment), by_size in sorted(by_line.items(), key=lambda item: _line_order(*item[0])):
        chosen = {size: picker.pick(found, f"{selector.short()} × thick at {size}×{size}")
                  for size, found in sorted(by_size.items())}
        deviates = any(evaluation.deviates for evaluation in chosen.values() if evaluation)
        label = _line_label(selector, experiment) + (RECIPE_MARK if deviates else "")
        for size, evaluation in chosen.items():
            for metric in METRICS:
                measured = evaluation.metric(metric) if evaluation else None
                if measured is None:
                    continue
                point = SeriesPoint(size, measured.value, measured.stand_in, str(evaluation.source))
                series[metric].setdefault(label, []).append(point)
    return series


def _line_order(selector: Selector, experiment: str | None) -> tuple[int, str, str]:
    """The paper's Table 2 architectures first in its order, then other models; the workspace before experiments."""
    order = list(TABLE2).index(selector.architecture) if selector.architecture in TABLE2 else len(TABLE2)
    return order, selector.short(), experiment or ""


def _line_label(selector: Selector, experiment: str | None) -> str:
    """The paper's name for a wide-trained architecture without mask_interp (as in Table 2), else what differs;
    a line from a saved experiment carries its name in brackets, as ``dvc exp show`` writes it."""
    paper = TABLE2.get(selector.architecture) if selector == Selector(selector.architecture) else None
    label = f"{paper.label} ({selector.architecture})" if paper else selector.short()
    return f"{label} [{experiment}]" if experiment else label
