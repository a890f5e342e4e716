"""Rebuild the paper's tables (1, 2, 4, the mask_interp follow-up) and Fig. 6 from ``lama evaluate`` results.

Input: evaluation JSON files (format ``lama-eval/1``, one per model × eval mask set). Output, in ``out_dir``:
``tables.md`` (the tables with the paper's numbers beside ours), ``report.json`` (every cell, machine-readable),
``fig6_resolution.png`` and ``samples/*.png`` (masked input | mask | ours | ground truth).

Relative changes follow the paper's marks: in an ablation table every row is compared with the table's base row,
ours with our base row and the paper's with the paper's, so the two columns compare like for like; Table 1 has one
row and compares ours with the paper. A value computed with a stand-in network is marked † wherever it is shown.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lama.eval.evaluator import FORMAT as EVAL_FORMAT
from lama.eval.metrics import STAND_IN_SUFFIX, affected_by_stand_ins
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
from lama.eval.provenance import MASK_SET_KINDS
from lama.eval.report_figures import (
    GRID_COLUMNS,
    METRIC_TITLES,
    STAND_IN_MARK,
    ResolutionSeries,
    SeriesPoint,
    write_resolution_figure,
    write_sample_grid,
)
from lama.files import atomic_write

logger = logging.getLogger(__name__)

REPORT_FORMAT = "lama-report/1"
PREFERRED_SIZE = 512  # the paper's Places resolution
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
LEGEND = (
    "▲/▼: relative change, higher/lower than the value it is compared with (ablation tables: the table's base row, "
    "ours against ours and the paper's against the paper's; Table 1: ours against the paper). For FID and LPIPS "
    "lower is better, so ▼ is an improvement."
)
MASK_INTERPS = ("none", "bilinear", "bicubic")
STAND_IN_NETWORKS = ("lpips", "fid")


# --------------------------------------------------------------------------------------------- reading evaluations
@dataclass(frozen=True)
class Measured:
    """A metric as an evaluation reports it: the value (None when NaN or null) and whether a stand-in made it."""

    value: float | None
    stand_in: bool


@dataclass(frozen=True)
class Evaluation:
    """One ``lama-eval/1`` file: which model, which eval mask set, and its metrics."""

    source: Path
    mask_set: str
    mask_kind: str | None
    mask_size: int | None
    mask_dir: Path
    predictions_dir: Path
    model_label: str
    architecture: str | None
    train_masks: str  # null in the file counts as "wide", the default training masks
    mask_interp: str  # null counts as "none", the paper's behaviour
    parameters: int | None
    stand_in_networks: tuple[str, ...]
    n: int
    metrics: Mapping[str, float | None]

    def metric(self, name: str) -> Measured | None:
        """Look up ``name`` or ``name_stand-in``; None when the evaluation did not compute it.

        The value counts as a stand-in's if its key says so or if ``stand_in`` lists a network it depends on, so an
        inconsistent file can never pass a stand-in number off as a real LPIPS or FID.
        """
        affected = name in affected_by_stand_ins(self.stand_in_networks)
        for key, labelled in ((name + STAND_IN_SUFFIX, True), (name, False)):
            if key in self.metrics:
                value = self.metrics[key]
                finite = value is not None and math.isfinite(value)
                return Measured(float(value) if finite else None, labelled or affected)
        return None


def load_evaluations(results: Iterable[str | Path]) -> list[Evaluation]:
    """Evaluation files named directly or found under directories, each once, sorted by path.

    Hidden folders and files under a searched directory (``.dvc``, ``.git``, temporary files) are skipped.
    """
    found: dict[Path, Evaluation] = {}
    for item in results:
        path = Path(item)
        if path.is_dir():
            candidates = [(file, False) for file in sorted(path.rglob("*.json"))
                          if not any(part.startswith(".") for part in file.relative_to(path).parts)]
        elif path.is_file():
            candidates = [(path, True)]
        else:
            raise FileNotFoundError(f"{path}: no such evaluation file or directory")
        for file, named in candidates:
            evaluation = _read_evaluation(file, named)
            if evaluation is not None:
                found.setdefault(file.resolve(), evaluation)
    return sorted(found.values(), key=lambda evaluation: str(evaluation.source))


def _read_evaluation(path: Path, named: bool) -> Evaluation | None:
    """Parse a file that claims ``lama-eval/1``; other JSON under a directory is not ours and is skipped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        if named:
            raise ValueError(f"{path}: not a readable JSON file ({error})") from error
        logger.warning("skipping %s: not a readable JSON file (%s)", path, error)
        return None
    if not isinstance(data, dict) or data.get("format") != EVAL_FORMAT:
        if named:
            raise ValueError(f"{path}: key 'format' must be {EVAL_FORMAT!r}")
        return None
    return parse_evaluation(data, path)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _one_of(*allowed: object) -> Callable[[Any], bool]:
    return lambda value: value in allowed


