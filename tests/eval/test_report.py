"""The paper report: table cells and relative marks, stand-in labels, missing cells, Fig. 6 and sample grids."""

from __future__ import annotations

import json
import logging
import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from lama.cli import main
from lama.eval import report as report_module
from lama.eval.evaluations import load_evaluations
from lama.eval.paper import TABLE2
from lama.eval.report import build_report, format_change, relative_change_pct
from lama.eval.report_figures import (
    NO_DATA_TEXT,
    SeriesPoint,
    draw_resolution_figure,
    grid_columns,
    tile_origin,
)
from tests.eval import write_eval_set

TILE = 16


# ------------------------------------------------------------------------------------------------------- builders
def make_mask_set(root: Path, count: int = 3, seed: int = 0) -> Path:
    """Official layout: ``imgN.png`` beside ``imgN_mask000.png``; each mask a different box."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 200, (TILE, TILE, 3), dtype=np.uint8)).save(root / f"img{index}.png")
        mask = np.zeros((TILE, TILE), dtype=np.uint8)
        mask[2 + index : 8 + index, 3:10] = 255
        Image.fromarray(mask).save(root / f"img{index}_mask000.png")
    (root / "maskset.json").write_text(json.dumps({"config": "thick_512"}))  # not an evaluation: ignored
    return root


def make_predictions(mask_dir: Path, out: Path, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for mask in sorted(mask_dir.glob("*_mask*.png")):
        Image.fromarray(rng.integers(0, 256, (TILE, TILE, 3), dtype=np.uint8)).save(out / mask.name)
    return out


def evaluation(architecture: str | None, kind: str, size: int | None, fid: float | None, lpips: float | None, *,
               stand_in: tuple[str, ...] = (), train_masks: str | None = "wide", mask_interp: str | None = "none",
               parameters: int | None = 27_037_475, mask_dir: Path | str = "nowhere/masks",
               predictions: Path | str = "nowhere/predict", name: str | None = None, classical: str | None = None,
               recipe: list[str] | None = None, hole: tuple[float, float] | None = None) -> dict[str, Any]:
    """A ``lama-eval/1`` dict; metric keys carry ``_stand-in`` exactly as ``lama evaluate`` writes them."""
    lpips_key = "lpips_stand-in" if "lpips" in stand_in else "lpips"
    fid_key = "fid_stand-in" if "fid" in stand_in else "fid"
    return {
        "format": "lama-eval/1",
        "mask_set": {"name": f"{kind}_{size}", "kind": kind, "size": size, "path": str(mask_dir)},
        "predictions": str(predictions),
        "model": {"name": name or classical or architecture, "path": f"runs/{architecture}",
                  "architecture": architecture, "train_masks": train_masks, "mask_interp": mask_interp,
                  "parameters": parameters, "classical": classical, "recipe": recipe},
        "networks": {"lpips": "label", "fid": "label"},
        "stand_in": list(stand_in),
        "fid_method": "sqrtm",
        "n": 3,
        "metrics": {"ssim": 0.8, "psnr": 24.0, lpips_key: lpips, fid_key: fid,
                    **({"hole_ssim": hole[0], "hole_psnr": hole[1]} if hole else {})},
        "bins": {},
    }


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def skip_rendering(series: Any, path: Path) -> None:
    path.write_bytes(b"")


def run_report(tmp_path: Path, evaluations: dict[str, dict[str, Any]], *, render_figure: bool = False,
               **options: Any) -> tuple[report_module.ReportSummary, dict[str, Any], str]:
    """Write the evaluation files under ``tmp_path/evals``, build the report, return summary, report.json, Markdown.

    Rendering Fig. 6 is most of a report's time, so only the tests about the figure render it.
    """
    (tmp_path / "evals").mkdir(exist_ok=True)
    for name, data in evaluations.items():
        write_json(tmp_path / "evals" / f"{name}.json", data)
    with ExitStack() as stack:
        if not render_figure:
            stack.enter_context(mock.patch.object(report_module, "write_resolution_figure", skip_rendering))
        summary = build_report([tmp_path / "evals"], tmp_path / "report", **options)
    payload = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "report" / "tables.md").read_text(encoding="utf-8")
    return summary, payload, markdown


def row(payload: dict[str, Any], table: str, label: str) -> dict[str, Any]:
    return next(item for item in payload["tables"][table]["rows"] if item["label"] == label)


def markdown_rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the Markdown table under the heading that starts with ``heading``."""
    section = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def markdown_section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


