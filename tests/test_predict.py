"""`lama predict`: official pairing, padding and quantisation; fixture parity from the command line; bad input."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from lama.cli import main
from lama.predict import pad_bottom_right
from tests.conftest import FIXTURE_MODELS, REPO, assert_matches_official, pixels


def test_symmetric_padding_repeats_the_edge_row_first() -> None:
    array = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    padded = pad_bottom_right(array, 4)
    assert padded.shape == (2, 8, 4)
    np.testing.assert_array_equal(padded[:, :5, :3], array)
    np.testing.assert_array_equal(padded[:, 5:, :3], array[:, [4, 3, 2], :])  # rows H-1, H-2, H-3
    np.testing.assert_array_equal(padded[:, :5, 3], array[:, :, 2])
    assert pad_bottom_right(array[:, :4, :], 4).shape == (2, 4, 4)  # width 3 -> 4, height kept


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_cli_reproduces_official_predictions(fixtures: Path, tmp_path: Path, name: str) -> None:
    inputs = fixtures / "tiny-biglama/input"
    assert main(["predict", str(fixtures / name), str(inputs), str(tmp_path), "--quiet", "--device", "cpu"]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    assert written == sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*mask*.png"))
    assert_matches_official(fixtures / name / "expected", tmp_path, inputs)


def test_official_style_overrides_and_raw_output(fixtures: Path, tmp_path: Path) -> None:
    args = [f"model.path={fixtures / 'tiny-biglama'}", f"indir={fixtures / 'tiny-biglama/input'}",
            f"outdir={tmp_path}", "out_key=predicted_image", "fold_norms=false", "channels_last=false", "-q"]
    assert main(["predict", *args]) == 0
    blended = pixels(fixtures / "tiny-biglama/expected/q_retina_mask001.png")
    raw = pixels(tmp_path / "q_retina_mask001.png")
    known = np.asarray(Image.open(fixtures / "tiny-biglama/input/q_retina_mask001.png").convert("L")) == 0
    assert np.abs(raw - blended)[known].max() > 0  # the raw output does not keep the known pixels


@pytest.fixture
def broken_inputs(fixtures: Path, tmp_path: Path) -> Path:
    """The fixture inputs plus an orphan mask, a mask of the wrong size and a truncated image."""
    inputs = tmp_path / "input"
    shutil.copytree(fixtures / "tiny-biglama/input", inputs)
    shutil.copy(inputs / "q_retina_mask001.png", inputs / "orphan_mask001.png")
    Image.new("L", (10, 10)).save(inputs / "s_rings_mask009.png")
    data = (inputs / "p_hubble.png").read_bytes()
    (inputs / "z_broken.png").write_bytes(data[: len(data) // 3])
    shutil.copy(inputs / "p_hubble_mask001.png", inputs / "z_broken_mask001.png")
    return inputs


def test_bad_inputs_are_named_and_the_rest_is_still_written(
    fixtures: Path, broken_inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    status = main(["predict", str(fixtures / "tiny-biglama"), str(broken_inputs), str(out), "-q"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert status == 1
    assert len(errors) == 3
    assert any("orphan_mask001.png" in e and "orphan.png does not exist" in e for e in errors)
    assert any("s_rings_mask009.png" in e and "10x10" in e and "71x85" in e for e in errors)
    assert any("z_broken.png" in e and "cannot read" in e for e in errors)
    assert len(list(out.rglob("*.png"))) == 5
    assert_matches_official(fixtures / "tiny-biglama/expected", out, broken_inputs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["precison=bf16"], "precison"),
        (["precision=fp16"], "precision='fp16'"),
        (["out_key=mask"], "out_key"),
        (["dataset.pad_out_to_modulo=abc"], "pad_out_to_modulo"),
        (["device=gpu0"], "device='gpu0'"),
        (["model.path=classical:fancy"], "classical:fancy"),
        (["classical_radius=0"], "classical_radius"),
        ([], "missing"),
    ],
)
def test_bad_options_fail_with_one_line_naming_the_key(
    fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    paths = [str(fixtures / "tiny-biglama"), str(fixtures / "tiny-biglama/input"), str(tmp_path)] if args else []
    assert main(["predict", *paths, *args, "-q"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error
    assert not list(tmp_path.rglob("*.png"))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(fixtures: Path, tmp_path: Path, capsys) -> None:
    args = [str(fixtures / "tiny-biglama"), str(fixtures / "tiny-biglama/input"), str(tmp_path), "--device", "cuda"]
    assert main(["predict", *args, "-q"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_out_of_memory_fails_only_that_image(
    fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lama.predict import Inpainter

    real_forward = Inpainter._forward

    def forward_or_run_out(self, tiles, out_key):
        if tiles[0].image.shape[1:] == (301, 223):  # p_hubble, the image of two of the five masks
            raise torch.OutOfMemoryError("simulated")
        return real_forward(self, tiles, out_key)

    monkeypatch.setattr(Inpainter, "_forward", forward_or_run_out)
    assert main(["predict", str(fixtures / "tiny-biglama"), str(fixtures / "tiny-biglama/input"), str(tmp_path),
                 "-q", "--batch-size", "3"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("p_hubble_mask00" in e and "out of memory on cpu at 301x223" in e
                                    for e in errors)
    assert len(list(tmp_path.rglob("*.png"))) == 3


def test_batches_give_the_official_predictions(fixtures: Path, tmp_path: Path) -> None:
    inputs = fixtures / "tiny-biglama/input"
    assert main(["predict", str(fixtures / "tiny-biglama"), str(inputs), str(tmp_path), "-q", "--batch-size", "4",
                 "device=cpu"]) == 0
    assert_matches_official(fixtures / "tiny-biglama/expected", tmp_path, inputs)


def test_a_batch_out_of_memory_is_split_and_nothing_is_lost(
    fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lama.predict import Inpainter

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(fixtures / "tiny-biglama/input/p_hubble.png", inputs / "p.png")
    for index in range(5):  # five masks of one image: one padded size, so one batch
        mask = np.zeros((301, 223), np.uint8)
        mask[20 * index:20 * index + 90, 30:150] = 255
        Image.fromarray(mask).save(inputs / f"p_mask{index:03d}.png")
    assert main(["predict", str(fixtures / "tiny-biglama"), str(inputs), str(tmp_path / "alone"), "-q"]) == 0
    real_forward, sizes = Inpainter._forward, []

    def forward_at_most_two(self, tiles, out_key):
        sizes.append(len(tiles))
        if len(tiles) > 2:
            raise torch.OutOfMemoryError("simulated")
        return real_forward(self, tiles, out_key)

    monkeypatch.setattr(Inpainter, "_forward", forward_at_most_two)
    assert main(["predict", str(fixtures / "tiny-biglama"), str(inputs), str(tmp_path / "split"), "-q",
                 "--batch-size", "5"]) == 0
    assert sizes == [5, 2, 2, 1]  # 5 runs out of memory; then batches of 2 until the last one
    for index in range(5):
        name = f"p_mask{index:03d}.png"
        got, alone = pixels(tmp_path / "split" / name), pixels(tmp_path / "alone" / name)
        assert np.abs(got - alone).max() <= 1, name


def test_unsafe_checkpoint_stops_predict_with_one_line(fixtures: Path, tmp_path: Path, capsys) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "models").mkdir(parents=True)
    shutil.copy(fixtures / "tiny-biglama/config.yaml", model_dir / "config.yaml")
    (model_dir / "models/best.ckpt").write_bytes(
        b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")  # legacy pickle: system("true")
    status = main(["predict", str(model_dir), str(fixtures / "tiny-biglama/input"), str(tmp_path / "o"), "-q"])
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1 and "posix.system" in error


def test_input_dir_without_masks_is_an_error(fixtures: Path, tmp_path: Path, capsys) -> None:
    assert main(["predict", str(fixtures / "tiny-biglama"), str(tmp_path), str(tmp_path / "o"), "-q"]) == 2
    assert "no '*mask*.png' files" in capsys.readouterr().err


@pytest.mark.slow
def test_console_command_bf16_end_to_end(fixtures: Path, tmp_path: Path) -> None:
    """The installed `lama` command in a fresh process, in bf16: known pixels exact, holes close to fp32."""
    lama = Path(sys.executable).with_name("lama")
    command = [str(lama), "predict", str(fixtures / "tiny-biglama"), str(fixtures / "tiny-biglama/input"),
               str(tmp_path), "--precision", "bf16", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "5 written, 0 failed" in result.stderr
    expected = fixtures / "tiny-biglama/expected"
    for reference in expected.rglob("*.png"):
        relative = reference.relative_to(expected)
        mask = np.asarray(Image.open(fixtures / "tiny-biglama/input" / relative).convert("L")) > 0
        delta = np.abs(pixels(tmp_path / relative) - pixels(reference))
        assert delta[~mask].max() == 0
        assert delta[mask].mean() <= 2.0  # uint8 levels, i.e. 2/255


@pytest.mark.parametrize(("method", "flag"), [("telea", cv2.INPAINT_TELEA), ("navier-stokes", cv2.INPAINT_NS)])
def test_opencv_baselines_are_cv2_inpaint_behind_predicts_layout(tmp_path: Path, method: str, flag: int) -> None:
    examples = REPO / "examples" / "input"
    assert main(["predict", f"classical:{method}", str(examples), str(tmp_path), "classical_radius=5", "-q"]) == 0
    for mask_path in sorted(examples.glob("*_mask*.png")):
        image = np.asarray(Image.open(examples / mask_path.name.replace("_mask000", "")).convert("RGB"))
        hole = np.asarray(Image.open(mask_path).convert("L")) > 0
        expected = cv2.inpaint(image, hole.astype(np.uint8) * 255, 5, flag)
        got = np.asarray(Image.open(tmp_path / mask_path.name))
        np.testing.assert_array_equal(got, expected)  # OpenCV itself, hole and known pixels alike
        np.testing.assert_array_equal(got[~hole], image[~hole])
        assert np.abs(got[hole].astype(int) - image[hole]).mean() > 0  # the hole was filled, not copied


def test_mean_fill_paints_the_hole_with_the_known_pixels_mean_colour(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    hole = np.zeros((20, 30), dtype=bool)
    hole[5:12, 8:25] = True
    Image.fromarray(image).save(tmp_path / "x.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "x_mask000.png")
    assert main(["predict", "classical:mean-fill", str(tmp_path), str(tmp_path / "out"), "-q"]) == 0
    got = np.asarray(Image.open(tmp_path / "out" / "x_mask000.png"))
    colour = np.floor(image[~hole].astype(np.float64).mean(axis=0) + 1e-4).astype(np.uint8)  # truncated, as written
    assert (np.abs(got[hole].astype(int) - colour) <= 1).all() and (got[hole] == got[hole][0]).all()
    np.testing.assert_array_equal(got[~hole], image[~hole])


def _bomb_png(side: int = 30000) -> bytes:
    """A 45-byte PNG whose header claims side x side pixels (a decompression bomb: no pixel data follows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.fixture
def small_pairs(tmp_path: Path) -> Path:
    """Two good image/mask pairs (16x12) in tmp_path/in, quick to fill with classical:mean-fill."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(folder / f"{name}.png")
        hole = np.zeros((12, 16), dtype=np.uint8)
        hole[3:8, 4:10] = 255
        Image.fromarray(hole).save(folder / f"{name}_mask001.png")
    return folder


def _predict(indir: Path, outdir: Path, capsys: pytest.CaptureFixture, model: str = "classical:mean-fill"
             ) -> tuple[int, list[str], str]:
    """Exit status, the per-file error lines and all of stderr of `lama predict MODEL indir outdir -q`."""
    status = main(["predict", model, str(indir), str(outdir), "-q"])
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    return status, [line for line in stderr.splitlines() if line.startswith("error:")], stderr


def _written(outdir: Path) -> list[str]:
    return sorted(p.relative_to(outdir).as_posix() for p in outdir.rglob("*.png") if p.is_file())


def test_decompression_bomb_fails_only_its_mask(small_pairs: Path, tmp_path: Path, capsys) -> None:
    shutil.copy(small_pairs / "a.png", small_pairs / "0_bomb.png")
    (small_pairs / "0_bomb_mask001.png").write_bytes(_bomb_png())  # sorted first: the good pairs come after it
    status, errors, stderr = _predict(small_pairs, tmp_path / "out", capsys)
    assert status == 1
    assert len(errors) == 1 and "0_bomb_mask001.png" in errors[0] and "decompression-bomb" in errors[0]
    assert _written(tmp_path / "out") == ["a_mask001.png", "b_mask001.png"]
    assert "2 written, 1 failed" in stderr


def test_a_mask_name_without_the_mark_fails_only_that_file(small_pairs: Path, tmp_path: Path, capsys) -> None:
    shutil.copy(small_pairs / "a_mask001.png", small_pairs / "mymask.png")
    status, errors, stderr = _predict(small_pairs, tmp_path / "out", capsys)
    assert status == 1
    assert len(errors) == 1 and "mymask.png" in errors[0] and "'_mask'" in errors[0]
    assert _written(tmp_path / "out") == ["a_mask001.png", "b_mask001.png"]
    assert "2 written, 1 failed" in stderr


def test_a_mask_folder_above_the_input_dir_never_pairs_with_files_outside_it(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    indir = tmp_path / "x_mask" / "in"
    indir.mkdir(parents=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(tmp_path / "x.png")  # outside indir
    Image.fromarray(np.full((12, 16), 255, dtype=np.uint8)).save(indir / "qmask.png")
    opened = []
    real_open = Image.open

    def recording_open(source, *args, **kwargs):
        opened.append(Path(source) if isinstance(source, (str, Path)) else None)
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(Image, "open", recording_open)
    status, errors, _ = _predict(indir, tmp_path / "out", capsys)
    assert status == 1
    assert len(errors) == 1 and "qmask.png" in errors[0]
    assert tmp_path / "x.png" not in opened
    assert all(path is None or path.is_relative_to(indir) for path in opened)
    assert not (tmp_path / "out" / "qmask.png").exists()


@pytest.fixture
def model_never_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the model was loaded although the output folder cannot be used")

    monkeypatch.setattr("lama.predict.load_model", fail)


def test_an_output_dir_that_is_a_file_stops_before_the_model_is_loaded(
    small_pairs: Path, tmp_path: Path, capsys, model_never_loaded: None
) -> None:
    outdir = tmp_path / "out.png"
    outdir.write_bytes(b"not a folder")
    status, _, stderr = _predict(small_pairs, outdir, capsys, model=str(tmp_path / "model"))
    assert status == 2
    assert len(stderr.strip().splitlines()) == 1 and str(outdir) in stderr and "not a folder" in stderr
    assert outdir.read_bytes() == b"not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_dir_stops_before_the_model_is_loaded(
    small_pairs: Path, tmp_path: Path, capsys, model_never_loaded: None
) -> None:
    outdir = tmp_path / "out"
    outdir.mkdir()
    outdir.chmod(0o555)
    try:
        status, _, stderr = _predict(small_pairs, outdir, capsys, model=str(tmp_path / "model"))
    finally:
        outdir.chmod(0o755)
    assert status == 2
    assert len(stderr.strip().splitlines()) == 1 and str(outdir) in stderr and "Permission denied" in stderr
    assert not list(outdir.iterdir())


def test_an_output_path_taken_by_a_folder_fails_only_that_mask(small_pairs: Path, tmp_path: Path, capsys) -> None:
    outdir = tmp_path / "out"
    (outdir / "a_mask001.png").mkdir(parents=True)
    status, errors, stderr = _predict(small_pairs, outdir, capsys)
    assert status == 1
    assert len(errors) == 1 and str(outdir / "a_mask001.png") in errors[0] and "cannot write" in errors[0]
    assert _written(outdir) == ["b_mask001.png"]
    assert "1 written, 1 failed" in stderr
    assert not list((outdir / "a_mask001.png").iterdir())  # no temporary file left behind


def test_writing_into_the_input_folder_over_the_masks_is_refused(small_pairs: Path, capsys) -> None:
    masks = {path: path.read_bytes() for path in small_pairs.glob("*_mask*.png")}
    status, _, stderr = _predict(small_pairs, small_pairs, capsys)
    assert status == 2 and len(stderr.strip().splitlines()) == 1 and "overwrite its mask" in stderr
    assert all(path.read_bytes() == data for path, data in masks.items())


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_the_default_path_is_the_plain_official_forward_bit_for_bit(fixtures: Path, name: str) -> None:
    from lama.imageio.eval_layout import find_pairs, read_pair
    from lama.models.inference import prepare_for_inference
    from lama.models.model_dir import generator_input, load_model
    from lama.predict import Inpainter, to_uint8

    model = load_model(fixtures / name, map_location="cpu")
    inpainter = Inpainter(model, "cpu")
    generator = prepare_for_inference(model.generator, "cpu", "fp32", True, True)
    pairs = find_pairs(fixtures / "tiny-biglama/input", "unused")
    images = [read_pair(pair) for pair in pairs]
    for pair, (image, mask) in zip(pairs, images, strict=True):
        # the plain path as it stood before refinement, strategies and batches: pad, forward, blend, crop
        padded = torch.from_numpy(pad_bottom_right(image, 8))[None]
        hole = torch.from_numpy(pad_bottom_right(mask, 8) > 0)[None].float()
        with torch.inference_mode():
            predicted = generator(generator_input(padded, hole, True).contiguous(memory_format=torch.channels_last))
        expected = to_uint8((hole * predicted + (1 - hole) * padded)[0, :, :image.shape[1], :image.shape[2]].numpy())
        np.testing.assert_array_equal(inpainter.predict(image, mask), expected, err_msg=str(pair.mask))
    batched = Inpainter(model, "cpu", batch_size=4).predict_many(images)
    for (image, mask), result in zip(images, batched, strict=True):
        np.testing.assert_array_equal(result, inpainter.predict(image, mask))
