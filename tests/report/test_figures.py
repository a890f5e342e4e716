"""Fig. 6 (FID and LPIPS against test resolution) and the sample grids."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lama.report.figures import NO_DATA_TEXT, SeriesPoint, draw_resolution_figure, grid_columns, tile_origin
from lama.report.paper import TABLE2
from tests.report import TILE, evaluation, make_mask_set, make_predictions, markdown_section, run_report


# ------------------------------------------------------------------------------------------------------------ Fig. 6
def test_figure_series_per_trained_model_over_sizes(tmp_path: Path) -> None:
    summary, payload, markdown = run_report(tmp_path, {
        "fourier_256": evaluation("fourier", "thick", 256, 1.0, 0.10, stand_in=("lpips", "fid")),
        "fourier_512": evaluation("fourier", "thick", 512, 2.0, 0.20, stand_in=("lpips", "fid")),
        "dilated_512": evaluation("dilated", "thick", 512, 3.0, 0.30, stand_in=("lpips", "fid")),
        "fourier_thin": evaluation("fourier", "thin", 1024, 9.0, 0.9),  # thin masks are not in the figure
        "bicubic": evaluation("fourier", "thick", 1024, 9.0, 0.9, mask_interp="bicubic"),  # a line of its own
    }, samples=0, render_figure=True)
    series = payload["figure"]["series"]
    fourier = series["fid"][f"{TABLE2['fourier'].label} (fourier)"]
    assert [(point["size"], point["value"]) for point in fourier] == [(256, 1.0), (512, 2.0)]
    assert [point["value"] for point in series["lpips"][f"{TABLE2['dilated'].label} (dilated)"]] == [0.30]
    assert [(point["size"], point["value"]) for point in series["fid"]["fourier, mask_interp=bicubic"]] == [(1024, 9.0)]
    assert list(series["fid"]) == [f"{TABLE2['fourier'].label} (fourier)", "fourier, mask_interp=bicubic",
                                   f"{TABLE2['dilated'].label} (dilated)"]
    assert all(point["stand_in"] for label, points in series["fid"].items() if "bicubic" not in label
               for point in points)
    with Image.open(summary.figure) as image:
        image.verify()
    with Image.open(summary.figure) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100
    assert "](fig6_resolution.png)" in markdown and "no tick values" in markdown
    assert {item["path"].rsplit("/", 1)[1]: item["size"] for item in payload["evaluations"]}["fourier_256.json"] == 256
    assert "not a real LPIPS/FID" in markdown_section(markdown, "Fig. 6")


def test_figure_draws_one_line_per_series_and_labels_stand_in_panels() -> None:
    fourier, dilated = "Base Fourier (fourier)", "Base Dilated (dilated)"
    points = {"fid": {fourier: [SeriesPoint(512, 2.0, True, "a"), SeriesPoint(256, 1.0, True, "b")],
                      dilated: [SeriesPoint(256, 3.0, True, "c")]},
              "lpips": {fourier: [SeriesPoint(256, 0.1, False, "b"), SeriesPoint(512, 0.2, False, "a")]}}
    figure = draw_resolution_figure(points)
    fid_axes, lpips_axes = figure.axes
    assert [list(line.get_xdata()) for line in fid_axes.get_lines()] == [[256, 512], [256]]
    assert [list(line.get_ydata()) for line in fid_axes.get_lines()] == [[1.0, 2.0], [3.0]]
    assert "stand-in" in fid_axes.get_title() and "†" in fid_axes.get_title() and "†" in fid_axes.get_ylabel()
    assert "stand-in" not in lpips_axes.get_title() and "†" not in lpips_axes.get_ylabel()
    assert [label.get_text() for label in fid_axes.get_legend().get_texts()] == [f"{fourier}†", f"{dilated}†"]


def test_figure_without_data_says_so(tmp_path: Path) -> None:
    figure = draw_resolution_figure({"fid": {}, "lpips": {}})
    assert [text.get_text() for text in figure.texts] == [NO_DATA_TEXT]
    summary, _, markdown = run_report(tmp_path, {}, samples=0, render_figure=True)
    with Image.open(summary.figure) as image:
        assert image.format == "PNG" and image.width > 100
    assert summary.figure.is_file() and summary.evaluations == 0
    assert "No evaluations of trained models on thick mask sets" in markdown


# ------------------------------------------------------------------------------------------------------ sample grids
def test_a_sample_grid_shows_every_model_of_a_mask_set_side_by_side(tmp_path: Path) -> None:
    masks = make_mask_set(tmp_path / "masks" / "thick_512", count=3)
    fourier = make_predictions(masks, tmp_path / "predict", seed=1)
    telea = make_predictions(masks, tmp_path / "telea", seed=2)
    baseline = evaluation(None, "thick", 512, 3.0, 0.3, mask_dir=masks, predictions=telea, classical="telea")
    summary, payload, markdown = run_report(tmp_path, {
        "a_telea": baseline,  # sorted first by path, shown after the trained model
        "thick": evaluation("fourier", "thick", 512, 2.0, 0.2, mask_dir=masks, predictions=fourier),
    }, samples=2)
    assert summary.sample_grids == 1 and payload["samples"][0]["path"] == "samples/thick_512.png"
    assert payload["samples"][0]["models"] == ["fourier", "telea"]
    assert "](samples/thick_512.png)" in markdown
    grid = np.asarray(Image.open(tmp_path / "report" / "samples" / "thick_512.png").convert("RGB"))
    bottom, _ = tile_origin(2, 0, (TILE, TILE))
    _, right = tile_origin(0, 5, (TILE, TILE))
    assert grid.shape[:2] == (bottom - 2, right - 2)  # two rows, not three; five columns
    columns = {name: index for index, name in enumerate(grid_columns(["fourier", "telea"]))}
    for index in range(2):  # the first masks in sorted order
        image = np.asarray(Image.open(masks / f"img{index}.png").convert("RGB"))
        hole = np.asarray(Image.open(masks / f"img{index}_mask000.png")) > 0

        def tile(name: str, row_index: int = index) -> np.ndarray:
            y, x = tile_origin(row_index, columns[name], (TILE, TILE))
            return grid[y : y + TILE, x : x + TILE]

        for name, folder in (("fourier", fourier), ("telea", telea)):
            prediction = np.asarray(Image.open(folder / f"img{index}_mask000.png").convert("RGB"))
            np.testing.assert_array_equal(tile(name), prediction)
        np.testing.assert_array_equal(tile("ground truth"), image)
        np.testing.assert_array_equal(tile("mask")[..., 0], hole * 255)
        assert (tile("masked input")[hole] == 255).all()
        np.testing.assert_array_equal(tile("masked input")[~hole], image[~hole])


def test_a_missing_predictions_folder_drops_that_column_with_a_warning(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    masks = make_mask_set(tmp_path / "masks" / "thick_512")
    predictions = make_predictions(masks, tmp_path / "predict")
    deleted = tmp_path / "deleted"
    with caplog.at_level(logging.WARNING, logger="lama.report.samples"):
        summary, payload, markdown = run_report(tmp_path, {
            "fourier": evaluation("fourier", "thick", 512, 2.0, 0.2, mask_dir=masks, predictions=predictions),
            "dilated": evaluation("dilated", "thick", 512, 2.0, 0.2, mask_dir=masks, predictions=deleted),
        })
    assert (summary.sample_grids, summary.skipped_grids) == (1, 0)
    (grid,) = payload["samples"]
    assert grid["models"] == ["fourier"] and str(deleted) in grid["skipped"]["dilated"]
    assert any(str(deleted) in record.getMessage() for record in caplog.records)
    assert "thick_512: dilated left out" in markdown
    assert not [path for path in (tmp_path / "report").rglob(".*")]  # no temporary files left behind
    with caplog.at_level(logging.WARNING, logger="lama.report.samples"):
        (tmp_path / "none").mkdir()
        summary, payload, _ = run_report(tmp_path / "none", {
            "dilated": evaluation("dilated", "thick", 512, 2.0, 0.2, mask_dir=masks, predictions=deleted)})
    assert (summary.sample_grids, summary.skipped_grids) == (0, 1) and payload["samples"][0]["path"] is None
    assert str(summary).endswith("; 1 sample grid skipped")