def _str_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _require(path: Path, data: Mapping, key: str, accept: Callable[[Any], bool], expected: str) -> Any:
    """The value at a dotted key, or a one-line ValueError naming the file and the key that is wrong."""
    node: Any = data
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict):
            raise ValueError(f"{path}: key '{'.'.join(parts[:depth])}' must be an object, got {node!r:.60}")
        if part not in node:
            raise ValueError(f"{path}: key '{key}' is missing (expected {expected})")
        node = node[part]
    if not accept(node):
        raise ValueError(f"{path}: key '{key}' must be {expected}, got {node!r:.60}")
    return node


def parse_evaluation(data: Mapping, path: Path) -> Evaluation:
    """Check the fields the report uses and turn them into an ``Evaluation``; ValueError names the wrong key."""
    def need(key: str, accept: Callable[[Any], bool], expected: str) -> Any:
        return _require(path, data, key, accept, expected)

    kinds = f"one of {[*MASK_SET_KINDS, None]}"
    metrics = need("metrics", lambda value: isinstance(value, dict), "an object of metric values")
    for name in metrics:
        need(f"metrics.{name}", _is_number_or_null, "a number or null")
    stand_in = need("stand_in", lambda value: isinstance(value, list), f"a list of {list(STAND_IN_NETWORKS)}")
    for index, network in enumerate(stand_in):
        if network not in STAND_IN_NETWORKS:
            raise ValueError(f"{path}: key 'stand_in[{index}]' must be one of {list(STAND_IN_NETWORKS)}, "
                             f"got {network!r:.60}")
    model_path = need("model.path", _str_or_null, "a string or null")
    model_name = need("model.name", _str_or_null, "a string or null")
    architecture = need("model.architecture", _str_or_null, "a string or null")
    return Evaluation(
        source=path,
        mask_set=need("mask_set.name", lambda value: isinstance(value, str) and value != "", "a non-empty string"),
        mask_kind=need("mask_set.kind", _one_of(*MASK_SET_KINDS, None), kinds),
        mask_size=need("mask_set.size", lambda value: value is None or (_is_int(value) and value > 0),
                       "a positive integer or null"),
        mask_dir=_data_path(need("mask_set.path", lambda value: isinstance(value, str), "a string"), path),
        predictions_dir=_data_path(need("predictions", lambda value: isinstance(value, str), "a string"), path),
        model_label=model_name or (Path(model_path).name if model_path else None) or architecture or path.stem,
        architecture=architecture,
        # Any training-mask config or interpolation is a valid record; only the paper's ones fill table rows.
        train_masks=need("model.train_masks", _str_or_null, "a string or null") or "wide",
        mask_interp=need("model.mask_interp", _str_or_null, "a string or null") or "none",
        parameters=need("model.parameters", lambda value: value is None or _is_int(value), "an integer or null"),
        stand_in_networks=tuple(stand_in),
        n=need("n", lambda value: _is_int(value) and value >= 0, "a non-negative integer"),
        metrics=dict(metrics),
    )


def _data_path(text: str, source: Path) -> Path:
    """Paths in an evaluation are relative to where ``lama evaluate`` ran: try here, then the file's ancestors."""
    path = Path(text)
    if path.is_absolute():
        return path
    for base in (Path.cwd(), *source.resolve().parents):
        if (base / path).exists():
            return base / path
    return path


