"""Reading evaluation files: the schema's errors name the file and the key, other JSON is skipped, duplicates warn,
relative paths resolve."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import pytest

from lama.report import build_report
from lama.report.evaluations import load_evaluations
from tests.report import evaluation, make_mask_set, make_predictions, row, run_report, write_json


def test_duplicate_matches_use_the_first_path_and_warn_naming_both(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    write_json(tmp_path / "evals" / "b" / "fourier.json", evaluation("fourier", "thick", 512, 9.0, 0.9))
    with caplog.at_level(logging.WARNING, logger="lama.report.evaluations"):
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
    (lambda data: data.update(stand_in=["inception"]), "stand_in.0"),
    (lambda data: data.update(n="3"), "n"),
    (lambda data: data["mask_set"].update(kind="wide"), "mask_set.kind"),
    (lambda data: data["model"].update(recipe=["loss.alpha=0", 30]), "model.recipe.1"),
    (lambda data: data.update(bins={"total": 3}), "bins.total"),
    (lambda data: data.update(fid_method=None), "fid_method"),
])
def test_malformed_evaluation_names_the_file_and_the_key(tmp_path: Path, change: Any, key: str) -> None:
    data = evaluation("fourier", "thick", 512, 2.0, 0.2)
    change(data)
    path = write_json(tmp_path / "evals" / "broken.json", data)
    with pytest.raises(ValueError, match=r"broken\.json: " + re.escape(key) + ": ") as error:
        build_report([tmp_path / "evals"], tmp_path / "report")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("change", "message"), [
    (lambda data: data.update(n="3"), "n: Input should be a valid integer, got '3'"),
    (lambda data: data["metrics"].update(lpips="0.2"), "metrics.lpips: Input should be a valid number, got '0.2'"),
])
def test_a_wrong_typed_field_is_one_line_naming_the_file_and_the_key(tmp_path: Path, change: Any,
                                                                     message: str) -> None:
    data = evaluation("fourier", "thick", 512, 2.0, 0.2)
    change(data)
    path = write_json(tmp_path / "broken.json", data)
    with pytest.raises(ValueError) as error:
        load_evaluations([path])
    assert str(error.value) == f"{path}: {message}"


def test_absent_null_and_nan_fields_read_as_not_recorded(tmp_path: Path) -> None:
    """Files written before ``model.classical`` and ``model.recipe`` existed lack them; a NaN or null metric is n/a."""
    data = evaluation("fourier", "thick", 512, math.nan, None, train_masks=None, mask_interp=None)
    del data["model"]["classical"], data["model"]["recipe"]
    (found,) = load_evaluations([write_json(tmp_path / "old.json", data)])
    assert (found.classical, found.recipe, found.train_masks, found.mask_interp) == (None, None, "wide", "none")
    assert found.metric("fid").value is None and found.metric("lpips").value is None  # type: ignore[union-attr]
    assert found.metric("ssim").value == 0.8  # type: ignore[union-attr]


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