# ---------------------------------------------------------------------------------------------------- the numbers
def test_relative_change_closed_form() -> None:
    assert relative_change_pct(0.5, 0.4) == pytest.approx(25.0)
    assert relative_change_pct(0.3, 0.4) == pytest.approx(-25.0)
    assert relative_change_pct(None, 0.4) is None
    assert relative_change_pct(0.5, 0.0) is None
    assert (format_change(25.0), format_change(-25.0), format_change(None)) == ("▲25.0%", "▼25.0%", "")


def test_table2_compares_each_row_with_the_base_row_ours_and_paper_alike(tmp_path: Path) -> None:
    _, payload, markdown = run_report(tmp_path, {
        "fourier_thick": evaluation("fourier", "thick", 512, 0.4, 0.2),
        "dilated_thick": evaluation("dilated", "thick", 512, 0.5, 0.15, parameters=46_000_000),
        "regular_thick": evaluation("regular", "thick", 512, 0.3, 0.2),
    }, samples=0)
    dilated = row(payload, "table2", "Base Dilated")["cells"]["wide_fid"]
    assert dilated["ours"] == 0.5
    assert dilated["ours_change_pct"] == pytest.approx(25.0)
    assert dilated["paper"] == 2.30
    assert dilated["paper_change_pct"] == pytest.approx((2.30 - 2.21) / 2.21 * 100)
    assert row(payload, "table2", "Base Dilated")["cells"]["wide_lpips"]["ours_change_pct"] == pytest.approx(-25.0)
    assert row(payload, "table2", "Base Regular")["cells"]["wide_fid"]["ours_change_pct"] == pytest.approx(-25.0)
    base = row(payload, "table2", "Base Fourier")["cells"]["wide_fid"]
    assert base["ours_change_pct"] is None and base["paper_change_pct"] is None
    assert payload["tables"]["table2"]["base_row"] == "Base Fourier"
    rows = {cells[0]: cells for cells in markdown_rows(markdown, "Table 2")}
    assert rows["Base Dilated"][2] == "46.0M"
    assert "0.50 ▲25.0%" in rows["Base Dilated"]
    assert "0.150 ▼25.0%" in rows["Base Dilated"]
    assert "2.30 ▲4.1%" in rows["Base Dilated"]
    assert "0.40" in rows["Base Fourier"] and "2.21" in rows["Base Fourier"]
    assert "lower is better" in markdown


def test_table1_compares_ours_with_the_paper(tmp_path: Path) -> None:
    _, payload, markdown = run_report(tmp_path, {
        "thin": evaluation("fourier", "thin", 512, 0.63 * 1.1, 0.090 * 0.5),
    }, samples=0)
    cells = payload["tables"]["table1"]["rows"][0]["cells"]
    assert cells["narrow_fid"]["ours_change_pct"] == pytest.approx(10.0)
    assert cells["narrow_lpips"]["ours_change_pct"] == pytest.approx(-50.0)
    assert cells["narrow_fid"]["paper"] == 0.63 and cells["wide_fid"]["paper"] == 2.21
    assert cells["narrow_fid"]["paper_change_pct"] is None
    assert payload["tables"]["table1"]["ours_compared_with"] == "paper"
    assert "0.69 ▲10.0%" in markdown_rows(markdown, "Table 1")[0]
    assert "0.045 ▼50.0%" in markdown_rows(markdown, "Table 1")[0]


