"""Places365-Standard (high resolution) as extracted folders or the official tar archives, with the official lists.

As in the paper's recipe, the evaluation images (test) are drawn from ``val_large`` and the images that pick the
best checkpoint during training (val) from ``test_large``; when ``test_large`` is absent, both come from
``val_large`` without overlap. The official file lists, where present, decide which files belong to a part and
give the class labels; a listed file that is absent is reported, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from lama.data.sources import (
    SourceImage,
    SourceSplits,
    carve,
    file_images,
    image_key,
    refuse_duplicate_keys,
    tar_images,
)


@dataclass(frozen=True)
class Part:
    """One of the three official downloads."""

    name: str
    folders: tuple[str, ...]  # names it may have once extracted
    archive: str
    file_list: str


PARTS = {
    "train": Part("train", ("data_large", "train"), "train_large_places365standard.tar",
                  "places365_train_standard.txt"),
    "val_large": Part("val_large", ("val_large",), "val_large.tar", "places365_val.txt"),
    "test_large": Part("test_large", ("test_large",), "test_large.tar", "places365_test.txt"),
}
LIST_FOLDERS = (".", "filelist_places365-standard", "filelist")
DEFAULT_COUNTS = {"val": 2000, "test": 30000, "train": None}


def _part_images(root: Path, part: Part, progress: bool) -> list[SourceImage] | None:
    """The images of ``part`` from its extracted folder or else its archive; ``None`` when neither exists."""
    for folder in part.folders:
        if (root / folder).is_dir():
            return file_images(root / folder)
    archive = root / part.archive
    if not archive.is_file():
        return None
    images = []
    for name, ref in tar_images(archive, progress):
        inside = name.split("/", 1)[1] if "/" in name else name  # drop the archive's top folder (data_large/ ...)
        images.append(SourceImage(image_key(inside), f"{archive}:{name}", ref))
    refuse_duplicate_keys(images)
    return images


def _find_list(root: Path, part: Part) -> Path | None:
    for folder in LIST_FOLDERS:
        if (root / folder / part.file_list).is_file():
            return root / folder / part.file_list
    return None


def _apply_list(images: list[SourceImage], listing: Path, split: str, splits: SourceSplits) -> list[SourceImage]:
    """The listed images in list order, with their labels; absent entries go to ``splits.missing``."""
    by_key = {image.key: image for image in images}
    kept = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        key = image_key(fields[0].lstrip("/"))
        try:
            label = int(fields[1]) if len(fields) > 1 else None
        except ValueError:
            raise ValueError(f"{listing}:{number}: expected 'path [class index]', got {line!r}") from None
        if key in by_key:
            kept.append(replace(by_key[key], label=label))
        else:
            splits.missing.append((split, f"{listing}:{number}", f"listed file {fields[0]} not found"))
    return kept


def places365_splits(root: Path, seed: int = 0, counts: dict[str, int | None] | None = None,
                     progress: bool = True) -> SourceSplits:
    """Train from train_large, test from val_large, val from test_large (or val_large), in the given counts."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Places365 folder not found")
    counts = {**DEFAULT_COUNTS, **{split: n for split, n in (counts or {}).items() if n is not None}}
    splits = SourceSplits()
    parts: dict[str, list[SourceImage] | None] = {}
    for name, part in PARTS.items():
        images = _part_images(root, part, progress)
        listing = _find_list(root, part) if images is not None else None
        split = {"train": "train", "val_large": "test", "test_large": "val"}[name]
        if listing is not None:
            images = _apply_list(images, listing, split, splits)
            splits.notes[f"{name}_list"] = listing.name
        parts[name] = images
    for name in ("train", "val_large"):
        if parts[name] is None:
            part = PARTS[name]
            raise FileNotFoundError(f"{root}: neither {' nor '.join(f + '/' for f in part.folders)} "
                                    f"nor {part.archive} found (Places365-Standard high-res {name})")
    splits.train.extend(carve(parts["train"], {"train": counts["train"]}, seed)["train"])
    if parts["test_large"] is None:
        chosen = carve(parts["val_large"], {"test": counts["test"], "val": counts["val"]}, seed)
        splits.notes["val_from"] = "val_large (test_large absent)"
    else:
        chosen = {**carve(parts["val_large"], {"test": counts["test"]}, seed),
                  **carve(parts["test_large"], {"val": counts["val"]}, seed)}
        splits.notes["val_from"] = "test_large"
    splits.val.extend(chosen["val"])
    splits.test.extend(chosen["test"])
    return splits
