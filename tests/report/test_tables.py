"""The paper's tables: cells and relative marks, the classical rows, recipe and stand-in marks, missing cells and the
table's resolution."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lama.report.markdown import format_change
from lama.report.tables import relative_change_pct
from tests.report import evaluation, markdown_header, markdown_rows, markdown_section, row, run_report


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
        ours_columns = [index for index, title in enumerate(markdown_header(markdown, table))
                        if title.endswith(metric_titles)]
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
    assert str(summary) == f"4 tables, 2 figures, 0 sample grids from 3 evaluations; {12 + 14 + 8 + 8} cells missing"


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