# ------------------------------------------------------------------------------------------------- table structure
@dataclass(frozen=True)
class Selector:
    """Which trained model a table row means: architecture plus training masks and mask_interp."""

    architecture: str
    train_masks: str = "wide"
    mask_interp: str = "none"

    def matches(self, evaluation: Evaluation) -> bool:
        return (evaluation.architecture, evaluation.train_masks, evaluation.mask_interp) == (
            self.architecture, self.train_masks, self.mask_interp)

    def short(self) -> str:
        """Name of the model in a missing-list line: the architecture plus what differs from the defaults."""
        parts = [self.architecture]
        if self.train_masks != "wide":
            parts.append(f"{self.train_masks}-trained")
        if self.mask_interp != "none":
            parts.append(f"mask_interp={self.mask_interp}")
        return ", ".join(parts)

    def training_hint(self) -> str:
        """What to train to fill the row, in the config's own words."""
        hint = f"architecture={self.architecture}"
        if self.train_masks != "wide":
            hint += f" with train_masks={self.train_masks}"
        if self.mask_interp != "none":
            hint += f" with loss.mask_interp={self.mask_interp}"
        return hint


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
    TableSpec("table1", "Table 1 — LaMa on Places (narrow and wide masks)",
              (RowSpec(TABLE1_LAMA.label, Selector("fourier"), TABLE1_LAMA),), base_row=None, show_params=True),
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


def choose_size(evaluations: Sequence[Evaluation], table_size: int | None) -> int | None:
    """The eval resolution of a table: the one asked for, else 512 when present, else the largest present."""
    if table_size is not None:
        return table_size
    sizes = {evaluation.mask_size for evaluation in evaluations if evaluation.mask_size is not None}
    if not sizes:  # nothing evaluated yet: name the paper's size; only unsized sets: use those
        return None if evaluations else PREFERRED_SIZE
    return PREFERRED_SIZE if PREFERRED_SIZE in sizes else max(sizes)


class _Picker:
    """Chooses one evaluation per cell (the first by path) and warns once about each set of duplicates."""

    def __init__(self) -> None:
        self._warned: set[tuple[str, ...]] = set()

    def pick(self, matches: Sequence[Evaluation], what: str) -> Evaluation | None:
        if not matches:
            return None
        ordered = sorted(matches, key=lambda evaluation: str(evaluation.source))
        names = tuple(str(evaluation.source) for evaluation in ordered)
        if len(ordered) > 1 and names not in self._warned:
            self._warned.add(names)
            logger.warning("%d evaluations match %s: using %s, ignoring %s", len(names), what, names[0],
                           ", ".join(names[1:]))
        return ordered[0]


