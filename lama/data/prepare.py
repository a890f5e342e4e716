"""``prepare``: a source of images → WebDataset train shards + fixed-size val/test image folders.

Output layout::

    OUTDIR/dataset.json           what was built from what: params, inputs digest, shards, counts, photo credits
    OUTDIR/skipped.tsv            every file not used (split, origin, reason): images turned away, listed-but-absent
                                  files, other files, broken links
    OUTDIR/converted.tsv          every image converted to RGB (split, origin, stored mode)
    OUTDIR/train/train-000000.tar samples KEY.jpg (or .png/.webp) + KEY.json {key, source, size, original_size, label}
    OUTDIR/val/512/NAME.png  OUTDIR/val/256/NAME.png  OUTDIR/test/512/...  the same images at each eval size

Work is cut into units (one shard, or one chunk of eval images) whose content depends only on the inputs and the
params, so units run in any order on any number of processes and a rerun writes the same bytes. Each unit is
written under a temporary name and renamed when complete, and journaled, so a killed run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import PIL
import PIL.features
import webdataset as wds
from PIL import Image

from lama.data import embedded, places365
from lama.data.prepare_config import SOURCES as SOURCES  # re-exported for those who import it from here
from lama.data.prepare_config import PrepareConfig
from lama.data.sources import SPLITS, SourceImage, SourceSplits, folder_splits, shard_order
from lama.files import atomic_write, remove_temporaries
from lama.imageio.images import IMAGE_FORMATS, UnusableImageError, center_square, decode_rgb, encode, resize_short_side
from lama.journal import Journal
from lama.progress import progress_bar
from lama.signals import worker_initializer

log = logging.getLogger(__name__)

MANIFEST = "dataset.json"
JOURNAL = ".prepare.journal.jsonl"
SHARD_PATTERN = "train-{index:06d}.tar"
EVAL_CHUNK = 64
TAR_MTIME = 0  # a fixed member time, so that shards are byte-identical across runs
FORMAT_VERSION = 1


@dataclass
class PrepareSummary:
    train: int = 0
    shards: int = 0
    val: int = 0
    test: int = 0
    skipped: int = 0
    converted: int = 0

    def __str__(self) -> str:
        return (f"{self.train} train images in {self.shards} shards, {self.val} val, {self.test} test; "
                f"{self.skipped} skipped, {self.converted} converted to RGB")


@dataclass(frozen=True)
class Unit:
    """One shard or one chunk of eval images: the smallest piece of work that is written and journaled."""

    name: str  # train/train-000000.tar or val/0003
    split: str
    images: tuple[SourceImage, ...]
    config: PrepareConfig
    outdir: Path


def list_source(config: PrepareConfig, progress: bool = True) -> SourceSplits:
    """The images of the configured source, split and ordered; nothing is decoded yet."""
    counts = {"train": config.train_count, "val": config.val_count, "test": config.test_count}
    if config.source == "embedded":
        return embedded.embedded_splits(config.seed, counts)
    if config.source == "places365":
        return places365.places365_splits(Path(config.root), config.seed, counts, progress)
    return folder_splits(Path(config.root), config.seed, counts, config.extensions)


def prepare(config: PrepareConfig, outdir: Path, n_jobs: int = 1, progress: bool = True) -> PrepareSummary:
    """Build the dataset into ``outdir``; resumes an interrupted build, refuses a folder holding another one."""
    if n_jobs < 1:
        raise ValueError(f"n_jobs={n_jobs}: expected >= 1")
    outdir = Path(outdir)
    splits = list_source(config, progress)
    identity = {"format_version": FORMAT_VERSION, "config": asdict(config), "inputs": _inputs_digest(splits),
                "encoders": encoder_versions()}
    previous = _check_outdir(outdir, identity)
    if previous is not None and all((outdir / relative).is_file() for relative in previous.get("files", [])):
        log.info("%s: already prepared with these inputs and params", outdir)
        return PrepareSummary(**previous["summary"])
    remove_temporaries(outdir)
    units = _units(splits, config, outdir)
    journal = Journal(outdir / JOURNAL, identity, "dataset preparation")
    done = {record["unit"]: record for record in journal.records() if _outputs_exist(outdir, record)}
    todo = [unit for unit in units if unit.name not in done]
    total = sum(len(unit.images) for unit in units)
    initial = sum(len(unit.images) for unit in units if unit.name in done)
    bar = progress_bar(total=total, initial=initial, desc=f"prepare {config.source}", unit="img",
                       disable=not progress)
    with bar, journal:
        pool = ProcessPoolExecutor(max_workers=n_jobs, initializer=worker_initializer()) if n_jobs > 1 else None
        results: Iterable[dict] = pool.map(run_unit, todo) if pool else (run_unit(unit, bar.update) for unit in todo)
        try:
            for unit, record in zip(todo, results, strict=True):
                journal.append(record)
                done[unit.name] = record
                if pool is not None:
                    bar.update(len(unit.images))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    summary = _write_manifest(outdir, identity, splits, [done[unit.name] for unit in units])
    journal.remove()
    return summary


def run_unit(unit: Unit, tick: Callable[[int], object] | None = None) -> dict:
    """Write one unit and return its journal record (written files, skipped and converted images)."""
    record: dict = {"unit": unit.name, "split": unit.split, "files": [], "skipped": [], "converted": []}
    if unit.split == "train":
        _write_shard(unit, record, tick)
    else:
        _write_eval_chunk(unit, record, tick)
    return record


def _skip(record: dict, image: SourceImage, reason: str) -> None:
    record["skipped"].append([image.origin, reason])


def _cannot_encode(error: Exception) -> str:
    return f"cannot be encoded: {str(error).splitlines()[0]}"


def _decoded(unit: Unit, record: dict, tick: Callable[[int], object] | None
             ) -> Iterator[tuple[SourceImage, Image.Image, bytes | None, bool]]:
    """(image, RGB pixels, stored bytes, stored bytes are pristine) for each usable image of the unit; the others
    are recorded as skipped, conversions as converted, and every image ticks the progress bar.
    """
    for image in unit.images:
        try:
            data = image.ref.read()
            decoded = None if isinstance(data, Image.Image) else decode_rgb(data, unit.config.min_size)
        except (UnusableImageError, OSError) as error:
            _skip(record, image, str(error))
            continue
        finally:
            if tick is not None:
                tick(1)
        if decoded is None:  # a crop of a packaged photo: already RGB pixels
            yield image, data, None, False
            continue
        if decoded.converted_from:
            record["converted"].append([image.origin, decoded.converted_from])
        keep = decoded.pristine and decoded.format == IMAGE_FORMATS[unit.config.image_format]
        yield image, decoded.image, data, keep


class _HashingWriter:
    """Forwards writes and hashes them, so a shard's checksum costs no second read."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.handle.write(data)