def test_table4_records_the_unprinted_cell_as_none_with_a_note(tmp_path: Path) -> None:
    _, payload, markdown = run_report(tmp_path, {
        "narrow_trained": evaluation("regular", "thick", 512, 6.0, 0.2, train_masks="narrow"),
        "wide_trained": evaluation("regular", "thick", 512, 4.0, 0.1, train_masks=None),  # null counts as wide
    }, samples=0)
    narrow = row(payload, "table4", "LaMa-Regular, narrow training masks")["cells"]
    assert narrow["wide_lpips"]["paper"] is None and "relative mark" in narrow["wide_lpips"]["paper_note"]
    assert narrow["wide_fid"]["paper"] == 5.41
    assert narrow["wide_fid"]["paper_change_pct"] == pytest.approx((5.41 - 3.51) / 3.51 * 100)
    assert narrow["wide_fid"]["ours_change_pct"] == pytest.approx(50.0)
    assert narrow["wide_lpips"]["ours_change_pct"] == pytest.approx(100.0)
    assert "not printed‡" in markdown_rows(markdown, "Table 4")[0]
    assert "‡ LaMa-Regular, narrow training masks, Wide LPIPS (paper)" in markdown_section(markdown, "Table 4")


def test_mask_interp_table_compares_with_our_none_row_and_states_no_paper_numbers(tmp_path: Path) -> None:
    _, payload, markdown = run_report(tmp_path, {
        "none": evaluation("fourier", "thick", 512, 2.0, 0.1, mask_interp=None),
        "bicubic": evaluation("fourier", "thick", 512, 1.5, 0.1, mask_interp="bicubic"),
    }, samples=0)
    table = payload["tables"]["mask_interp"]
    bicubic = row(payload, "mask_interp", "mask_interp=bicubic")["cells"]["wide_fid"]
    assert bicubic["ours_change_pct"] == pytest.approx(-25.0) and bicubic["paper"] is None
    assert table["paper_note"] and table["base_row"] == "mask_interp=none"
    section = markdown_section(markdown, "mask_interp ablation")
    assert section.count("no numbers") == 1
    assert "(paper)" not in section and "1.50 ▼25.0%" in section
    assert row(payload, "mask_interp", "mask_interp=bilinear")["cells"]["wide_fid"]["status"] == "missing"


def test_classical_baselines_are_rows_of_table1_without_a_paper_number(tmp_path: Path) -> None:
    _, payload, markdown = run_report(tmp_path, {
        "lama": evaluation("fourier", "thick", 512, 2.0, 0.2),
        "telea": evaluation(None, "thick", 512, 9.0, 0.4, classical="telea", parameters=None),
        "mean": evaluation(None, "thick", 512, 20.0, 0.5, classical="mean-fill", parameters=None),
    }, samples=0)
    telea = row(payload, "table1", "Telea (OpenCV)")
    assert telea["classical"] == "telea" and telea["cells"]["wide_fid"]["ours"] == 9.0
    assert telea["cells"]["wide_fid"]["paper"] is None and telea["cells"]["wide_fid"]["ours_change_pct"] is None
    assert row(payload, "table1", "Mean-colour fill")["cells"]["wide_lpips"]["ours"] == 0.5
    assert row(payload, "table1", "Navier–Stokes (OpenCV)")["cells"]["wide_fid"]["status"] == "missing"
    rows = {cells[0]: cells for cells in markdown_rows(markdown, "Table 1")}
    assert "9.00" in rows["Telea (OpenCV)"] and rows["Telea (OpenCV)"][1] == "—"
    # A baseline never fills a trained architecture's row.
    assert row(payload, "table2", "Base Fourier")["cells"]["wide_fid"]["ours"] == 2.0
    assert row(payload, "table2", "Base Dilated")["cells"]["wide_fid"]["status"] == "missing"