def _table_candidates(spec: TableSpec, evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    kinds = set(MASK_KIND_OF_WIDTH.values())
    return [evaluation for evaluation in evaluations if evaluation.mask_kind in kinds
            and any(row.selector.matches(evaluation) for row in spec.rows)]


def _default_mask_set(width: str, size: int | None) -> str:
    kind = MASK_KIND_OF_WIDTH[width]
    return kind if size is None else f"{kind}_{size}"


def build_table(spec: TableSpec, evaluations: Sequence[Evaluation], table_size: int | None, picker: _Picker) -> Table:
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
    """What is missing and how to get it, e.g. "dilated × thick_512 — train architecture=dilated and ..."."""
    where = f" at {size}×{size}" if size else ""
    return (f"{selector.short()} × {mask_set} — train {selector.training_hint()} and evaluate it on a "
            f"{MASK_KIND_OF_WIDTH[width]} mask set{where}")


def _cell(width: str, metric: str, mask_set: str, evaluation: Evaluation | None, paper: PaperRow | None) -> Cell:
    cell = Cell(width, metric, mask_set, MISSING)
    if paper is not None:
        cell.paper = paper.value(width, metric)
        cell.paper_note = paper.notes.get(column_key(width, metric))
    if evaluation is None:
        return cell
    cell.source = str(evaluation.source)
    measured = evaluation.metric(metric)
    if measured is None or measured.value is None:
        cell.status = NOT_AVAILABLE
        cell.stand_in = measured.stand_in if measured else False
        return cell
    cell.status, cell.ours, cell.stand_in = "ok", measured.value, measured.stand_in
    return cell


def _fill_relative_changes(table: Table) -> None:
    """Ablations: every non-base row against the base row (ours vs ours, paper vs paper); Table 1: ours vs paper."""
    base_index = table.spec.base_row
    for index, row in enumerate(table.rows):
        for key, cell in row.cells.items():
            if base_index is None:
                cell.ours_change_pct = relative_change_pct(cell.ours, cell.paper)
            elif index != base_index:
                base = table.rows[base_index].cells[key]
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
    """What a reader sees in an "ours" cell; a stand-in value always carries the † mark."""
    if cell.status == MISSING:
        return MISSING
    mark = STAND_IN_MARK if cell.stand_in else ""
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
    """Stand-in footnote and notes on cells the paper leaves empty (a paragraph each), then one line per missing
    evaluation, each starting with "missing:" so it reads on its own."""
    lines = []
    if any(cell.stand_in for cell in table.cells()):
        lines.append(STAND_IN_FOOTNOTE)
    for row in table.rows:
        for cell in row.cells.values():
            if cell.paper is None and cell.paper_note:
                title = _column_title(cell.width, cell.metric, "paper")
                lines.append(f"{PAPER_NOTE_MARK} {row.spec.label}, {title}: {cell.paper_note}.")
    paragraphs = [paragraph for line in lines for paragraph in (line, "")]
    missing = [f"- missing: {item}" for item in table.missing] or ["missing: nothing"]
    return [*paragraphs, *missing, ""]


# ---------------------------------------------------------------------------------------------------------- Fig. 6
def resolution_series(evaluations: Sequence[Evaluation], picker: _Picker) -> dict[str, dict[str, list[SeriesPoint]]]:
    """Fig. 6's points: per architecture (wide-trained, mask_interp none), FID and LPIPS on thick masks by size."""
    series: dict[str, dict[str, list[SeriesPoint]]] = {metric: {} for metric in METRICS}
    for architecture, paper_row in TABLE2.items():
        selector = Selector(architecture)
        by_size: dict[int, list[Evaluation]] = {}
        for evaluation in evaluations:
            if selector.matches(evaluation) and evaluation.mask_kind == "thick" and evaluation.mask_size:
                by_size.setdefault(evaluation.mask_size, []).append(evaluation)
        for size in sorted(by_size):
            chosen = picker.pick(by_size[size], f"{selector.short()} × thick at {size}×{size}")
            for metric in METRICS:
                measured = chosen.metric(metric) if chosen else None
                if measured is None:
                    continue
                point = SeriesPoint(size, measured.value, measured.stand_in, str(chosen.source))
                series[metric].setdefault(f"{paper_row.label} ({architecture})", []).append(point)
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
    lines += [FIG6_NOTE, ""]
    return lines


# ---------------------------------------------------------------------------------------------------- sample grids
@dataclass(frozen=True)
class GridResult:
    evaluation: str
    title: str
    path: str | None  # relative to out_dir; None when skipped
    reason: str | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "evaluation"


def _unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when two evaluations share a model and mask-set label."""
    candidate, number = name, 2
    while candidate in used:
        candidate, number = f"{name}-{number}", number + 1
    used.add(candidate)
    return candidate


def write_sample_grids(evaluations: Sequence[Evaluation], out_dir: Path, samples: int, progress: bool
                       ) -> list[GridResult]:
    """One grid per evaluation; a grid whose files are gone is skipped with a warning, never failing the report."""
    results: list[GridResult] = []
    used: set[str] = set()
    for evaluation in tqdm(evaluations, desc="sample grids", unit="grid", disable=not progress):
        title = f"{evaluation.model_label} × {evaluation.mask_set}"
        relative = f"{SAMPLES_DIR}/{_unique_name(_slug(f'{evaluation.model_label}__{evaluation.mask_set}'), used)}.png"
        try:
            write_sample_grid(evaluation.mask_dir, evaluation.predictions_dir, samples, out_dir / relative)
        except (OSError, ValueError) as error:
            logger.warning("skipping the sample grid of %s (%s): %s", title, evaluation.source, error)
            results.append(GridResult(str(evaluation.source), title, None, str(error)))
            continue
        results.append(GridResult(str(evaluation.source), title, relative))
    return results


def samples_markdown(grids: Sequence[GridResult], samples: int) -> list[str]:
    lines = ["## Samples", "", f"Columns: {' | '.join(GRID_COLUMNS)}; the first {samples} masks of each mask set "
             "in sorted order.", ""]
    if not grids:
        lines.append("No evaluations in the tables, so no sample grids.")
    for grid in grids:
        if grid.path:
            lines.append(f"- [{grid.title}]({grid.path}) — from `{grid.evaluation}`")
        else:
            lines.append(f"- {grid.title}: skipped ({grid.reason})")
    lines.append("")
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
    picker = _Picker()
    tables = [build_table(spec, evaluations, table_size, picker) for spec in TABLE_SPECS]
    series = resolution_series(evaluations, picker)
    write_resolution_figure(series, out / FIGURE_NAME)
    used = _evaluations_in_tables(tables, evaluations)
    grids = write_sample_grids(used, out, samples, progress) if samples else []
    summary = ReportSummary(
        out_dir=out, markdown=out / MARKDOWN_NAME, json=out / JSON_NAME, figure=out / FIGURE_NAME,
        tables=len(tables), figures=1, sample_grids=sum(grid.path is not None for grid in grids),
        skipped_grids=sum(grid.path is None for grid in grids), evaluations=len(evaluations),
        missing_cells=sum(cell.status == MISSING for table in tables for cell in table.cells()),
    )
    markdown = _report_markdown(tables, series, grids, summary, samples)
    atomic_write(summary.markdown, lambda handle: handle.write(markdown.encode("utf-8")))
    payload = _report_json(tables, series, grids, evaluations, summary)
    atomic_write(summary.json, lambda handle: handle.write(json.dumps(payload, indent=2, ensure_ascii=False)
                                                            .encode("utf-8")))
    logger.info("report written to %s: %s", out, summary)
    return summary


def _evaluations_in_tables(tables: Sequence[Table], evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    sources = {cell.source for table in tables for cell in table.cells() if cell.source}
    return [evaluation for evaluation in evaluations if str(evaluation.source) in sources]


def _report_markdown(tables: Sequence[Table], series: ResolutionSeries, grids: Sequence[GridResult],
                     summary: ReportSummary, samples: int) -> str:
    lines = ["# LaMa paper tables, rebuilt", "", f"{summary}.", "", PAPER_EVAL_NOTE, "", LEGEND, ""]
    for table in tables:
        lines += table_markdown(table)
    lines += figure_markdown(series, FIGURE_NAME)
    lines += samples_markdown(grids, samples)
    return "\n".join(lines)


def _report_json(tables: Sequence[Table], series: ResolutionSeries, grids: Sequence[GridResult],
                 evaluations: Sequence[Evaluation], summary: ReportSummary) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "summary": str(summary),
        "evaluations": [_evaluation_json(evaluation) for evaluation in evaluations],
        "paper_note": PAPER_EVAL_NOTE,
        "tables": {table.spec.key: _table_json(table) for table in tables},
        "figure": {
            "path": FIGURE_NAME,
            "note": FIG6_NOTE,
            "series": {metric: {label: [vars(point) for point in points] for label, points in lines.items()}
                       for metric, lines in series.items()},
        },
        "samples": [vars(grid) for grid in grids],
    }


def _evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "path": str(evaluation.source), "model": evaluation.model_label, "architecture": evaluation.architecture,
        "train_masks": evaluation.train_masks, "mask_interp": evaluation.mask_interp,
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
            "train_masks": row.spec.selector.train_masks,
            "mask_interp": row.spec.selector.mask_interp,
            "parameters": row.parameters,
            "paper_parameters": row.spec.paper.params if row.spec.paper else None,
            "paper_blocks": row.spec.paper.blocks if row.spec.paper else None,
            "cells": {key: vars(cell) for key, cell in row.cells.items()},
        } for row in table.rows],
        "missing": table.missing,
    }
