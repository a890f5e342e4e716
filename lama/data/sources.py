"""Where dataset images come from: files, members of tar archives, crops of packaged photos.

A source is listed as :class:`SourceImage` records split into train / val / test. Each record carries a stable key
(the image id every random choice derives from), a human-readable origin for the skip lists, and a small picklable
reference that worker processes read on their own.
"""

from __future__ import annotations

import hashlib
import tarfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from PIL import Image

from lama.imageio.listing import IMAGE_EXTENSIONS, list_files
from lama.progress import progress_bar

SPLITS = ("train", "val", "test")


class ImageRef(Protocol):
    def read(self) -> bytes | Image.Image: ...


@dataclass(frozen=True)
class FileRef:
    """An image file on disk."""

    path: str

    def read(self) -> bytes:
        return Path(self.path).read_bytes()


@dataclass(frozen=True)
class TarMemberRef:
    """A member of an uncompressed tar archive, read by offset so that no worker has to index the archive."""

    archive: str
    offset: int
    size: int

    def read(self) -> bytes:
        with open(self.archive, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.size)
        if len(data) != self.size:
            raise OSError(f"archive ends {self.size - len(data)} bytes into the member")
        return data


@dataclass(frozen=True)
class SourceImage:
    key: str
    origin: str
    ref: ImageRef
    label: int | None = None


@dataclass
class SourceSplits:
    """The images of each split; in ``missing`` every file that is not used (named by a list but absent, not an
    image file, a broken link, ...) with its reason; notes for the dataset metadata."""

    train: list[SourceImage] = field(default_factory=list)
    val: list[SourceImage] = field(default_factory=list)
    test: list[SourceImage] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # split ("-": none), origin, reason
    notes: dict = field(default_factory=dict)

    def split(self, name: str) -> list[SourceImage]:
        return getattr(self, name)


def image_key(relative: str) -> str:
    """A WebDataset-safe key from a relative path: POSIX, NFC, no extension, no dot in the file name.

    WebDataset groups tar members by the name up to the first dot of the file name, so dots there become ``_``.
    """
    path = PurePosixPath(unicodedata.normalize("NFC", relative.replace("\\", "/")))
    name = path.name[: len(path.name) - len(path.suffix)] if path.suffix else path.name
    return (path.parent / name.replace(".", "_")).as_posix()


def stable_rank(keys: Iterable[str], seed: int, purpose: str) -> list[str]:
    """Keys in a seeded order that does not depend on listing order, platform or library versions."""
    def digest(key: str) -> str:
        return hashlib.sha256(f"{seed}/{purpose}/{key}".encode()).hexdigest()

    return sorted(keys, key=lambda key: (digest(key), key))


def refuse_duplicate_keys(images: Iterable[SourceImage]) -> None:
    """Two files that map to one key (``a.jpg`` and ``a.png``) would overwrite each other's samples."""
    seen: dict[str, str] = {}
    for image in images:
        if image.key in seen:
            raise ValueError(f"{seen[image.key]} and {image.origin} map to the same key {image.key!r}; rename one")
        seen[image.key] = image.origin


def carve(images: list[SourceImage], counts: dict[str, int | None], seed: int) -> dict[str, list[SourceImage]]:
    """Seeded disjoint selections, in the order of ``counts``; ``None`` takes all that is left."""
    by_key = {image.key: image for image in images}
    remaining = stable_rank(by_key, seed, "split")
    chosen = {}
    for split, count in counts.items():
        take = len(remaining) if count is None else count
        if take > len(remaining):
            raise ValueError(f"{split}_count={count} but only {len(remaining)} images are left for {split}")
        chosen[split] = [by_key[key] for key in remaining[:take]]
        remaining = remaining[take:]
    return chosen


def shard_order(images: list[SourceImage], seed: int) -> list[SourceImage]:
    """Train images shuffled once, seeded, because shards are read sequentially."""
    by_key = {image.key: image for image in images}
    return [by_key[key] for key in stable_rank(by_key, seed, "shards")]


def find_files(root: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files below ``root`` (case-insensitive extensions), sorted."""
    return list_files(root, extensions).images


def file_images(root: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS, paths: Iterable[Path] | None = None
                ) -> list[SourceImage]:
    """Every image file below ``root`` (or just ``paths``, files below it), keyed by its path relative to ``root``."""
    paths = find_files(root, extensions) if paths is None else paths
    images = [SourceImage(image_key(path.relative_to(root).as_posix()), str(path), FileRef(str(path)))
              for path in paths]
    refuse_duplicate_keys(images)
    return images


def tar_images(archive: Path, progress: bool = True) -> Iterator[tuple[str, TarMemberRef]]:
    """(path inside the archive, reference) for every regular file of an uncompressed tar, streamed."""
    try:
        with tarfile.open(archive, "r:") as tar, progress_bar(desc=f"index {archive.name}", unit="file",
                                                               disable=not progress, leave=False) as bar:
            while (member := tar.next()) is not None:
                # tarfile keeps every header it has read; 1.8M of them would cost about a gigabyte, and we
                # address members by offset, so the list is dropped as we go.
                tar.members.clear()
                if member.isfile():
                    if member.offset_data + member.size > archive.stat().st_size:
                        raise tarfile.ReadError(f"member {member.name} runs past the end of the file")
                    yield member.name, TarMemberRef(str(archive), member.offset_data, member.size)
                    bar.update()
    except tarfile.TarError as error:
        raise ValueError(f"{archive}: not a readable uncompressed tar archive ({error}); "
                         "is the download complete?") from None


def folder_splits(root: Path, seed: int = 0, counts: dict[str, int | None] | None = None,
                  extensions: Iterable[str] = IMAGE_EXTENSIONS) -> SourceSplits:
    """Any folder of images. With ``train/`` plus ``val/`` or ``test/`` inside, those are the splits (a count
    caps them, ``None`` takes all); otherwise val and test are seeded selections of ``counts["val"]`` and
    ``counts["test"]`` images (none when not given) and train is the rest.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found")
    counts = {"val": None, "test": None, "train": None, **(counts or {})}
    splits = SourceSplits()
    listing = list_files(root, extensions)
    split_layout = (root / "train").is_dir() and ((root / "val").is_dir() or (root / "test").is_dir())

    def split_of(path: Path) -> str:
        top = path.relative_to(root).parts[:1]
        return top[0] if split_layout and top and top[0] in SPLITS else "-"

    splits.missing.extend((split_of(path), str(path), reason) for path, reason in listing.unused)
    if split_layout:
        by_folder: dict[str, list[Path]] = {}
        for path in listing.images:
            by_folder.setdefault(path.relative_to(root).parts[0], []).append(path)
        for folder, paths in by_folder.items():
            if folder not in SPLITS:
                splits.missing.extend(("-", str(path), "outside train/, val/ and test/") for path in paths)
        for split in SPLITS:
            found = file_images(root / split, paths=by_folder.get(split, []))
            cap = len(found) if counts[split] is None else min(counts[split], len(found))
            splits.split(split).extend(carve(found, {split: cap}, seed)[split])
        splits.notes["layout"] = "train/val/test subfolders"
    else:
        images = file_images(root, paths=listing.images)
        wanted = {"val": counts["val"] or 0, "test": counts["test"] or 0, "train": counts["train"]}
        for split, chosen in carve(images, wanted, seed).items():
            splits.split(split).extend(chosen)
        splits.notes["layout"] = "one folder, val and test selected by seed"
    if not splits.train:
        raise ValueError(f"{root}: no training images with extensions {', '.join(extensions)}")
    return splits