def _write_shard(unit: Unit, record: dict, tick: Callable[[int], object] | None) -> None:
    config = unit.config
    path = unit.outdir / unit.name
    count = 0

    def write(handle: BinaryIO) -> None:
        nonlocal count
        stream = _HashingWriter(handle)
        with wds.TarWriter(stream, encoder=False, mtime=TAR_MTIME, format="PAX_FORMAT") as tar:
            for image, pixels, data, keep in _decoded(unit, record, tick):
                try:
                    resized = resize_short_side(pixels, config.train_size)
                    payload = data if keep and resized is pixels else encode(resized, config.image_format,
                                                                             config.quality)
                except (OSError, ValueError) as error:
                    _skip(record, image, _cannot_encode(error))
                    continue
                meta = {"key": image.key, "source": config.source, "size": [resized.height, resized.width],
                        "original_size": [pixels.height, pixels.width]}
                if image.label is not None:
                    meta["label"] = image.label
                tar.write({"__key__": image.key, config.image_format: payload,
                           "json": json.dumps(meta, sort_keys=True).encode()})
                count += 1
        record["shard"] = {"name": path.name, "count": count, "bytes": stream.size, "sha256": stream.sha256.hexdigest()}

    atomic_write(path, write, durable=True)  # synced before the journal says it is done
    record["files"].append(unit.name)


def eval_name(key: str) -> str:
    """Eval folders are flat (the mask-set builder names outputs by stem): ``a/b`` becomes ``a__b``."""
    return key.replace("/", "__")


def _write_eval_chunk(unit: Unit, record: dict, tick: Callable[[int], object] | None) -> None:
    for image, pixels, _, _ in _decoded(unit, record, tick):
        square = center_square(pixels)
        encoded = {}
        try:
            for size in unit.config.eval_sizes:
                sized = square if square.size == (size, size) else square.resize((size, size), Image.BICUBIC)
                encoded[f"{unit.split}/{size}/{eval_name(image.key)}.png"] = encode(sized, "png")
        except (OSError, ValueError) as error:
            _skip(record, image, _cannot_encode(error))
            continue
        for relative, data in encoded.items():
            atomic_write(unit.outdir / relative, lambda handle, data=data: handle.write(data), durable=True)
            record["files"].append(relative)


def _units(splits: SourceSplits, config: PrepareConfig, outdir: Path) -> list[Unit]:
    units = []
    train = shard_order(splits.train, config.seed)
    for index, start in enumerate(range(0, len(train), config.shard_size)):
        chunk = tuple(train[start : start + config.shard_size])
        units.append(Unit(f"train/{SHARD_PATTERN.format(index=index)}", "train", chunk, config, outdir))
    for split in ("val", "test"):
        images = sorted(splits.split(split), key=lambda image: image.key)
        names = [eval_name(image.key) for image in images]
        if len(set(names)) != len(names):
            raise ValueError(f"{split}: two images flatten to the same eval file name; rename one")
        for index, start in enumerate(range(0, len(images), EVAL_CHUNK)):
            chunk = tuple(images[start : start + EVAL_CHUNK])
            units.append(Unit(f"{split}/{index:04d}", split, chunk, config, outdir))
    return units


