"""`lama masks`: eval mask sets in the official layout, deterministic, parallel, resumable, accounted for."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lama.cli import main
from lama.masks import build_eval_mask_set, eval_set_config
from lama.masks.eval_set import JOURNAL, MANIFEST, _Job, propose_square_crop, read_rgb, resize_short_side
from tests.conftest import REPO

# `lama masks` whose images take 0.2 s each, so that a signal lands mid-run (worker processes inherit the patch).
SLOW_MASKS = (
    "import sys, time\n"
    "from lama.masks.eval_set import _Job\n"
    "original = _Job.__call__\n"
    "def slow(job, source):\n"
    "    time.sleep(0.2)\n"
    "    return original(job, source)\n"
    "_Job.__call__ = slow\n"
    "from lama.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _write_images(folder: Path) -> Path:
    rng = np.random.RandomState(0)
    (folder / "nested").mkdir(parents=True)
    for name, (height, width) in {"wide.png": (300, 420), "nested/tall.jpg": (420, 300), "square.png": (256, 256),
                                  "small.png": (100, 140), "b.jpeg": (260, 270)}.items():
        Image.fromarray((rng.rand(height, width, 3) * 255).astype(np.uint8)).save(folder / name)
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not an image: listed as dropped")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_images(tmp_path_factory.mktemp("images"))


def test_builds_pairs_in_the_official_layout(images: Path, tmp_path: Path) -> None:
    summary = build_eval_mask_set("thick_256", images, tmp_path, progress=False)
    assert (summary.images, summary.pairs) == (6, 5)
    assert sorted(summary.dropped) == ["broken.png", "notes.txt"]
    assert summary.dropped["broken.png"].startswith("unreadable: ")
    assert summary.dropped["notes.txt"] == "not an image file: extension .txt is not one of .jpeg, .jpg, .png"
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


def test_retries_keep_images_whose_first_candidates_are_all_too_large(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(30):
        Image.new("RGB", (256, 256)).save(folder / f"{i:02d}.png")
    summary = build_eval_mask_set("thick_512", folder, tmp_path / "out", progress=False)
    # thick_512 rejects 43 % of its candidates; with 10 attempts of 5 candidates nothing is lost in 30 images.
    assert summary.pairs == 30 and summary.rejected_area > 0 and not summary.dropped


def test_dropped_images_are_listed_with_their_reason(images: Path, tmp_path: Path) -> None:
    strict = dataclasses.replace(eval_set_config("thick_256"), max_tamper_area=1e-6, attempts=2)
    summary = build_eval_mask_set(strict, images, tmp_path / "strict", progress=False)
    assert summary.pairs == 0 and len(summary.dropped) == 7
    assert summary.dropped["wide.png"] == (
        "no acceptable mask: every candidate covered more than 1e-06 of the image (2 attempts)")
    assert "dropped 7: 5 no acceptable mask; 1 not an image file; 1 unreadable" in str(summary)
    small = dataclasses.replace(eval_set_config("thin_256"), handle_small_mode="drop")
    summary = build_eval_mask_set(small, images, tmp_path / "small", progress=False)
    assert summary.dropped["small.png"].startswith("too small: short side under 256 px")
    assert summary.pairs == 4
    recorded = json.loads((tmp_path / "small" / MANIFEST).read_text())["summary"]["dropped"]
    assert set(recorded) == {"small.png", "broken.png", "notes.txt"}


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 300 * 300).reshape(300, 300).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    pixels = np.asarray(read_rgb(tmp_path / "deep.png"))
    assert pixels.shape == (300, 300, 3)
    assert np.abs(pixels[..., 0].astype(int) - np.round(ramp / 257)).max() <= 1
    Image.fromarray((np.arange(256 * 256) % 256).reshape(256, 256).astype(np.uint8), "L").save(tmp_path / "grey.png")
    assert np.asarray(read_rgb(tmp_path / "grey.png")).shape == (256, 256, 3)


def test_same_stem_inputs_are_refused_before_any_work(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "a.jpg"):
        Image.new("RGB", (256, 256)).save(folder / name)
    with pytest.raises(ValueError, match=r"a\.jpg and .*a\.png would write the same outputs \(a_crop000\.png\)"):
        build_eval_mask_set("thin_256", folder, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_an_output_folder_inside_the_input_folder_is_not_read_back(images: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (256, 256), (i, i, i)).save(folder / f"{i}.png")
    first = build_eval_mask_set("thin_256", folder, folder / "masks", progress=False)
    again = build_eval_mask_set("thin_256", folder, folder / "masks", progress=False)
    assert first.images == again.images == 3 and again.pairs == 3


def test_a_journal_cut_mid_line_or_left_by_an_early_kill_resumes(images: Path, tmp_path: Path) -> None:
    complete = tmp_path / "complete"
    build_eval_mask_set("thin_256", images, complete, progress=False)
    out = tmp_path / "out"
    out.mkdir()
    identity = json.loads((complete / MANIFEST).read_text())
    identity.pop("summary")
    (out / JOURNAL).write_text(json.dumps(identity) + "\n" + '{"source": "wi')  # killed while writing a record
    build_eval_mask_set("thin_256", images, out, progress=False)
    assert _files(out) == _files(complete)
    (out / MANIFEST).unlink()
    (out / JOURNAL).write_text("{not json\n")
    with pytest.raises(ValueError, match=f"{JOURNAL}: unreadable journal of an interrupted mask set build; delete it"):
        build_eval_mask_set("thin_256", images, out, progress=False)


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
    assert "5 pairs from 6 images; dropped 2: 1 not an image file; 1 unreadable" in capsys.readouterr().err
    assert main(["masks", "wide_300", str(images), str(tmp_path / "x"), "-q"]) == 2
    assert "unknown eval mask config 'wide_300'" in capsys.readouterr().err
    assert main(["masks", "thin_256", str(tmp_path / "missing"), str(tmp_path / "x"), "-q"]) == 2
    assert "input image folder not found" in capsys.readouterr().err


def test_mask_sets_for_other_sizes_scale_the_official_lengths() -> None:
    from lama.masks.configs import EVAL_CONFIGS, eval_set_config

    assert eval_set_config("thick_512") is EVAL_CONFIGS["thick_512"]
    doubled = eval_set_config("thick_1024")
    official = EVAL_CONFIGS["thick_512"].generator
    assert doubled.out_min_size == 1024
    assert doubled.generator["irregular_kwargs"] == {**official["irregular_kwargs"], "max_width": 500, "max_len": 900}
    assert doubled.generator["box_kwargs"] == {**official["box_kwargs"], "margin": 20, "bbox_min_size": 60,
                                               "bbox_max_size": 600}
    assert doubled.generator["box_proba"] == official["box_proba"]
    thin = eval_set_config("thin_384")  # below 512 the 256 config is the base: 1.5 × its lengths
    assert thin.generator["irregular_kwargs"]["max_width"] == 15 and thin.out_min_size == 384
    for name in ("wide_512", "thick_", "thick_x", "thick_16"):
        with pytest.raises(KeyError):
            eval_set_config(name)


def _grey_images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for index in range(count):
        Image.new("RGB", (256, 256), (index, 2 * index, 3 * index)).save(folder / f"{index:02d}.png")
    return folder


def _journaled(out: Path) -> int:
    journal = out / JOURNAL
    return len(journal.read_text().splitlines()) - 1 if journal.is_file() else 0


def test_sigterm_to_the_process_group_stops_with_one_line_and_a_rerun_completes(tmp_path: Path) -> None:
    images, out = _grey_images(tmp_path / "in", 16), tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-c", SLOW_MASKS, "masks", "thin_256", str(images), str(out),
                                "--n-jobs", "2", "-q"], cwd=REPO, start_new_session=True, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 60
    while _journaled(out) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGTERM)  # as timeout, Slurm and Kubernetes do: the workers get it too
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.splitlines() == [f"lama masks: interrupted by SIGTERM; finished images are journaled in {out}; "
                                "rerun the same command to continue"]
    finished = _journaled(out)
    assert 2 <= finished < 16 and not (out / MANIFEST).exists()
    assert main(["masks", "thin_256", str(images), str(out), "-q"]) == 0
    assert json.loads((out / MANIFEST).read_text())["summary"]["pairs"] == 16
    assert not list(out.rglob("*.tmp"))


def test_temporaries_of_a_killed_build_are_removed_by_the_rerun(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_eval_mask_set("thin_256", images, tmp_path / "complete", progress=False)
    out = tmp_path / "out"
    original = _Job.__call__

    def interrupted_at_square(job: _Job, source: Path) -> object:
        if source.name == "square.png":
            raise KeyboardInterrupt
        return original(job, source)

    monkeypatch.setattr(_Job, "__call__", interrupted_at_square)
    with pytest.raises(KeyboardInterrupt):
        build_eval_mask_set("thin_256", images, out, progress=False)
    monkeypatch.setattr(_Job, "__call__", original)
    leftovers = [out / ".square_crop000.png.k1ll3d00.tmp", out / "nested" / ".tall_crop000_mask000.png.0dd5e7.tmp"]
    for leftover in leftovers:  # what a SIGKILL in the middle of a write leaves
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half an image")
    build_eval_mask_set("thin_256", images, out, progress=False)
    assert not any(leftover.exists() for leftover in leftovers)
    assert _files(out) == _files(tmp_path / "complete")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_honour_the_umask(umask: int, mode: int, images: Path, tmp_path: Path) -> None:
    previous = os.umask(umask)
    try:
        build_eval_mask_set("thin_256", images, tmp_path / "out", progress=False)
    finally:
        os.umask(previous)
    written = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert len(written) == 11  # five pairs and maskset.json
    assert {oct(stat.S_IMODE(path.stat().st_mode)) for path in written} == {oct(mode)}


def test_broken_and_looping_links_and_other_files_are_listed_as_dropped(tmp_path: Path) -> None:
    folder = _grey_images(tmp_path / "in", 2)
    (folder / "gone.png").symlink_to(folder / "deleted.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (folder / "readme.txt").write_text("about these images")
    summary = build_eval_mask_set("thin_256", folder, tmp_path / "out", progress=False)
    assert summary.pairs == 2
    assert summary.dropped == {
        "gone.png": f"broken link: its target {folder / 'deleted.png'} does not exist",
        "loop.png": "link loop: following it never reaches a file",
        "readme.txt": "not an image file: extension .txt is not one of .jpeg, .jpg, .png",
    }
    recorded = json.loads((tmp_path / "out" / MANIFEST).read_text())["summary"]["dropped"]
    assert recorded == summary.dropped