def test_the_anchor_table_sets_every_model_against_the_baselines_by_hole_scores(tmp_path: Path) -> None:
    offline = ["loss.alpha=0 (paper 30)", "loss.l1_missing=10 (paper 0)"]
    _, payload, markdown = run_report(tmp_path, {
        "lama_thin": evaluation("fourier", "thin", 256, 1.0, 0.1, name="lama", recipe=offline, hole=(0.40, 16.0)),
        "lama_thick": evaluation("fourier", "thick", 256, 2.0, 0.2, name="lama", recipe=offline, hole=(0.25, 12.5)),
        "mean_thin": evaluation(None, "thin", 256, 5.0, 0.3, classical="mean-fill", hole=(0.26, 12.6)),
        "mean_thick": evaluation(None, "thick", 256, 5.0, 0.3, classical="mean-fill", hole=(0.20, 12.3)),
        "telea_thick": evaluation(None, "thick", 256, 4.0, 0.3, classical="telea", hole=(0.24, 12.1)),
    }, samples=0)
    anchors = payload["anchors"]
    assert anchors["size"] == 256 and anchors["kinds"] == ["thin", "thick"]
    assert [item["label"] for item in anchors["rows"]] == ["lama", "Mean-colour fill", "Telea (OpenCV)"]
    lama = anchors["rows"][0]
    assert lama["values"] == {"thin_hole_ssim": 0.40, "thin_hole_psnr": 16.0, "thick_hole_ssim": 0.25,
                              "thick_hole_psnr": 12.5}
    assert lama["recipe"] == offline
    rows = {cells[0]: cells for cells in markdown_rows(markdown, "Sanity anchors")}
    assert rows["lama§"][1:] == ["**0.400**", "**16.00**", "**0.250**", "**12.50**"]  # the best of each column
    assert rows["Telea (OpenCV)"][1:] == ["missing", "missing", "0.240", "12.10"]
    section = markdown_section(markdown, "Sanity anchors")
    assert "§ lama: trained with a recipe that is not the paper's (loss.alpha=0 (paper 30)" in section


def test_a_deviating_recipe_is_marked_and_never_compared_with_the_paper(tmp_path: Path) -> None:
    offline = ["loss.alpha=0 (paper 30)"]
    _, payload, markdown = run_report(tmp_path, {
        "thin": evaluation("fourier", "thin", 512, 0.7, 0.1, recipe=offline),
        "thick": evaluation("fourier", "thick", 512, 2.5, 0.2, stand_in=("lpips", "fid")),
        "dilated": evaluation("dilated", "thick", 512, 3.0, 0.3, recipe=offline),
    }, samples=0)
    cells = payload["tables"]["table1"]["rows"][0]["cells"]
    assert cells["narrow_fid"]["recipe"] == offline and cells["narrow_fid"]["ours_change_pct"] is None
    assert cells["wide_fid"]["stand_in"] and cells["wide_fid"]["ours_change_pct"] is None
    table1 = markdown_rows(markdown, "Table 1")[0]
    assert "0.70§" in table1 and "2.50†" in table1 and not any("▲" in cell or "▼" in cell for cell in table1)
    assert "§ LaMa-Fourier: trained with a recipe that is not the paper's" in markdown_section(markdown, "Table 1")
    # Table 2: a deviating dilated row against a stand-in base row is not compared either; paper against paper is.
    dilated = row(payload, "table2", "Base Dilated")["cells"]["wide_fid"]
    assert dilated["ours_change_pct"] is None and dilated["paper_change_pct"] == pytest.approx((2.30 - 2.21) / 2.21
                                                                                               * 100)


# -------------------------------------------------------------------------------------------------- stand-in marks
def test_every_stand_in_cell_is_marked_and_footnoted(tmp_path: Path) -> None:
    _, payload, markdown = run_report(tmp_path, {
        "thin": evaluation("fourier", "thin", 512, 1.0, 0.1, stand_in=("lpips", "fid")),
        "thick": evaluation("fourier", "thick", 512, 2.0, 0.2, stand_in=("lpips", "fid")),
        "dilated": evaluation("dilated", "thick", 512, 3.0, math.nan, stand_in=("lpips", "fid")),
    }, samples=0)
    for table in ("Table 1", "Table 2"):
        metric_titles = ("FID (ours)", "LPIPS (ours)")
        ours_columns = [index for index, title in enumerate(_header(markdown, table)) if title.endswith(metric_titles)]
        evaluated = ("LaMa-Fourier", "Base Fourier", "Base Dilated")
        present = [cells for cells in markdown_rows(markdown, table) if cells[0] in evaluated]
        texts = [cells[index] for cells in present for index in ours_columns if cells[index] != "missing"]
        assert len(texts) >= 4 and all("†" in text for text in texts), texts
        assert "seeded random stand-in network: not a real LPIPS/FID" in markdown_section(markdown, table)
        assert "`lama weights fetch`" in markdown_section(markdown, table)
    assert row(payload, "table2", "Base Dilated")["cells"]["wide_lpips"]["status"] == "n/a"
    assert "n/a†" in {cells[0]: cells for cells in markdown_rows(markdown, "Table 2")}["Base Dilated"]
    assert all(cell["stand_in"] for cell in row(payload, "table2", "Base Fourier")["cells"].values()
               if cell["status"] != "missing")


