"""``lama export``: the file is written in the format asked for, and every bad input is one line before any work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from lama.cli import main
from lama.export import ExportOptions, export_model
from lama.export.options import FOURIER_MODES


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


def test_the_format_follows_the_suffix_or_the_flag(fixtures: Path, tmp_path: Path, capsys) -> None:
    model_dir = str(fixtures / "tiny-lama-regular")
    assert main(["export", model_dir, str(tmp_path / "model.pt")]) == 0
    assert "torchscript" in _one_line_error(capsys)
    assert main(["export", model_dir, str(tmp_path / "model.bin"), "--format", "onnx"]) == 0
    assert (tmp_path / "model.bin").read_bytes()[:2] != b"PK"  # a protobuf, not TorchScript's zip archive
    assert (tmp_path / "model.pt").read_bytes()[:2] == b"PK"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.bin", "model.pt"]  # no temporary left


def _with_kind(fixtures: Path, tmp_path: Path, kind: str) -> Path:
    model_dir = tmp_path / "model"
    shutil.copytree(fixtures / "tiny-biglama", model_dir)
    config = yaml.safe_load((model_dir / "config.yaml").read_text())
    config["generator"]["kind"] = kind
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return model_dir


@pytest.mark.parametrize(("case", "message"), [
    ("not a model dir", "config.yaml: missing; a model dir holds config.yaml and models/best.ckpt"),
    ("unsupported kind", "generator.kind: 'unet' is not a known generator"),
    ("missing checkpoint", "models/last.ckpt: checkpoint not found"),
    ("output under a file", "cannot write there"),
    ("output is a folder", "is a folder; expected the path of the file to write"),
    ("unknown suffix", "cannot tell the format from the suffix; name it with --format"),
    ("torchscript in fp16", "format=torchscript: fourier and precision are ONNX options"),
])
def test_bad_inputs_fail_with_one_line_before_any_work(fixtures: Path, tmp_path: Path, capsys, case: str,
                                                      message: str) -> None:
    model_dir, output, extra = fixtures / "tiny-biglama", tmp_path / "out.onnx", []
    if case == "not a model dir":
        model_dir = tmp_path
    elif case == "unsupported kind":
        model_dir = _with_kind(fixtures, tmp_path, "unet")
    elif case == "missing checkpoint":
        extra = ["--checkpoint", "last.ckpt"]
    elif case == "output under a file":
        (tmp_path / "file").write_text("")
        output = tmp_path / "file" / "out.onnx"
    elif case == "output is a folder":
        output.mkdir()
    elif case == "unknown suffix":
        output = tmp_path / "out.model"
    elif case == "torchscript in fp16":
        output, extra = tmp_path / "out.pt", ["--precision", "fp16"]
    assert main(["export", str(model_dir), str(output), *extra]) == 2
    error = _one_line_error(capsys)
    assert error.startswith("lama export: ") and message in error


def test_an_unknown_choice_is_refused_by_the_api_too(fixtures: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"fourier='fft': expected one of {', '.join(FOURIER_MODES)}"):
        export_model(fixtures / "tiny-biglama", tmp_path / "out.onnx", ExportOptions(fourier="fft"))
    assert not list(tmp_path.iterdir())


def test_a_missing_onnx_exporter_package_is_one_line_naming_the_extra(fixtures: Path, tmp_path: Path, capsys,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "onnxscript" else real_find_spec(name, *args))
    assert main(["export", str(fixtures / "tiny-biglama"), str(tmp_path / "out.onnx")]) == 2
    assert "the onnxscript package is not installed (pip install 'lama-lab[export]')" in _one_line_error(capsys)
    assert not list(tmp_path.iterdir())
