"""`lama masks`: eval mask sets in the official layout, deterministic, parallel, resumable, accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lama.cli import main
from lama.masks import build_eval_mask_set
from lama.masks.eval_set import JOURNAL, MANIFEST, _Job, propose_square_crop, resize_short_side


def _write_images(folder: Path) -> Path:
    rng = np.random.RandomState(0)
    (folder / "nested").mkdir(parents=True)
    for name, (height, width) in {"wide.png": (300, 420), "nested/tall.jpg": (420, 300), "square.png": (256, 256),
                                  "small.png": (100, 140), "b.jpeg": (260, 270)}.items():
        Image.fromarray((rng.rand(height, width, 3) * 255).astype(np.uint8)).save(folder / name)
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_images(tmp_path_factory.mktemp("images"))


def test_builds_pairs_in_the_official_layout(images: Path, tmp_path: Path) -> None:
    summary = build_eval_mask_set("thick_256", images, tmp_path, progress=False)
    assert (summary.images, summary.pairs) == (6, 5)
    assert list(summary.dropped) == ["broken.png"] and summary.dropped["broken.png"].startswith("unreadable: ")
    names = set(_files(tmp_path))
    for stem in ("wide", "nested/tall", "square", "small", "b"):
        assert {f"{stem}_crop000.png", f"{stem}_crop000_mask000.png"} <= names
        image = np.asarray(Image.open(tmp_path / f"{stem}_crop000.png"))
        mask = np.asarray(Image.open(tmp_path / f"{stem}_crop000_mask000.png"))
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}
        assert 0 < (mask > 0).mean() <= 0.5
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["config_name"] == "thick_256" and manifest["summary"]["pairs"] == 5
    assert not (tmp_path / JOURNAL).exists()


def test_the_crop_is_taken_from_the_resized_image(images: Path, tmp_path: Path) -> None:
    build_eval_mask_set("thin_256", images, tmp_path, progress=False)
    with Image.open(images / "wide.png") as source:
        resized = np.asarray(resize_short_side(source.convert("RGB"), 256))
    assert resized.shape == (256, 358, 3)  # round(420 * 256 / 300)
    crop = np.asarray(Image.open(tmp_path / "wide_crop000.png"))
    offsets = [x for x in range(resized.shape[1] - 255) if np.array_equal(resized[:, x : x + 256], crop)]
    assert len(offsets) == 1


def test_same_inputs_give_identical_bytes_whatever_n_jobs(images: Path, tmp_path: Path) -> None:
    build_eval_mask_set("medium_256", images, tmp_path / "a", seed=7, n_jobs=1, progress=False)
    build_eval_mask_set("medium_256", images, tmp_path / "b", seed=7, n_jobs=2, progress=False)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first == second and len(first) == 11
    build_eval_mask_set("medium_256", images, tmp_path / "c", seed=8, progress=False)
    assert _files(tmp_path / "c")["wide_crop000_mask000.png"] != first["wide_crop000_mask000.png"]


def test_an_interrupted_build_resumes_from_its_journal(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_eval_mask_set("thin_256", images, tmp_path / "complete", progress=False)
    processed = []
    original = _Job.__call__

    def interrupted_after_three(job: _Job, source: Path) -> object:
        if len(processed) == 3:
            raise KeyboardInterrupt
        processed.append(source)
        return original(job, source)

    monkeypatch.setattr(_Job, "__call__", interrupted_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_eval_mask_set("thin_256", images, tmp_path / "partial", progress=False)
    assert len((tmp_path / "partial" / JOURNAL).read_text().splitlines()) == 4  # identity + 3 images
    assert not (tmp_path / "partial" / MANIFEST).exists()
    monkeypatch.setattr(_Job, "__call__", original)
    resumed = []
    monkeypatch.setattr(_Job, "__call__", lambda job, source: resumed.append(source) or original(job, source))
    summary = build_eval_mask_set("thin_256", images, tmp_path / "partial", progress=False)
    assert len(resumed) == 3 and not set(resumed) & set(processed)  # only the unfinished images ran again
    assert summary.pairs == 5
    assert _files(tmp_path / "partial") == _files(tmp_path / "complete")


def test_refuses_to_mix_two_mask_sets_in_one_folder(images: Path, tmp_path: Path) -> None:
    build_eval_mask_set("thin_256", images, tmp_path, progress=False)
    with pytest.raises(ValueError, match="already holds mask set 'thin_256' \\(seed 0\\)"):
        build_eval_mask_set("thick_256", images, tmp_path, progress=False)
    build_eval_mask_set("thin_256", images, tmp_path, progress=False)  # the same set again is fine


def test_images_without_an_acceptable_mask_are_dropped_with_the_reason(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(30):
        Image.new("RGB", (256, 256)).save(folder / f"{i:02d}.png")
    summary = build_eval_mask_set("thick_512", folder, tmp_path / "out", progress=False)
    # thick_512 rejects 43 % of its candidates; with 10 attempts of 5 candidates nothing is lost in 30 images.
    assert summary.pairs == 30 and summary.rejected_area > 0 and not summary.dropped


def test_square_crop_on_a_wide_image_keeps_the_mask_end_inside() -> None:
    rng = np.random.RandomState(0)
    for start_column in range(0, 300, 7):
        mask = np.zeros((100, 320), np.uint8)
        mask[40:60, start_column : start_column + 15] = 1
        left, top, right, bottom = propose_square_crop(mask, rng, min_overlap=1.0)
        assert (top, bottom, right - left) == (0, 100, 100) and 0 <= left <= 220
        assert left <= start_column + 14 <= right  # the far end of the hole is at most one column outside


def test_cli_reports_and_exits_cleanly(images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["masks", "thin_256", str(images), str(tmp_path / "out"), "-q", "--n-jobs", "2"]) == 0
    assert "5 pairs from 6 images; dropped 1: 1 unreadable" in capsys.readouterr().err
    assert main(["masks", "thin_300", str(images), str(tmp_path / "x"), "-q"]) == 2
    assert "unknown eval mask config 'thin_300'" in capsys.readouterr().err
    assert main(["masks", "thin_256", str(tmp_path / "missing"), str(tmp_path / "x"), "-q"]) == 2
    assert "input image folder not found" in capsys.readouterr().err
