"""The before / after table: two runs' scores per mask set, each change judged by the metric's direction, the
missing run named, the sample grids beside it, and the params check of ``report.before_after``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from unittest import mock

import pytest

from lama.cli import main
from lama.config import ConfigError
from lama.pipeline.params import load_params
from lama.report import build as build_module
from lama.report.evaluations import parse_evaluation
from tests.conftest import REPO
from tests.report import (
    evaluation,
    make_mask_set,
    make_predictions,
    markdown_header,
    markdown_rows,
    markdown_section,
    run_report,
    skip_rendering,
    write_json,
)

TITLE = "Before / after fine-tuning"


def _pair() -> dict[str, dict]:
    """`pretrained` and `finetuned` on medium_128 (real networks) and thick_128 (stand-ins), listed thick first."""
    return {
        "pretrained_thick": evaluation("fourier", "thick", 128, 20.0, 0.40, name="pretrained", hole=(0.30, 12.0),
                                       stand_in=("lpips", "fid")),
        "finetuned_thick": evaluation("fourier", "thick", 128, 21.0, 0.38, name="finetuned", hole=(0.29, 12.5),
                                      stand_in=("lpips", "fid")),
        "pretrained_medium": evaluation("fourier", "medium", 128, 10.0, 0.30, name="pretrained", hole=(0.400, 16.0)),
        "finetuned_medium": evaluation("fourier", "medium", 128, 9.2, 0.35, name="finetuned", hole=(0.412, 16.0)),
        "telea_medium": evaluation(None, "medium", 128, 30.0, 0.5, classical="telea", hole=(0.2, 10.0)),
    }


def test_the_table_holds_the_files_values_and_judges_each_change_by_its_direction(tmp_path: Path) -> None:
    files = _pair()
    summary, payload, markdown = run_report(tmp_path, files, samples=0, before_after=("pretrained", "finetuned"))
    table = payload["before_after"]
    assert (table["before"], table["after"]) == ("pretrained", "finetuned")
    assert table["metrics"] == ["hole_ssim", "hole_psnr", "fid", "lpips"]
    assert [item["mask_set"] for item in table["rows"]] == ["medium_128", "thick_128"]  # thin → thick, not by file
    for item in table["rows"]:
        kind = item["mask_set"].split("_")[0]
        for run, which in (("pretrained", "before"), ("finetuned", "after")):
            metrics = files[f"{run}_{kind}"]["metrics"]
            assert item[f"{which}_source"].endswith(f"{run}_{kind}.json")
            for metric, cell in item["cells"].items():
                assert cell[which] == metrics.get(metric, metrics.get(f"{metric}_stand-in")), (run, metric)
    medium = table["rows"][0]["cells"]
    assert medium["fid"]["change"] == pytest.approx(-0.8) and medium["fid"]["verdict"] == "better"  # lower FID
    assert medium["lpips"]["change"] == pytest.approx(0.05) and medium["lpips"]["verdict"] == "worse"
    assert medium["hole_ssim"]["verdict"] == "better" and medium["hole_psnr"]["verdict"] == "unchanged"
    thick = table["rows"][1]["cells"]
    assert thick["fid"]["before_stand_in"] is thick["fid"]["after_stand_in"] is True
    assert medium["fid"]["before_stand_in"] is medium["fid"]["after_stand_in"] is False
    assert table["missing"] == []
    assert markdown.split("\n## ", 2)[1].startswith(TITLE)  # the first table of tables.md
    assert markdown_header(markdown, TITLE)[:4] == [
        "Mask set", "hole SSIM before", "hole SSIM after", "hole SSIM change"]
    rows = {cells[0]: cells[1:] for cells in markdown_rows(markdown, TITLE)}
    assert rows["medium_128"] == ["0.400", "0.412", "+0.012 ▲", "16.00", "16.00", "0",
                                  "10.00", "9.20", "−0.80 ▲", "0.300", "0.350", "+0.050 ▼"]
    assert rows["thick_128"][6:] == ["20.00†", "21.00†", "+1.00† ▼", "0.400†", "0.380†", "−0.020† ▲"]
    section = markdown_section(markdown, TITLE)
    assert "Before: `pretrained`; after: `finetuned`" in section
    assert "higher is better for hole SSIM, hole PSNR (dB); lower for FID, LPIPS" in section
    assert "† computed with a seeded random stand-in network" in section and "missing: nothing" in section
    assert str(summary).startswith("5 tables")


def test_the_workspace_evaluation_is_used_and_a_mask_set_of_one_run_is_missing(tmp_path: Path) -> None:
    files = _pair()
    files["finetuned_thin"] = evaluation("fourier", "thin", 128, 5.0, 0.2, name="finetuned")
    # A saved experiment's evaluations (even under the run's own name) neither replace nor fill the workspace's.
    saved = [dataclasses.replace(parse_evaluation(data, tmp_path / f"saved_{index}.json"),
                                 metrics={"fid": 1.0, "lpips": 0.1}, experiment="baseline")
             for index, data in enumerate((files["finetuned_medium"], {**files["finetuned_thin"], "model": {
                 **files["finetuned_thin"]["model"], "name": "pretrained"}}))]
    _, payload, markdown = run_report(tmp_path, files, samples=0, experiments=saved,
                                      before_after=("pretrained", "finetuned"))
    assert [item["mask_set"] for item in payload["before_after"]["rows"]] == ["medium_128", "thick_128"]
    medium = payload["before_after"]["rows"][0]
    assert medium["mask_set"] == "medium_128" and medium["cells"]["fid"]["after"] == 9.2
    assert payload["before_after"]["missing"] == ["`pretrained` × thin_128"]
    assert "- missing: `pretrained` × thin_128" in markdown_section(markdown, TITLE)


def test_a_run_without_evaluations_is_named_in_one_line(tmp_path: Path) -> None:
    files = {name: data for name, data in _pair().items() if not name.startswith("finetuned")}
    _, payload, markdown = run_report(tmp_path, files, samples=0, before_after=("pretrained", "finetuned"))
    assert payload["before_after"]["rows"] == []
    section = markdown_section(markdown, TITLE)
    assert [line for line in section.splitlines() if "missing" in line] == [
        "- missing: `finetuned` has no evaluation in the workspace"]
    assert "No mask set evaluated for both runs." in section


def test_a_real_value_is_not_compared_with_a_stand_in_one(tmp_path: Path) -> None:
    _, payload, markdown = run_report(tmp_path, {
        "pretrained": evaluation("fourier", "thick", 128, 20.0, 0.40, name="pretrained", hole=(0.30, 12.0)),
        "finetuned": evaluation("fourier", "thick", 128, 18.0, 0.38, name="finetuned", hole=(0.31, 12.5),
                                stand_in=("fid",)),
    }, samples=0, before_after=("pretrained", "finetuned"))
    fid = payload["before_after"]["rows"][0]["cells"]["fid"]
    assert (fid["before_stand_in"], fid["after_stand_in"], fid["change"], fid["verdict"]) == (False, True, None, None)
    (cells,) = markdown_rows(markdown, TITLE)
    assert cells[7:10] == ["20.00", "18.00†", "—"] and cells[10:] == ["0.400", "0.380", "−0.020 ▲"]


def test_without_before_after_there_is_no_such_table(tmp_path: Path) -> None:
    summary, payload, markdown = run_report(tmp_path, _pair(), samples=0)
    assert payload["before_after"] is None and TITLE not in markdown and str(summary).startswith("4 tables")
    with pytest.raises(ValueError, match="two distinct run names"):
        run_report(tmp_path, _pair(), samples=0, before_after=("pretrained", "pretrained"))


def test_the_command_line_option_and_the_sample_grid_put_both_runs_side_by_side(tmp_path: Path) -> None:
    """At 128² the runs fill only the before / after table (the others are at 256²), yet their grid shows both."""
    masks = make_mask_set(tmp_path / "masks" / "medium_128")
    for seed, run in enumerate(("pretrained", "finetuned")):
        predictions = make_predictions(masks, tmp_path / "predictions" / run, seed=seed)
        write_json(tmp_path / "evals" / f"{run}.json", evaluation(
            "fourier", "medium", 128, 10.0 - seed, 0.3, name=run, mask_dir=masks, predictions=predictions))
    write_json(tmp_path / "evals" / "telea.json", evaluation(None, "thick", 256, 30.0, 0.5, classical="telea"))
    with mock.patch.object(build_module, "write_resolution_figure", skip_rendering), \
            mock.patch.object(build_module, "write_bins_figure", skip_rendering):
        assert main(["report", str(tmp_path / "evals"), "--out", str(tmp_path / "report"), "-q", "--samples", "2",
                     "--before-after", "pretrained", "finetuned"]) == 0
    payload = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert [item["mask_set"] for item in payload["before_after"]["rows"]] == ["medium_128"]
    assert payload["anchors"]["size"] == 256  # the runs are in no other table
    grid = {item["mask_set"]: item for item in payload["samples"]}["medium_128"]
    assert (grid["mask_set"], grid["models"], grid["path"]) == (
        "medium_128", ["pretrained", "finetuned"], "samples/medium_128.png")  # before, then after
    assert (tmp_path / "report" / grid["path"]).is_file()


RUNS = ["runs.finetuned={}", "run_names=[lama,finetuned]"]  # params.yaml's run `lama` and one more


def test_the_params_take_two_runs_or_none() -> None:
    assert load_params(REPO / "params.yaml").report.before_after == []
    params = load_params(REPO / "params.yaml", overrides=[*RUNS, "report.before_after=[lama,finetuned]"])
    assert params.report.before_after == ["lama", "finetuned"]


@pytest.mark.parametrize("value", ["[lama]", "[lama,lama]", "[lama,pretrained]", "[lama,finetuned,lama]"])
def test_the_params_check_wants_two_distinct_runs(value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_params(REPO / "params.yaml", overrides=[*RUNS, f"report.before_after={value}"])
    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert "report.before_after=" in message and "two distinct names of runs" in message