def _header(markdown: str, heading: str) -> list[str]:
    section = markdown_section(markdown, heading)
    line = next(line for line in section.splitlines() if line.startswith("| "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_real_weights_carry_no_mark_and_a_stand_in_network_marks_only_its_metrics(tmp_path: Path) -> None:
    real = evaluation("fourier", "thick", 512, 2.0, 0.2)
    fid_only = evaluation("dilated", "thick", 512, 2.5, 0.2, stand_in=("fid",))
    _, payload, markdown = run_report(tmp_path, {"real": real, "fid_only": fid_only}, samples=0)
    rows = {cells[0]: cells for cells in markdown_rows(markdown, "Table 2")}
    assert "2.00" in rows["Base Fourier"] and "0.200" in rows["Base Fourier"]
    assert not any("†" in cell for cell in rows["Base Fourier"])
    # A stand-in FID is not set against a real one; the LPIPS of both is real, so it is compared.
    assert "2.50†" in rows["Base Dilated"] and "0.200 =0.0%" in rows["Base Dilated"]
    cells = row(payload, "table2", "Base Dilated")["cells"]
    assert cells["wide_fid"]["stand_in"] and not cells["wide_lpips"]["stand_in"]


def test_a_plain_key_from_a_stand_in_network_is_still_marked(tmp_path: Path) -> None:
    data = evaluation("fourier", "thick", 512, 2.0, 0.2)
    data["stand_in"] = ["lpips"]  # inconsistent file: the plain key must not pass as a real LPIPS
    _, payload, _ = run_report(tmp_path, {"odd": data}, samples=0)
    assert row(payload, "table2", "Base Fourier")["cells"]["wide_lpips"]["stand_in"] is True


# ------------------------------------------------------------------------------------------- missing and selection
def test_missing_cells_are_shown_and_listed_by_architecture_and_mask_set(tmp_path: Path) -> None:
    summary, payload, markdown = run_report(tmp_path, {
        "thin": evaluation("fourier", "thin", 512, 1.0, 0.1),
        "thick": evaluation("fourier", "thick", 512, 2.0, 0.2),
        "dilated": evaluation("dilated", "thin", 512, 1.0, 0.1),
    }, samples=0)
    missing = payload["tables"]["table2"]["missing"]
    # Each line names the command that fills it (the sample profile's one run is the top-level config).
    assert missing[0] == ("dilated × thick_512 — `dvc exp run -S generator=dilated` (with a thick mask set at "
                          "512×512 in eval.mask_sets)")
    assert len(missing) == 7  # dilated thick; regular, shallow, deep × thin and thick
    assert not any(line.startswith("fourier") for line in missing)
    assert row(payload, "table2", "Base Dilated")["cells"]["wide_fid"]["status"] == "missing"
    dilated = {cells[0]: cells for cells in markdown_rows(markdown, "Table 2")}["Base Dilated"]
    assert dilated.count("missing") == 2
    assert f"missing: {missing[0]}" in markdown_section(markdown, "Table 2")
    assert payload["tables"]["table4"]["missing"][0].startswith(
        "regular, narrow-trained × thin_512 — `dvc exp run -S generator=regular -S masks=narrow`")
    assert payload["tables"]["mask_interp"]["missing"][0].startswith(
        "fourier, mask_interp=bilinear × thin_512 — `dvc exp run -S generator=fourier -S loss.mask_interp=bilinear`")
    # Table 1's LaMa row is complete; its classical baselines are not evaluated here.
    assert payload["tables"]["table1"]["missing"] == [
        f"{method} × {mask_set} — `dvc exp run -S 'eval.baselines=[mean-fill,telea,navier-stokes]'` (with a "
        f"{mask_set[:-4]} mask set at 512×512 in eval.mask_sets)"
        for method in ("mean-fill", "telea", "navier-stokes") for mask_set in ("thin_512", "thick_512")]
    # Table 1: 3 baselines × 2 × 2; Table 2: 7 × 2; Table 4: 4 × 2; mask_interp: fourier none present, 4 × 2 missing
    assert summary.missing_cells == 12 + 14 + 8 + 8
    assert str(summary) == f"4 tables, 1 figure, 0 sample grids from 3 evaluations; {12 + 14 + 8 + 8} cells missing"


@pytest.mark.parametrize(("sizes", "table_size", "expected"), [
    ((256, 512, 1024), None, 512),
    ((256, 1024), None, 1024),
    ((256, 512), 256, 256),
])
def test_table_size_prefers_512_else_the_largest(tmp_path: Path, sizes: tuple[int, ...], table_size: int | None,
                                                 expected: int) -> None:
    evaluations = {f"thick_{size}": evaluation("fourier", "thick", size, size / 100, 0.1) for size in sizes}
    _, payload, markdown = run_report(tmp_path, evaluations, table_size=table_size, samples=0)
    table = payload["tables"]["table2"]
    assert table["size"] == expected
    assert table["mask_sets"]["wide"] == [f"thick_{expected}"]
    assert row(payload, "table2", "Base Fourier")["cells"]["wide_fid"]["ours"] == pytest.approx(expected / 100)
    assert f"wide = thick_{expected} (thick masks); resolution {expected}×{expected}" in markdown_section(
        markdown, "Table 2")


def test_duplicate_matches_use_the_first_path_and_warn_naming_both(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    write_json(tmp_path / "evals" / "b" / "fourier.json", evaluation("fourier", "thick", 512, 9.0, 0.9))
    with caplog.at_level(logging.WARNING, logger="lama.eval.report"):
        _, payload, _ = run_report(tmp_path, {"a/fourier": evaluation("fourier", "thick", 512, 2.0, 0.2)}, samples=0)
    cell = row(payload, "table2", "Base Fourier")["cells"]["wide_fid"]
    assert cell["ours"] == 2.0 and cell["source"].endswith("a/fourier.json")
    warnings = [record.getMessage() for record in caplog.records if "match" in record.getMessage()]
    assert warnings and all("a/fourier.json" in text and "b/fourier.json" in text for text in warnings)
    assert len(warnings) == len(set(warnings))


@pytest.mark.parametrize(("change", "key"), [
    (lambda data: data["mask_set"].update(size="big"), "mask_set.size"),
    (lambda data: data.pop("metrics"), "metrics"),
    (lambda data: data["metrics"].update(fid="low"), "metrics.fid"),
    (lambda data: data["model"].update(train_masks=3), "model.train_masks"),
    (lambda data: data.update(model=[]), "model"),
    (lambda data: data.update(stand_in=["inception"]), "stand_in[0]"),
])
def test_malformed_evaluation_names_the_file_and_the_key(tmp_path: Path, change: Any, key: str) -> None:
    data = evaluation("fourier", "thick", 512, 2.0, 0.2)
    change(data)
    path = write_json(tmp_path / "evals" / "broken.json", data)
    with pytest.raises(ValueError, match=r"broken\.json: key '" + key.replace("[", r"\[").replace("]", r"\]") + "'"
                       ) as error:
        build_report([tmp_path / "evals"], tmp_path / "report")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_other_json_is_ignored_and_a_file_named_twice_counts_once(tmp_path: Path) -> None:
    write_json(tmp_path / "evals" / "params.json", {"format": "something-else", "lr": 1})
    write_json(tmp_path / "evals" / ".cache" / "stale.json", {"format": "lama-eval/1"})  # hidden: not searched
    path = write_json(tmp_path / "evals" / "fourier.json", evaluation("fourier", "thick", 512, 2.0, 0.2))
    assert [found.source for found in load_evaluations([tmp_path / "evals", path])] == [path]
    with pytest.raises(ValueError, match=r"params\.json: key 'format'"):
        load_evaluations([tmp_path / "evals" / "params.json"])


def test_relative_paths_resolve_from_the_evaluation_files_ancestors(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_predictions(make_mask_set(tmp_path / "data" / "masks" / "thick_512"), tmp_path / "runs" / "predict")
    data = evaluation("fourier", "thick", 512, 2.0, 0.2, mask_dir="data/masks/thick_512", predictions="runs/predict")
    write_json(tmp_path / "runs" / "eval" / "thick.json", data)
    monkeypatch.chdir(tmp_path / "runs")  # the paths are relative to tmp_path, not to the working directory
    summary = build_report([tmp_path / "runs" / "eval"], tmp_path / "report", samples=2)
    assert summary.sample_grids == 1 and (tmp_path / "report" / "samples" / "thick_512.png").is_file()


# ------------------------------------------------------------------------------------------------------------ Fig. 6
def test_figure_series_per_architecture_over_sizes(tmp_path: Path) -> None:
    summary, payload, markdown = run_report(tmp_path, {
        "fourier_256": evaluation("fourier", "thick", 256, 1.0, 0.10, stand_in=("lpips", "fid")),
        "fourier_512": evaluation("fourier", "thick", 512, 2.0, 0.20, stand_in=("lpips", "fid")),
        "dilated_512": evaluation("dilated", "thick", 512, 3.0, 0.30, stand_in=("lpips", "fid")),
        "fourier_thin": evaluation("fourier", "thin", 1024, 9.0, 0.9),  # thin masks are not in the figure
        "bicubic": evaluation("fourier", "thick", 1024, 9.0, 0.9, mask_interp="bicubic"),  # nor other variants
    }, samples=0, render_figure=True)
    series = payload["figure"]["series"]
    fourier = series["fid"][f"{TABLE2['fourier'].label} (fourier)"]
    assert [(point["size"], point["value"]) for point in fourier] == [(256, 1.0), (512, 2.0)]
    assert [point["value"] for point in series["lpips"][f"{TABLE2['dilated'].label} (dilated)"]] == [0.30]
    assert all(point["stand_in"] for lines in series.values() for points in lines.values() for point in points)
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
    assert "No evaluations on thick mask sets" in markdown


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
    with caplog.at_level(logging.WARNING, logger="lama.eval.report"):
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
    with caplog.at_level(logging.WARNING, logger="lama.eval.report"):
        (tmp_path / "none").mkdir()
        summary, payload, _ = run_report(tmp_path / "none", {
            "dilated": evaluation("dilated", "thick", 512, 2.0, 0.2, mask_dir=masks, predictions=deleted)})
    assert (summary.sample_grids, summary.skipped_grids) == (0, 1) and payload["samples"][0]["path"] is None
    assert str(summary).endswith("; 1 sample grid skipped")


def test_evaluate_then_report_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`lama evaluate` JSONs (stand-in networks) feed `lama report`: the Table 1 cells are exactly their totals."""
    for kind, seed in (("thin", 1), ("thick", 2)):
        data, predict = write_eval_set(tmp_path / "sets", 6, seed=seed, name=f"{kind}_32")
        assert main(["evaluate", str(data), str(predict), str(tmp_path / "results" / f"{kind}.json"), "-q",
                     "--weights", "stand-in", "--fid-method", "svd", "--workers", "0",
                     "--set", "model.architecture=fourier", "--set", "model.name=tiny-fourier"]) == 0
    assert main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "reports"), "-q"]) == 0
    assert "from 2 evaluations" in capsys.readouterr().err
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    cells = report["tables"]["table1"]["rows"][0]["cells"]
    for width, kind in (("narrow", "thin"), ("wide", "thick")):
        totals = json.loads((tmp_path / "results" / f"{kind}.json").read_text())["metrics"]
        for metric in ("fid", "lpips"):
            cell = cells[f"{width}_{metric}"]
            assert cell["ours"] == totals[f"{metric}_stand-in"] and cell["stand_in"] is True
    assert (tmp_path / "reports" / "samples").is_dir() and (tmp_path / "reports" / "tables.md").is_file()
    (tmp_path / "results" / "thin.json").write_text('{"format": "lama-eval/1", "n": 1}')
    assert main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "reports2"), "-q"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"lama report: {tmp_path / 'results' / 'thin.json'}: key ") and "\n" not in error
