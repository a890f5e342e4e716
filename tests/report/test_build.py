"""The report end to end: `lama evaluate` files into `lama report` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lama.cli import main
from tests.eval import write_eval_set


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
    assert error == f"lama report: {tmp_path / 'results' / 'thin.json'}: mask_set: Field required"
