"""The sanity-anchor table: every evaluated model against the classical baselines, by SSIM and PSNR over the hole.

The paper's tables compare FID and LPIPS, which need pretrained networks; offline those are stand-ins and say
little. Hole SSIM and hole PSNR need no network, so they are real numbers on any machine, and the classical baselines
(``lama.baselines``) give them a scale: a trained model below the mean-colour fill has not learned to inpaint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lama.baselines import LABELS as CLASSICAL_LABELS
from lama.baselines import METHODS
from lama.eval.provenance import MASK_SET_KINDS
from lama.report.evaluations import Evaluation, Picker, choose_size

TITLE = "Sanity anchors — hole SSIM and PSNR, trained models against classical baselines"
# Metric -> (column title, decimals); both higher is better.
HOLE_COLUMNS = {"hole_ssim": ("hole SSIM", 3), "hole_psnr": ("hole PSNR (dB)", 2)}
NOTE = (
    "SSIM and PSNR over the hole only: the official scores average over the whole image, where the known pixels "
    "are copied from the ground truth and lift every method alike. No pretrained network is involved, so these are "
    "real numbers offline too. Bold: the best of a column. A trained model below the mean-colour fill has not "
    "learned to inpaint; one above Telea and Navier–Stokes has learned more than diffusion from the hole's border."
)


@dataclass
class AnchorRow:
    label: str
    classical: str | None
    recipe: tuple[str, ...] = ()
    values: dict[str, float | None] = field(default_factory=dict)  # "<kind>_<metric>" -> value (None: n/a)
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class AnchorTable:
    size: int | None
    kinds: list[str]  # mask kinds with at least one evaluation at ``size``, in thin/medium/thick order
    rows: list[AnchorRow]

    def best(self, key: str) -> float | None:
        values = [row.values[key] for row in self.rows if row.values.get(key) is not None]
        return max(values) if values else None  # type: ignore[type-var]


def build_anchor_table(evaluations: Sequence[Evaluation], table_size: int | None, picker: Picker) -> AnchorTable:
    """Rows: each trained model (by name, sorted), then each classical baseline evaluated; columns: hole SSIM and
    PSNR per mask kind at the table's resolution."""
    sized = [evaluation for evaluation in evaluations if evaluation.mask_kind is not None]
    size = choose_size(sized, table_size)
    at_size = [evaluation for evaluation in sized if evaluation.mask_size == size]
    kinds = [kind for kind in MASK_SET_KINDS if any(evaluation.mask_kind == kind for evaluation in at_size)]
    trained = sorted({evaluation.model_label for evaluation in at_size if evaluation.classical is None})
    rows = [AnchorRow(label, None) for label in trained]
    rows += [AnchorRow(CLASSICAL_LABELS[method], method) for method in METHODS
             if any(evaluation.classical == method for evaluation in at_size)]
    for row in rows:
        for kind in kinds:
            matches = [evaluation for evaluation in at_size if evaluation.mask_kind == kind and (
                evaluation.classical == row.classical if row.classical else
                evaluation.classical is None and evaluation.model_label == row.label)]
            chosen = picker.pick(matches, f"{row.label} × {kind}_{size}")
            if chosen is None:
                continue
            row.recipe = row.recipe or (chosen.recipe or ())
            for metric in HOLE_COLUMNS:
                measured = chosen.metric(metric)
                row.values[f"{kind}_{metric}"] = measured.value if measured else None
                row.sources[f"{kind}_{metric}"] = str(chosen.source)
    return AnchorTable(size, kinds, rows)


def anchor_markdown(table: AnchorTable, recipe_mark: str, recipe_footnotes: Sequence[str]) -> list[str]:
    """The table as Markdown lines, with the note and the recipe footnotes of its trained models."""
    lines = [f"## {TITLE}", ""]
    if not table.rows:
        return [*lines, "No evaluations with a mask kind yet.", ""]
    size = "unknown size" if table.size is None else f"{table.size}×{table.size}"
    lines += [f"Mask sets: {', '.join(table.kinds)} at {size}. {NOTE}", ""]
    header = ["Model"] + [f"{kind.capitalize()} {title}" for kind in table.kinds for title, _ in HOLE_COLUMNS.values()]
    lines += ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for row in table.rows:
        cells = [row.label + (recipe_mark if row.recipe else "")]
        for kind in table.kinds:
            for metric, (_, decimals) in HOLE_COLUMNS.items():
                key = f"{kind}_{metric}"
                if key not in row.values:
                    cells.append("missing")
                    continue
                value = row.values[key]
                text = "n/a" if value is None else f"{value:.{decimals}f}"
                cells.append(f"**{text}**" if value is not None and value == table.best(key) else text)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for footnote in recipe_footnotes:
        lines += [footnote, ""]
    return lines


def anchor_json(table: AnchorTable) -> dict[str, Any]:
    return {"title": TITLE, "size": table.size, "kinds": table.kinds,
            "rows": [{"label": row.label, "classical": row.classical, "recipe": list(row.recipe),
                      "values": row.values, "sources": row.sources} for row in table.rows]}
