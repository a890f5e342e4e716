"""The embedded sample set: deterministic crops of the colour photographs that ship inside installed packages.

It lets a fresh machine with no downloads train and evaluate end to end. Val and test crops come from photographs
that no training crop uses, so evaluation never sees training content.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from lama.data.sources import SourceImage, SourceSplits


@dataclass(frozen=True)
class Photo:
    name: str
    package: str  # import name
    distribution: str  # the name pip knows it by
    resource: str  # path inside the package
    split: str  # the one split its crops go to
    licence: str
    credit: str
    url: str


PHOTOS = (
    Photo("astronaut", "skimage", "scikit-image", "data/astronaut.png", "train", "public domain",
          "NASA, Eileen Collins (NASA Great Images)", "https://flic.kr/p/r9qvLn"),
    Photo("chelsea", "skimage", "scikit-image", "data/chelsea.png", "train", "CC0",
          "Stefan van der Walt", "https://scikit-image.org/docs/stable/api/skimage.data.html#skimage.data.chelsea"),
    Photo("coffee", "skimage", "scikit-image", "data/coffee.png", "train", "CC0",
          "Rachel Michetti, courtesy of Pikolo Espresso Bar",
          "https://scikit-image.org/docs/stable/api/skimage.data.html#skimage.data.coffee"),
    Photo("rocket", "skimage", "scikit-image", "data/rocket.jpg", "train", "public domain",
          "SpaceX, DSCOVR launch on Falcon 9", "https://www.flickr.com/photos/spacexphotos/16511594820/"),
    Photo("china", "sklearn", "scikit-learn", "datasets/images/china.jpg", "train", "CC BY 2.0",
          "danielbuechele (Flickr); attribution required", "https://www.flickr.com/photos/danielbuechele/6061409035/"),
    Photo("flower", "sklearn", "scikit-learn", "datasets/images/flower.jpg", "train", "CC BY 2.0",
          "vultilion (Flickr); attribution required", "https://www.flickr.com/photos/vultilion/6056698931/"),
    Photo("grace_hopper", "matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "val",
          "public domain (U.S. Navy photograph)", "U.S. Navy, Grace Hopper",
          "https://matplotlib.org/stable/api/cbook_api.html#matplotlib.cbook.get_sample_data"),
    Photo("motorcycle_left", "skimage", "scikit-image", "data/motorcycle_left.png", "test",
          "no licence stated; cite Scharstein et al., GCPR 2014", "Middlebury 2014 stereo benchmark (left view)",
          "https://vision.middlebury.edu/stereo/data/scenes2014/"),
    Photo("motorcycle_right", "skimage", "scikit-image", "data/motorcycle_right.png", "test",
          "no licence stated; cite Scharstein et al., GCPR 2014", "Middlebury 2014 stereo benchmark (right view)",
          "https://vision.middlebury.edu/stereo/data/scenes2014/"),
)
PHOTOS_BY_NAME = {photo.name: photo for photo in PHOTOS}
DEFAULT_COUNTS = {"train": 240, "val": 8, "test": 16}
TRAIN_AREA = (0.4, 1.0)  # fraction of the photo a training crop covers
TRAIN_ASPECT = (3 / 4, 4 / 3)
EVAL_SIDE = (0.75, 1.0)  # fraction of the short side an eval square spans


def photo_path(photo: Photo) -> Path:
    """The photo inside its installed package, found without importing the package (scikit-learn is slow to)."""
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{photo.name}: package {photo.distribution} is not installed "
                                f"(pip install {photo.distribution})")
    path = Path(next(iter(spec.submodule_search_locations))) / photo.resource
    if not path.is_file():
        raise FileNotFoundError(f"{path}: photo {photo.name!r} missing from {photo.distribution}")
    return path


@cache
def _load_photo(name: str) -> Image.Image:
    with Image.open(photo_path(PHOTOS_BY_NAME[name])) as opened:
        return opened.convert("RGB")


@dataclass(frozen=True)
class PhotoCropRef:
    """A region of a packaged photo, optionally mirrored."""

    photo: str
    box: tuple[int, int, int, int]  # left, top, right, bottom
    flip: bool = False

    def read(self) -> Image.Image:
        region = _load_photo(self.photo).crop(self.box)
        return region.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if self.flip else region


def _rng(seed: int, photo: str, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{photo}/{split}".encode())])


def _train_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    area = rng.uniform(*TRAIN_AREA) * width * height
    aspect = float(np.exp(rng.uniform(np.log(TRAIN_ASPECT[0]), np.log(TRAIN_ASPECT[1]))))
    crop_width = min(width, round(np.sqrt(area * aspect)))
    crop_height = min(height, round(np.sqrt(area / aspect)))
    left = int(rng.integers(0, width - crop_width + 1))
    top = int(rng.integers(0, height - crop_height + 1))
    return left, top, left + crop_width, top + crop_height


def _eval_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    side = round(rng.uniform(*EVAL_SIDE) * min(width, height))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    return left, top, left + side, top + side


def _crops(photos: list[Photo], split: str, count: int, seed: int) -> list[SourceImage]:
    """``count`` crops spread over ``photos`` round-robin, each from the photo's own seeded stream."""
    images = []
    for position, photo in enumerate(photos):
        share = count // len(photos) + (1 if position < count % len(photos) else 0)
        width, height = _load_photo(photo.name).size
        rng = _rng(seed, photo.name, split)
        for index in range(share):
            box = _train_box(rng, width, height) if split == "train" else _eval_box(rng, width, height)
            flip = bool(rng.random() < 0.5) if split == "train" else False
            key = f"{photo.name}_{index:04d}"
            origin = f"{photo.distribution}:{photo.resource} crop {box}{' flipped' if flip else ''}"
            images.append(SourceImage(key, origin, PhotoCropRef(photo.name, box, flip)))
    return images


def embedded_splits(seed: int = 0, counts: dict[str, int | None] | None = None) -> SourceSplits:
    """Train / val / test crops (``DEFAULT_COUNTS`` unless given) with every photo's origin and licence in notes."""
    counts = {**DEFAULT_COUNTS, **{split: n for split, n in (counts or {}).items() if n is not None}}
    splits = SourceSplits()
    for split in ("train", "val", "test"):
        photos = [photo for photo in PHOTOS if photo.split == split]
        splits.split(split).extend(_crops(photos, split, counts[split], seed))
    splits.notes["photos"] = [
        {"name": photo.name, "split": photo.split, "package": f"{photo.distribution}=="
         f"{importlib.metadata.version(photo.distribution)}", "file": photo.resource, "licence": photo.licence,
         "credit": photo.credit, "url": photo.url}
        for photo in PHOTOS
    ]
    return splits
