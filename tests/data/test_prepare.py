"""`lama prepare`: sources → WebDataset shards + fixed eval folders; reproducible, accounted for, resumable."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import webdataset as wds
from PIL import Image

from lama.cli import main
from lama.data import prepare as prepare_module
from lama.data.embedded import PHOTOS
from lama.data.prepare import JOURNAL, PrepareConfig, prepare
from lama.data.sources import image_key
from tests.conftest import REPO


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _smooth(height: int, width: int, seed: int) -> np.ndarray:
    """A photo-like image (smooth gradients and blobs), so that JPEG sizes are realistic."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.sin(rng.uniform(2, 9) * x + rng.uniform(0, 6)) * np.cos(rng.uniform(2, 9) * y) for _ in range(3)]
    return ((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)


def _jpeg(pixels: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


def _shard_samples(path: Path) -> list[dict]:
    return list(wds.WebDataset(str(path), shardshuffle=False, empty_check=False))


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good images of several kinds plus every kind of bad file the issue names."""
    root = tmp_path_factory.mktemp("messy")
    (root / "sub").mkdir()
    for index in range(6):
        (root / f"good{index}.jpg").write_bytes(_jpeg(_smooth(300 + 10 * index, 400, index)))
    (root / "sub" / "exact.jpg").write_bytes(_jpeg(_smooth(256, 320, 9)))  # short side = size: kept byte for byte
    (root / "sub" / "photo.v2.png").write_bytes(b"")  # replaced below; the dot in the name must not split the key
    Image.fromarray(_smooth(280, 300, 10)).save(root / "sub" / "photo.v2.png")
    Image.fromarray(_smooth(300, 300, 11)[..., 0]).save(root / "grey.png")
    Image.fromarray(np.dstack([_smooth(300, 300, 12), np.full((300, 300), 128, np.uint8)])).save(root / "rgba.png")
    Image.fromarray(_smooth(300, 300, 13)).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(_smooth(300, 300, 14)[..., 0].astype(np.uint16) * 257).save(root / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    (root / "rotated.jpg").write_bytes(_jpeg(_smooth(300, 400, 15), exif=exif.tobytes()))
    (root / "truncated.jpg").write_bytes(_jpeg(_smooth(300, 400, 16))[:3000])
    (root / "small.jpg").write_bytes(_jpeg(_smooth(100, 400, 17)))
    (root / "text.png").write_bytes(b"this is not an image")
    (root / "notes.txt").write_text("not an image file: listed as skipped")
    return root


def _folder_config(root: Path, **overrides: object) -> PrepareConfig:
    params = {"source": "folder", "root": str(root), "size": 256, "shard_size": 4, "val_count": 2, "test_count": 2,
              "eval_sizes": [128, 64]}
    return PrepareConfig(**{**params, **overrides})


def test_embedded_set_is_byte_identical_across_runs_and_process_counts(tmp_path: Path) -> None:
    config = PrepareConfig(shard_size=64)
    first = prepare(config, tmp_path / "a", progress=False)
    prepare(config, tmp_path / "b", n_jobs=2, progress=False)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert (first.train, first.shards, first.val, first.test, first.skipped) == (240, 4, 8, 16, 0)
    manifest = json.loads((tmp_path / "a" / "dataset.json").read_text())
    credits = {photo["name"]: photo for photo in manifest["notes"]["photos"]}
    assert set(credits) == {photo.name for photo in PHOTOS} and len(credits) == 9
    assert credits["china"]["licence"] == "CC BY 2.0" and "attribution required" in credits["china"]["credit"]
    assert all(photo["licence"] and photo["package"].count("==") == 1 for photo in credits.values())
    # Evaluation never sees a training photo.
    train_keys = {sample["__key__"] for shard in sorted((tmp_path / "a" / "train").glob("*.tar"))
                  for sample in _shard_samples(shard)}
    val = {path.stem for path in (tmp_path / "a" / "val" / "512").iterdir()}
    test = {path.stem for path in (tmp_path / "a" / "test" / "256").iterdir()}
    photo_of = {photo.name: photo.split for photo in PHOTOS}
    for split, keys in (("train", train_keys), ("val", val), ("test", test)):
        assert {photo_of[key.rsplit("_", 1)[0]] for key in keys} == {split}
    assert len(train_keys) == 240


def test_eval_sizes_are_the_same_images(tmp_path: Path) -> None:
    prepare(PrepareConfig(train_count=6, shard_size=64), tmp_path, progress=False)
    for large in sorted((tmp_path / "test" / "512").iterdir())[:4]:
        big = Image.open(large)
        small = np.asarray(Image.open(tmp_path / "test" / "256" / large.name), dtype=np.float64)
        assert big.size == (512, 512) and small.shape == (256, 256, 3)
        halved = np.asarray(big.resize((256, 256), Image.BICUBIC), dtype=np.float64)
        assert np.abs(halved - small).mean() < 2.0  # one resize from the source vs two: the same picture


def test_folder_source_converts_skips_and_lists_every_problem(messy_folder: Path, tmp_path: Path) -> None:
    summary = prepare(_folder_config(messy_folder), tmp_path / "a", progress=False)
    prepare(_folder_config(messy_folder), tmp_path / "b", n_jobs=2, progress=False)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    skipped = [line.split("\t") for line in (tmp_path / "a" / "skipped.tsv").read_text().splitlines()[1:]]
    reasons = {Path(origin).name: reason for _, origin, reason in skipped}
    assert set(reasons) == {"truncated.jpg", "small.jpg", "text.png", "notes.txt"}
    assert reasons["text.png"] == "not an image"
    assert reasons["truncated.jpg"].startswith("corrupt or truncated")
    assert reasons["small.jpg"] == "too small: 400x100, short side below 256"
    converted = [line.split("\t") for line in (tmp_path / "a" / "converted.tsv").read_text().splitlines()[1:]]
    assert {Path(origin).name: mode for _, origin, mode in converted} == {
        "grey.png": "L", "rgba.png": "RGBA", "cmyk.jpg": "CMYK", "deep.png": "I;16"}
    assert reasons["notes.txt"].startswith("not an image file: extension .txt is not one of .bmp, .jpeg, .jpg")
    assert summary.skipped == 4 and summary.converted == 4
    assert summary.train + summary.val + summary.test + summary.skipped == 17  # every file accounted for


def test_shard_samples_carry_key_source_and_size(messy_folder: Path, tmp_path: Path) -> None:
    prepare(_folder_config(messy_folder, val_count=0, test_count=0), tmp_path, progress=False)
    manifest = json.loads((tmp_path / "dataset.json").read_text())
    samples = {}
    for shard in manifest["shards"]:
        found = _shard_samples(tmp_path / "train" / shard["name"])
        assert len(found) == shard["count"] <= 4
        samples.update({sample["__key__"]: sample for sample in found})
    assert "sub/photo_v2" in samples  # a dot in a file name does not split the sample
    for key, sample in samples.items():
        meta = json.loads(sample["json"])
        image = Image.open(io.BytesIO(sample["jpg"]))
        assert meta["key"] == key and meta["source"] == "folder"
        assert meta["size"] == [image.height, image.width] and min(image.size) == 256
    assert samples["sub/exact"]["jpg"] == (messy_folder / "sub" / "exact.jpg").read_bytes()
    # EXIF orientation applied: stored 300 high and 400 wide, displayed 400 high.
    assert json.loads(samples["rotated"]["json"])["original_size"] == [400, 300]
    deep = np.asarray(Image.open(io.BytesIO(samples["deep"]["jpg"])))
    assert 60 < deep.mean() < 200 and deep.std() > 20  # 16-bit scaled down, not clipped to white


def test_places365_folders_and_tar_archives_give_the_same_dataset(tmp_path: Path) -> None:
    tree = tmp_path / "places"
    files = {f"data_large/{cat[0]}/{cat}/{index:08d}.jpg": (cat, index) for cat in ("airfield", "bakery")
             for index in range(1, 7)}
    files |= {f"val_large/Places365_val_{index:08d}.jpg": ("val", index) for index in range(1, 9)}
    files |= {f"test_large/Places365_test_{index:08d}.jpg": ("test", index) for index in range(1, 7)}
    for number, relative in enumerate(files):
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg(_smooth(512, 640, number)))
    train_list = [f"/{cat[0]}/{cat}/{index:08d}.jpg {label}" for label, cat in enumerate(("airfield", "bakery"))
                  for index in range(1, 6)] + ["/c/canyon/00000001.jpg 2"]  # listed but absent
    (tree / "places365_train_standard.txt").write_text("\n".join(train_list) + "\n")
    (tree / "places365_val.txt").write_text("".join(f"Places365_val_{i:08d}.jpg {i % 3}\n" for i in range(1, 9)))
    archives = tmp_path / "archives"
    archives.mkdir()
    for folder, archive in (("data_large", "train_large_places365standard.tar"), ("val_large", "val_large.tar"),
                            ("test_large", "test_large.tar")):
        with tarfile.open(archives / archive, "w") as tar:
            tar.add(tree / folder, arcname=folder)
    (archives / "filelist_places365-standard").mkdir()
    for listing in ("places365_train_standard.txt", "places365_val.txt"):
        (archives / "filelist_places365-standard" / listing).write_text((tree / listing).read_text())
    config = {"source": "places365", "val_count": 3, "test_count": 4, "shard_size": 4, "eval_sizes": [256, 128],
              "quality": 90}
    from_folders = prepare(PrepareConfig(root=str(tree), **config), tmp_path / "a", progress=False)
    from_archives = prepare(PrepareConfig(root=str(archives), **config), tmp_path / "b", n_jobs=2, progress=False)
    assert from_folders == from_archives
    assert (from_folders.train, from_folders.val, from_folders.test, from_folders.skipped) == (10, 3, 4, 1)
    one, two = _files(tmp_path / "a"), _files(tmp_path / "b")
    for name in one:
        if name.startswith(("train/", "val/", "test/")):
            assert one[name] == two[name], name
    assert [name for name in one if name.startswith("test/256/")] == \
        [name for name in two if name.startswith("test/256/")]
    assert all("Places365_val_" in name for name in one if name.startswith("test/"))
    assert all("Places365_test_" in name for name in one if name.startswith("val/"))
    labels = {}
    for shard in sorted((tmp_path / "b" / "train").glob("*.tar")):
        for sample in _shard_samples(shard):
            labels[sample["__key__"]] = json.loads(sample["json"])["label"]
            assert sample["jpg"] == (tree / "data_large" / f"{sample['__key__']}.jpg").read_bytes()  # 512: as stored
    assert labels == {f"{cat[0]}/{cat}/{index:08d}": label for label, cat in enumerate(("airfield", "bakery"))
                      for index in range(1, 6)}  # the unlisted 6th image of each class is left out
    skipped = (tmp_path / "b" / "skipped.tsv").read_text()
    assert "listed file /c/canyon/00000001.jpg not found" in skipped


def test_an_interrupted_run_leaves_only_complete_shards_and_resumes_to_the_same_bytes(
        messy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _folder_config(messy_folder, shard_size=2)
    prepare(config, tmp_path / "reference", progress=False)
    real_run_unit = prepare_module.run_unit
    calls = []

    def interrupted(unit: prepare_module.Unit, tick: object = None) -> dict:
        calls.append(unit.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_unit(unit, tick)

    monkeypatch.setattr(prepare_module, "run_unit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(config, tmp_path / "out", progress=False)
    written = sorted(path.name for path in (tmp_path / "out" / "train").iterdir())
    assert written == ["train-000000.tar", "train-000001.tar"]  # no temporary or partial third shard
    assert len((tmp_path / "out" / JOURNAL).read_text().splitlines()) == 3  # identity + two units
    (tmp_path / "out" / "train" / ".train-000002.tar.abc.tmp").write_bytes(b"left by a SIGKILL")
    monkeypatch.setattr(prepare_module, "run_unit", real_run_unit)
    prepare(config, tmp_path / "out", progress=False)
    assert _files(tmp_path / "out") == _files(tmp_path / "reference")


@pytest.mark.slow
def test_a_sigkilled_run_resumes_to_the_same_bytes(messy_folder: Path, tmp_path: Path) -> None:
    """A real SIGKILL: a child slowed down per unit is killed once it has journaled two units."""
    config = _folder_config(messy_folder, shard_size=1)
    prepare(config, tmp_path / "reference", progress=False)
    out = tmp_path / "out"
    child = (
        "import time, sys\n"
        "from lama.data import prepare as module\n"
        "real = module.run_unit\n"
        "def slow(unit, tick=None):\n"
        "    time.sleep(0.3)\n"
        "    return real(unit, tick)\n"
        "module.run_unit = slow\n"
        f"module.prepare(module.PrepareConfig(**{json.dumps(config.__dict__)!s}), {str(out)!r}, progress=False)\n"
    ).replace("null", "None")
    process = subprocess.Popen([sys.executable, "-c", child])
    journal = out / JOURNAL
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not journal.is_file() or len(journal.read_text().splitlines()) < 3):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "dataset.json").exists()
    reference = _files(tmp_path / "reference")
    for name, data in _files(out).items():
        if name.startswith("train/") and name.endswith(".tar"):
            assert data == reference[name]  # whatever looks like a shard is complete
    assert main(["prepare", "folder", str(out), "--root", str(messy_folder), "--size", "256", "--shard-size", "1",
                 "--val-count", "2", "--test-count", "2", "--eval-sizes", "128,64", "-q"]) == 0
    assert _files(out) == reference


def test_a_folder_holding_another_dataset_is_refused(messy_folder: Path, tmp_path: Path) -> None:
    prepare(_folder_config(messy_folder), tmp_path / "out", progress=False)
    before = _files(tmp_path / "out")
    with pytest.raises(ValueError, match=r"other inputs or params \(config.quality differ\)"):
        prepare(_folder_config(messy_folder, quality=80), tmp_path / "out", progress=False)
    assert _files(tmp_path / "out") == before
    assert prepare(_folder_config(messy_folder), tmp_path / "out", progress=False).train > 0  # up to date
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and not a prepared dataset"):
        prepare(_folder_config(messy_folder), tmp_path / "other", progress=False)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"source": "imagenet"}, "source='imagenet': expected one of embedded, places365, folder"),
    ({"source": "folder"}, "root: the folder source needs the folder that holds its images"),
    ({"image_format": "gif"}, "image_format='gif': expected one of jpg, png, webp"),
    ({"shard_size": 0}, "shard_size=0: expected a positive integer"),
    ({"val_count": -1}, "val_count=-1: expected a non-negative integer or null"),
    ({"quality": 101}, "quality=101: expected 1..100"),
    ({"eval_sizes": []}, r"eval_sizes=\[\]: expected a list of sizes"),
])
def test_bad_params_fail_with_the_key_named(overrides: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        prepare(PrepareConfig(**overrides), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_more_eval_images_than_the_folder_has_is_an_error(messy_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"test_count=50 but only \d+ images are left for test"):
        prepare(_folder_config(messy_folder, test_count=50), tmp_path / "out", progress=False)


def test_keys_are_webdataset_safe() -> None:
    assert image_key("a/b.c.jpg") == "a/b_c"
    assert image_key("dir.v1/x.PNG") == "dir.v1/x"
    assert image_key("caf\u0065\u0301.jpg") == "caf\u00e9"  # NFC


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "embedded", str(tmp_path / "out"), "--train-count", "12", "--shard-size", "5",
                 "--eval-sizes", "64", "-q"]) == 0
    assert "12 train images in 3 shards, 8 val, 16 test; 0 skipped" in capsys.readouterr().err
    assert main(["prepare", "folder", str(tmp_path / "x"), "-q"]) == 2
    assert "root: the folder source needs the folder" in capsys.readouterr().err


def test_a_truncated_places_archive_is_named(tmp_path: Path) -> None:
    (tmp_path / "val_large").mkdir()
    for index in range(3):
        (tmp_path / "val_large" / f"Places365_val_{index:08d}.jpg").write_bytes(_jpeg(_smooth(300, 300, index)))
    archives = tmp_path / "archives"
    archives.mkdir()
    with tarfile.open(archives / "val_large.tar", "w") as tar:
        tar.add(tmp_path / "val_large", arcname="val_large")
    whole = (archives / "val_large.tar").read_bytes()
    (archives / "val_large.tar").write_bytes(whole[: len(whole) // 2])  # an interrupted download
    (archives / "train").mkdir()
    (archives / "train" / "x.jpg").write_bytes(_jpeg(_smooth(300, 300, 9)))
    with pytest.raises(ValueError, match=r"val_large\.tar: not a readable uncompressed tar archive .*download"):
        prepare(PrepareConfig(source="places365", root=str(archives)), tmp_path / "out", progress=False)


def test_images_outside_the_split_folders_are_reported(tmp_path: Path) -> None:
    for split, count in (("train", 3), ("test", 2)):
        (tmp_path / "src" / split).mkdir(parents=True)
        for index in range(count):
            (tmp_path / "src" / split / f"{split}{index}.jpg").write_bytes(_jpeg(_smooth(300, 300, index)))
    (tmp_path / "src" / "stray.jpg").write_bytes(_jpeg(_smooth(300, 300, 7)))
    summary = prepare(_folder_config(tmp_path / "src", val_count=None, test_count=None), tmp_path / "out",
                      progress=False)
    assert (summary.train, summary.val, summary.test, summary.skipped) == (3, 0, 2, 1)
    assert "stray.jpg\toutside train/, val/ and test/" in (tmp_path / "out" / "skipped.tsv").read_text()


def test_a_sigkilled_parallel_run_leaves_no_worker_running(messy_folder: Path, tmp_path: Path) -> None:
    """Pool workers die with their parent, rather than wait on its task queue for ever."""
    config = _folder_config(messy_folder, shard_size=1)
    out = tmp_path / "out"
    child = (
        "import time\n"
        "from lama.data import prepare as module\n"
        "real = module.run_unit\n"
        "def slow(unit, tick=None):\n"
        "    time.sleep(0.5)\n"
        "    return real(unit, tick)\n"
        "module.run_unit = slow\n"
        f"module.prepare(module.PrepareConfig(**{json.dumps(config.__dict__)!s}), {str(out)!r}, n_jobs=2, "
        "progress=False)\n"
    ).replace("null", "None")
    process = subprocess.Popen([sys.executable, "-c", child], cwd=REPO, start_new_session=True)
    journal = out / JOURNAL
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not journal.is_file() or len(journal.read_text().splitlines()) < 2):
        time.sleep(0.02)
    workers = psutil.Process(process.pid).children()
    assert len(workers) == 2
    process.kill()
    process.wait()
    _, alive = psutil.wait_procs(workers, timeout=5)
    for worker in alive:
        worker.kill()
    assert not alive, f"workers {[worker.pid for worker in alive]} outlived their parent"


def test_skipped_lists_broken_and_looping_links_and_files_that_are_not_images(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "train").mkdir(parents=True)
    (source / "test").mkdir()
    for split, count in (("train", 3), ("test", 1)):
        for index in range(count):
            (source / split / f"{index}.jpg").write_bytes(_jpeg(_smooth(300, 300, index)))
    (source / "train" / "gone.jpg").symlink_to(source / "train" / "deleted.jpg")
    (source / "train" / "loop.jpg").symlink_to(source / "train" / "loop.jpg")
    (source / "test" / "labels.csv").write_text("0,sky\n")
    (source / "LICENSE").write_text("CC-BY")
    (source / "more").symlink_to(tmp_path, target_is_directory=True)
    summary = prepare(_folder_config(source, val_count=None, test_count=None), tmp_path / "out", progress=False)
    assert (summary.train, summary.test, summary.skipped) == (3, 1, 5)
    rows = [line.split("\t") for line in (tmp_path / "out" / "skipped.tsv").read_text().splitlines()[1:]]
    extensions = ".bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp"
    assert sorted(rows) == sorted([
        ["train", str(source / "train" / "gone.jpg"),
         f"broken link: its target {source / 'train' / 'deleted.jpg'} does not exist"],
        ["train", str(source / "train" / "loop.jpg"), "link loop: following it never reaches a file"],
        ["test", str(source / "test" / "labels.csv"), f"not an image file: extension .csv is not one of {extensions}"],
        ["-", str(source / "LICENSE"), f"not an image file: extension (none) is not one of {extensions}"],
        ["-", str(source / "more"), "link to a folder: not followed"],
    ])
