"""The sanity-anchor table: every model against the classical baselines by hole SSIM and PSNR."""

from __future__ import annotations

from pathlib import Path

from tests.report import evaluation, markdown_rows, markdown_section, run_report


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
