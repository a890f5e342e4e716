"""``lama predict --backend onnxruntime``: the same command, outputs and errors as the PyTorch backend; and the
fp16 file, whose Fourier units stay in fp32, stays within 2 levels of fp32 in the holes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lama.cli import main
from lama.export import OnnxRunner
from lama.imageio.eval_layout import read_image, read_mask
from tests.conftest import REPO, assert_matches_official, pixels
from tests.export.conftest import Exporter

SAMPLE_MODEL = REPO / "examples" / "models" / "sample-narrow"
PHOTO = REPO / "examples" / "input" / "astronaut.png"


def test_predict_with_onnxruntime_writes_what_the_torch_backend_writes(fixtures: Path, exported: Exporter,
                                                                       tmp_path: Path) -> None:
    inputs = fixtures / "tiny-biglama" / "input"
    onnx_out, torch_out = tmp_path / "onnx", tmp_path / "torch"
    path = exported(fixtures / "tiny-biglama")
    assert main(["predict", str(path), str(inputs), str(onnx_out), "--backend", "onnxruntime", "-q"]) == 0
    assert main(["predict", str(fixtures / "tiny-biglama"), str(inputs), str(torch_out), "--device", "cpu", "-q"]) == 0
    written = sorted(p.relative_to(onnx_out) for p in onnx_out.rglob("*.png"))
    assert written == sorted(p.relative_to(torch_out) for p in torch_out.rglob("*.png")) and len(written) == 5
    for relative in written:  # odd sizes and an RGBA image among them: the same padding and reading
        assert np.abs(pixels(onnx_out / relative) - pixels(torch_out / relative)).max() <= 1, relative
    assert_matches_official(fixtures / "tiny-biglama" / "expected", onnx_out, inputs)


def test_strategies_and_batches_run_through_the_file(fixtures: Path, exported: Exporter, tmp_path: Path) -> None:
    inputs = fixtures / "tiny-biglama" / "input"
    path = exported(fixtures / "tiny-biglama")
    args = [str(path), str(inputs), str(tmp_path), "--backend", "onnxruntime", "-q", "--batch-size", "3",
            "--hd-strategy", "crop", "hd_strategy_crop_trigger_size=64", "hd_strategy_crop_margin=16"]
    assert main(["predict", *args]) == 0
    known = np.asarray(Image.open(inputs / "q_retina_mask001.png").convert("L")) == 0
    original = pixels(inputs / "q_retina.png")
    assert np.array_equal(pixels(tmp_path / "q_retina_mask001.png")[known], original[known])


@pytest.mark.parametrize(("arguments", "message"), [
    (["--backend", "onnxruntime"], "backend=onnxruntime: model.path={model_dir}; expected a .onnx file"),
    (["--backend", "onnxruntime", "--refine", "model.path={file}"], "refine=true: the refinement optimises features"),
    (["--backend", "onnxruntime", "--precision", "bf16", "model.path={file}"], "precision=bf16: an ONNX file's"),
    (["--backend", "torch", "model.path={file}"], "an ONNX file; run it with backend=onnxruntime"),
    (["--backend", "onnxruntime", "model.path={file}", "out_key=predicted_image"],
     "out_key=predicted_image: {file} was exported with out_key=inpainted"),
])
def test_bad_backend_options_are_one_line(fixtures: Path, exported: Exporter, tmp_path: Path, capsys,
                                          arguments: list[str], message: str) -> None:
    path = str(exported(fixtures / "tiny-biglama"))
    model_dir = str(fixtures / "tiny-biglama")
    arguments = [argument.format(file=path) for argument in arguments]
    assert main(["predict", model_dir, str(fixtures / "tiny-biglama" / "input"), str(tmp_path), "-q",
                 *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert message.format(file=path, model_dir=model_dir) in error


def test_a_file_that_is_not_an_export_is_one_line(tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    assert main(["predict", str(broken), str(tmp_path), str(tmp_path / "out"), "--backend", "onnxruntime"]) == 2
    assert main(["predict", str(broken), str(REPO / "examples" / "input"), str(tmp_path / "out"), "--backend",
                 "onnxruntime", "-q"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"lama predict: {broken}: ONNX Runtime cannot load it")


def _hole_difference(fp16: OnnxRunner, fp32: OnnxRunner, image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean |Δ| in the hole between the two files (8-bit levels), and the fp16 output's mean in the hole."""
    batch, holes = image[None], mask[None]
    half, full = fp16(batch, holes)[0], fp32(batch, holes)[0]
    hole = mask[0] > 0
    return float(np.abs(half - full)[:, hole].mean() * 255), float(half[:, hole].mean())


def test_fp16_stays_within_2_levels_of_fp32_in_the_hole(fixtures: Path, exported: Exporter) -> None:
    """The trained sample model on a real photo and the official tiny model on its fixtures: no black or saturated
    fill, mean |Δ| in the hole at most 2/255."""
    cases = [(SAMPLE_MODEL, read_image(PHOTO), read_mask(REPO / "examples" / "input" / "astronaut_mask000.png"))]
    inputs = fixtures / "tiny-biglama" / "input"
    cases += [(fixtures / "tiny-biglama", read_image(inputs / f"{name}.png"), read_mask(inputs / f"{name}_mask001.png"))
              for name in ("p_hubble", "q_retina")]
    for model_dir, image, mask in cases:
        fp16 = OnnxRunner(exported(model_dir, precision="fp16"))
        fp32 = OnnxRunner(exported(model_dir))
        height, width = (side - side % 8 for side in image.shape[1:])
        difference, hole_mean = _hole_difference(fp16, fp32, image[:, :height, :width], mask[:, :height, :width])
        assert difference <= 2, model_dir
        assert 0.02 < hole_mean < 0.98, model_dir  # not black, not white