def encoder_versions() -> dict[str, str | None]:
    """The output bytes depend on Pillow's codecs: a build never resumes or counts as current across versions."""
    return {"pillow": PIL.__version__, **{codec: PIL.features.version(codec) for codec in ("jpg", "zlib", "webp")}}


def _inputs_digest(splits: SourceSplits) -> str:
    """Changes when any input changes its key, origin, size on disk or label, or a package photo its version."""
    digest = hashlib.sha256(json.dumps(splits.notes, sort_keys=True).encode())
    for split in SPLITS:
        for image in sorted(splits.split(split), key=lambda image: image.key):
            size = getattr(image.ref, "size", None)
            if size is None and hasattr(image.ref, "path"):
                size = Path(image.ref.path).stat().st_size
            digest.update(json.dumps([split, image.key, image.origin, size, image.label]).encode())
    return digest.hexdigest()


def _outputs_exist(outdir: Path, record: dict) -> bool:
    """A journaled unit counts as done only if its files are there, and its shard has the recorded size."""
    if not all((outdir / relative).is_file() for relative in record.get("files", [])):
        return False
    shard = record.get("shard")
    return shard is None or (outdir / record["files"][0]).stat().st_size == shard["bytes"]


def _read_manifest(path: Path) -> dict:
    try:
        loaded = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}); delete it to start over") from None
    return loaded if isinstance(loaded, dict) else {}


def _check_outdir(outdir: Path, identity: dict) -> dict | None:
    """The manifest of a dataset with this identity already in ``outdir``, if any; refuses to mix two datasets,
    or to write into a folder that holds something else.
    """
    manifest = outdir / MANIFEST
    if manifest.is_file():
        previous = _read_manifest(manifest)
        differing = [key for key in identity if previous.get(key) != identity[key]]
        if differing:
            config = previous.get("config") if isinstance(previous.get("config"), dict) else {}
            keys = [key for key in identity["config"] if config.get(key) != identity["config"][key]]
            what = ", ".join(f"config.{key}" for key in keys) if "config" in differing else ", ".join(differing)
            raise ValueError(f"{outdir}: holds a dataset prepared from other inputs or params ({what} differ); "
                             "use an empty folder or delete it")
        return previous
    if outdir.is_dir() and not (outdir / JOURNAL).is_file() and any(outdir.iterdir()):
        raise ValueError(f"{outdir}: not empty and not a prepared dataset; use an empty folder")
    return None


def _write_manifest(outdir: Path, identity: dict, splits: SourceSplits, records: list[dict]) -> PrepareSummary:
    skipped = [[split, origin, reason] for split, origin, reason in splits.missing]
    converted = []
    for record in records:
        skipped += [[record["split"], origin, reason] for origin, reason in record["skipped"]]
        converted += [[record["split"], origin, mode] for origin, mode in record["converted"]]
    shards = [record["shard"] for record in records if "shard" in record]
    files = sorted(relative for record in records for relative in record["files"])
    config = identity["config"]
    eval_counts = {split: sum(1 for relative in files if relative.startswith(f"{split}/{config['eval_sizes'][0]}/"))
                   for split in ("val", "test")}
    summary = PrepareSummary(train=sum(shard["count"] for shard in shards), shards=len(shards),
                             val=eval_counts["val"], test=eval_counts["test"], skipped=len(skipped),
                             converted=len(converted))
    manifest = {
        **identity,
        "summary": asdict(summary),
        "shards": shards,
        "eval": {split: {str(size): f"{split}/{size}" for size in config["eval_sizes"]} for split in ("val", "test")},
        "notes": splits.notes,
        "files": files,
    }
    _write_tsv(outdir / "skipped.tsv", ["split", "origin", "reason"], sorted(skipped))
    _write_tsv(outdir / "converted.tsv", ["split", "origin", "stored_mode"], sorted(converted))
    atomic_write(outdir / MANIFEST, lambda handle: handle.write(json.dumps(manifest, indent=1).encode() + b"\n"))
    if skipped:
        log.warning("%s: %d files skipped, listed in %s", outdir, len(skipped), outdir / "skipped.tsv")
    return summary


def _write_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    lines = ["\t".join(header)] + ["\t".join(str(cell).replace("\t", " ") for cell in row) for row in rows]
    atomic_write(path, lambda handle: handle.write(("\n".join(lines) + "\n").encode()))
