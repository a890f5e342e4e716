"""The report over several experiments: evaluations read from saved DVC experiments fill the cells the workspace
leaves empty, never the ones it fills, and say where they come from; and the scores-by-hole-area figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from lama.eval.bins import BIN_NAMES
from lama.report.area_bins import BIN_METRIC, draw_bins_figure
from lama.report.evaluations import parse_evaluation
from tests.report import evaluation, markdown_section, row, run_report


def from_experiment(data: dict, name: str):
    """An evaluation as ``lama.pipeline.experiments`` hands it over: parsed, with its experiment's name."""
    parsed = parse_evaluation(data, Path(f"{name}:results/lama/{data['mask_set']['name']}.json"))
    return dataclasses.replace(parsed, experiment=name, model_label=f"{parsed.model_label} [{name}]")


def test_experiments_fill_the_ablation_rows_the_workspace_lacks(tmp_path: Path) -> None:
    workspace = {f"{kind}": evaluation("fourier", kind, 512, 5.0, 0.25, mask_interp="bicubic", name="lama",
                                       hole=(0.30, 14.0)) for kind in ("thin", "thick")}
    baseline = [from_experiment(evaluation("fourier", kind, 512, 4.0, 0.20, name="lama", hole=(0.35, 15.0)),
                                "baseline") for kind in ("thin", "thick")]
    # An experiment with the workspace's configuration: the workspace's value wins its cells.
    shadowed = [from_experiment(evaluation("fourier", "thick", 512, 9.0, 0.9, mask_interp="bicubic", name="lama"),
                                "old-bicubic")]
    _, payload, markdown = run_report(tmp_path, workspace, samples=0, experiments=[*baseline, *shadowed])

    none_row, bicubic_row = row(payload, "mask_interp", "mask_interp=none"), row(payload, "mask_interp",
                                                                                "mask_interp=bicubic")
    assert none_row["cells"]["wide_fid"]["ours"] == 4.0 and none_row["cells"]["wide_fid"]["experiment"] == "baseline"
    assert bicubic_row["cells"]["wide_fid"]["ours"] == 5.0 and bicubic_row["cells"]["wide_fid"]["experiment"] is None
    assert bicubic_row["cells"]["wide_fid"]["ours_change_pct"] == 25.0  # against the base row, from the baseline
    # Table 1's LaMa-Fourier (mask_interp none) is the baseline experiment's, not "missing".
    assert row(payload, "table1", "LaMa-Fourier")["cells"]["narrow_lpips"]["ours"] == 0.20
    assert "From saved DVC experiments (`dvc exp show`), not the workspace: mask_interp=none from `baseline`." \
        in markdown_section(markdown, "mask_interp ablation")
    assert "old-bicubic" not in markdown_section(markdown, "mask_interp ablation")
    # Every model has its own anchor row and Fig. 6 line, the experiment's named as `dvc exp show` names it.
    anchors = {item["label"]: item["values"] for item in payload["anchors"]["rows"]}
    assert anchors["lama"]["thick_hole_ssim"] == 0.30 and anchors["lama [baseline]"]["thick_hole_ssim"] == 0.35
    lines = payload["figure"]["series"]["fid"]
    assert lines["Base Fourier (fourier) [baseline]"][0]["value"] == 4.0
    assert lines["fourier, mask_interp=bicubic"][0]["value"] == 5.0
    assert [item["experiment"] for item in payload["evaluations"]].count("baseline") == 2


def test_sample_grids_show_only_the_workspace_predictions(tmp_path: Path) -> None:
    baseline = from_experiment(evaluation("fourier", "thick", 512, 4.0, 0.20, name="lama"), "baseline")
    _, payload, _ = run_report(tmp_path, {}, samples=2, experiments=[baseline])
    assert row(payload, "table1", "LaMa-Fourier")["cells"]["wide_fid"]["ours"] == 4.0
    assert payload["samples"] == []  # its predictions are not on disk: the workspace's would be another model's


def per_bin(values: list[float]) -> dict[str, dict]:
    return {name: {"n": 2, BIN_METRIC: {"mean": value, "std": 0.0}}
            for name, value in zip(BIN_NAMES, values, strict=False)}


def test_area_bins_per_mask_set_and_model_in_bin_order(tmp_path: Path) -> None:
    summary, payload, markdown = run_report(tmp_path, {
        "ours": evaluation("fourier", "thick", 512, 1.0, 0.1, name="lama", bins=per_bin([0.5, 0.4, 0.3])),
        "fill": evaluation(None, "thick", 512, 2.0, 0.2, classical="mean-fill", bins=per_bin([0.45, 0.3, 0.1])),
        "thin": evaluation("fourier", "thin", 512, 1.0, 0.1, name="lama", bins=per_bin([0.7])),
        "other_size": evaluation("fourier", "thick", 256, 1.0, 0.1, name="lama", bins=per_bin([0.1])),
    }, samples=0, render_figure=True)
    series = payload["area_bins"]["series"]
    assert series == {"thin_512": {"lama": {BIN_NAMES[0]: 0.7}},
                      "thick_512": {"lama": dict(zip(BIN_NAMES[:3], [0.5, 0.4, 0.3], strict=True)),
                                    "Mean-colour fill": dict(zip(BIN_NAMES[:3], [0.45, 0.3, 0.1], strict=True))}}
    with Image.open(summary.out_dir / payload["area_bins"]["path"]) as image:
        assert image.format == "PNG" and image.width > 400
    assert f"]({payload['area_bins']['path']})" in markdown_section(markdown, "Scores by hole area")

    figure = draw_bins_figure(series)
    thin_axes, thick_axes = figure.axes
    assert [label.get_text() for label in thick_axes.get_xticklabels()] == list(BIN_NAMES[:3])
    heights = [patch.get_height() for patch in thick_axes.patches]
    np.testing.assert_allclose(heights, [0.5, 0.4, 0.3, 0.45, 0.3, 0.1])
    assert [text.get_text() for text in thick_axes.get_legend().get_texts()] == ["lama", "Mean-colour fill"]
    assert thin_axes.get_title() == "thin_512"
