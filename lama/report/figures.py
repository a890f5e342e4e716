"""The report's pictures: Fig. 6 (FID and LPIPS against test resolution) and sample grids of predictions.

Both take plain data (series of points; folders on disk) rather than evaluation records, so they can be drawn and
tested on their own. Files are written through ``lama.files.atomic_write``: a killed run never leaves half a PNG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from lama.files import atomic_write
from lama.imageio.eval_layout import MaskImagePair, find_pairs, open_image

# The report's marks, wherever a value is shown: computed with a stand-in network; of a model trained with another
# loss than the paper's.
STAND_IN_MARK = "†"
RECIPE_MARK = "§"
METRIC_TITLES = {"fid": "FID", "lpips": "LPIPS"}
RESOLUTION_FIGURE_NAME = "fig6_resolution.png"
NO_DATA_TEXT = "no evaluations at several resolutions yet"
ONE_SIZE_TEXT = "only one resolution evaluated so far"
# A grid's columns: these two, one per model (its name), then the ground truth.
GRID_INPUT_COLUMNS = ("masked input", "mask")
GRID_TARGET_COLUMN = "ground truth"
GRID_HEADER = 14  # pixels of column labels above the tiles
GRID_GAP = 2  # white pixels between tiles
WHITE = 255


@dataclass(frozen=True)
class SeriesPoint:
    """One evaluation on the figure: its test resolution, the metric value (None if n/a) and where it came from."""

    size: int
    value: float | None
    stand_in: bool
    source: str


# metric ("fid"/"lpips") -> line label -> points
ResolutionSeries = Mapping[str, Mapping[str, Sequence[SeriesPoint]]]


def series_sizes(series: ResolutionSeries) -> list[int]:
    """Every test resolution that has a point, sorted: the x ticks of the figure."""
    return sorted({point.size for lines in series.values() for points in lines.values() for point in points})


def panel_stand_in(series: ResolutionSeries, metric: str) -> bool:
    """Whether any point in a panel was computed with a stand-in network (then the whole panel is labelled)."""
    return any(point.stand_in for points in series.get(metric, {}).values() for point in points)


def draw_resolution_figure(series: ResolutionSeries) -> Figure:
    """Fig. 6 as a matplotlib Figure (no pyplot, so no global state): one panel per metric, one line per model."""
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    sizes = series_sizes(series)
    if not sizes:
        figure.text(0.5, 0.5, NO_DATA_TEXT, ha="center", va="center", fontsize=14)
        return figure
    axes = figure.subplots(1, len(METRIC_TITLES))
    for ax, metric in zip(axes, METRIC_TITLES, strict=True):
        _draw_panel(ax, series.get(metric, {}), metric, panel_stand_in(series, metric), sizes)
    subtitle = "wide (thick) masks, one line per trained model; no paper line (no tick values printed)"
    if len(sizes) == 1:
        subtitle += f"; {ONE_SIZE_TEXT}"
    figure.suptitle(f"Fig. 6 rebuilt: FID and LPIPS against test resolution\n{subtitle}", fontsize=10)
    return figure


def _draw_panel(ax, lines: Mapping[str, Sequence[SeriesPoint]], metric: str, stand_in: bool, sizes: list[int]
                ) -> None:
    for label, points in lines.items():
        ordered = sorted(points, key=lambda point: point.size)
        xs = [point.size for point in ordered]
        ys = [math.nan if point.value is None else point.value for point in ordered]
        mark = STAND_IN_MARK if any(point.stand_in for point in ordered) else ""
        ax.plot(xs, ys, marker="o", label=f"{label}{mark}")
    title = METRIC_TITLES[metric]
    if stand_in:
        title += f"{STAND_IN_MARK} (seeded random stand-in network: not a real {METRIC_TITLES[metric]})"
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(f"{METRIC_TITLES[metric]}{STAND_IN_MARK if stand_in else ''} (lower is better)")
    ax.set_xlabel("test resolution (px)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(size) for size in sizes])
    ax.minorticks_off()
    ax.grid(True, alpha=0.3)
    if lines:
        ax.legend(fontsize=8)


def write_resolution_figure(series: ResolutionSeries, path: Path) -> None:
    """Render Fig. 6 to a PNG with the Agg renderer (offline, no display needed)."""
    figure = draw_resolution_figure(series)
    atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=100))


def sample_pairs(mask_dir: Path, predictions_dir: Path, samples: int) -> list[MaskImagePair]:
    """The first ``samples`` masks in sorted order with their images and predictions (official pairing rules)."""
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"mask set folder {mask_dir} not found")
    if not predictions_dir.is_dir():
        raise FileNotFoundError(f"predictions folder {predictions_dir} not found")
    pairs = find_pairs(mask_dir, predictions_dir)[:samples]
    if not pairs:
        raise ValueError(f"no *mask*.png files in {mask_dir}")
    return pairs


def grid_columns(models: Sequence[str]) -> tuple[str, ...]:
    """The column labels of a grid of ``models``."""
    return (*GRID_INPUT_COLUMNS, *models, GRID_TARGET_COLUMN)


def tile_origin(row: int, column: int, tile_shape: tuple[int, int]) -> tuple[int, int]:
    """Top-left pixel (y, x) of a tile in a sample grid, so tests and readers can find each picture."""
    height, width = tile_shape
    return GRID_HEADER + row * (height + GRID_GAP), column * (width + GRID_GAP)


def sample_grid(mask_dir: Path, predictions: Mapping[str, Path], samples: int) -> np.ndarray:
    """Rows of masked input | mask | one prediction per model (name -> predictions folder, in that order) | ground
    truth (uint8 RGB), so models are seen side by side on the same holes; raises OSError/ValueError if files are
    gone."""
    if not predictions:
        raise ValueError(f"no predictions to show for {mask_dir}")
    pairs = {name: sample_pairs(mask_dir, folder, samples) for name, folder in predictions.items()}
    first = next(iter(pairs.values()))
    rows = [_row_tiles(row, [found[index] for found in pairs.values()]) for index, row in enumerate(first)]
    columns = grid_columns(list(predictions))
    tile_shape = (max(t.shape[0] for r in rows for t in r), max(t.shape[1] for r in rows for t in r))
    top, _ = tile_origin(len(rows), 0, tile_shape)
    _, right = tile_origin(0, len(columns), tile_shape)
    canvas = np.full((top - GRID_GAP, right - GRID_GAP, 3), WHITE, dtype=np.uint8)
    _draw_header(canvas, tile_shape[1], columns)
    for row, tiles in enumerate(rows):
        for column, tile in enumerate(tiles):
            y, x = tile_origin(row, column, tile_shape)
            canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    return canvas


def _row_tiles(pair: MaskImagePair, outputs: Sequence[MaskImagePair]) -> tuple[np.ndarray, ...]:
    image = _read_rgb(pair.image)
    hole = np.asarray(open_image(pair.mask).convert("L")) > 0
    if hole.shape != image.shape[:2]:
        raise ValueError(f"{pair.mask}: mask is {hole.shape[::-1]}, image {pair.image} is {image.shape[1::-1]}")
    masked = image.copy()
    masked[hole] = WHITE
    mask_rgb = np.repeat((hole * WHITE).astype(np.uint8)[..., None], 3, axis=2)
    return masked, mask_rgb, *(_read_rgb(output.output) for output in outputs), image


def _read_rgb(path: Path) -> np.ndarray:
    return np.asarray(open_image(path).convert("RGB"))


def _draw_header(canvas: np.ndarray, tile_width: int, columns: Sequence[str]) -> None:
    """Column labels, each clipped to its own column so narrow tiles never get overlapping text."""
    for column, label in enumerate(columns):
        strip = Image.new("RGB", (tile_width, GRID_HEADER - GRID_GAP), (WHITE, WHITE, WHITE))
        ImageDraw.Draw(strip).text((1, 0), label, fill=(0, 0, 0))
        _, x = tile_origin(0, column, (0, tile_width))
        canvas[: GRID_HEADER - GRID_GAP, x : x + tile_width] = np.asarray(strip)


def write_sample_grid(mask_dir: Path, predictions: Mapping[str, Path], samples: int, path: Path) -> None:
    """Build a grid and save it as PNG; nothing is written when a file it needs is missing."""
    grid = sample_grid(mask_dir, predictions, samples)
    atomic_write(path, lambda handle: Image.fromarray(grid, "RGB").save(handle, format="PNG"))
