"""The official eval layout: masks paired with their images by name, and the images and masks read from it.

``lama predict``, training validation, evaluation and the report's sample grids all find and read their inputs
here, so one pairing rule and one way of decoding hold everywhere. Every failure is an :class:`InputError` that
names the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lama.imageio.images import UnusableImageError, load_image

MASK_SUFFIX = ".png"
MASK_GLOB = f"**/*mask*{MASK_SUFFIX}"
MASK_MARK = "_mask"  # the image name is the mask's relative path cut at the last of these


class InputError(ValueError):
    """One input pair cannot be processed; the message names the file."""


@dataclass(frozen=True)
class MaskImagePair:
    mask: Path
    image: Path
    output: Path


@dataclass(frozen=True)
class Pairing:
    """The masks of a folder paired with their images, and the files named like masks that cannot be paired."""

    pairs: list[MaskImagePair]
    unpaired: list[tuple[Path, str]]  # (file, why it has no image)


def pair_masks(indir: str | Path, outdir: str | Path, img_suffix: str = ".png", out_ext: str = ".png") -> Pairing:
    """Masks found recursively and sorted, each with its image and output path (official pairing rules).

    The official cut (``fname.rsplit('_mask', 1)[0] + img_suffix``) is applied to the path relative to ``indir``,
    so a folder above ``indir`` named ``..._mask`` never pairs a mask with a file outside it. A name without
    ``_mask`` that is the image of another mask is that image (e.g. ``gasmask.png``), not a mask.
    """
    indir, outdir = Path(indir), Path(outdir)
    pairs, unpaired = [], []
    for mask in sorted(indir.glob(MASK_GLOB), key=str):
        relative = mask.relative_to(indir).as_posix()
        stem, mark, _ = relative.rpartition(MASK_MARK)
        if not mask.is_file():
            unpaired.append((mask, "not a regular file"))
        elif not mark:
            unpaired.append((mask, f"no '{MASK_MARK}' in the name, so it has no image "
                                   f"(expected NAME{MASK_MARK}*{MASK_SUFFIX} beside NAME{img_suffix})"))
        else:
            output = (outdir / relative).with_suffix(out_ext)
            pairs.append(MaskImagePair(mask, indir / (stem + img_suffix), output))
    images = {pair.image for pair in pairs}
    return Pairing(pairs, [(path, reason) for path, reason in unpaired if path not in images])


def find_pairs(indir: str | Path, outdir: str | Path, img_suffix: str = ".png", out_ext: str = ".png"
               ) -> list[MaskImagePair]:
    """The pairs of :func:`pair_masks` for a caller that needs the whole set (evaluation, validation, figures):
    a file that cannot be paired is an ``InputError`` naming it."""
    pairing = pair_masks(indir, outdir, img_suffix, out_ext)
    if pairing.unpaired:
        (path, reason), more = pairing.unpaired[0], len(pairing.unpaired) - 1
        raise InputError(f"{path}: {reason}" + (f" ({more} more such files)" if more else ""))
    return pairing.pairs


def read_image(path: Path) -> np.ndarray:
    """RGB float32 CHW in [0,1]; greyscale is replicated and alpha dropped without compositing."""
    return np.asarray(open_image(path).convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255


def read_mask(path: Path) -> np.ndarray:
    """float32 [1,H,W] in [0,1] via PIL 'L' (ITU-R 601-2 luma for colour masks; alpha of LA dropped)."""
    return np.asarray(open_image(path).convert("L"), dtype=np.float32)[None] / 255


def open_image(path: Path) -> Image.Image:
    """A loaded PIL image; a missing, unreadable or decompression-bomb file is an ``InputError`` naming it."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        return load_image(path)
    except UnusableImageError as error:
        raise InputError(f"{path}: cannot read image ({error})") from None


def read_pair(pair: MaskImagePair) -> tuple[np.ndarray, np.ndarray]:
    """The image (float32 CHW) and mask ([1, H, W]) of a pair; a missing file or a size mismatch names the mask."""
    if not pair.image.is_file():
        raise InputError(f"{pair.mask}: its image {pair.image} does not exist")
    image, mask = read_image(pair.image), read_mask(pair.mask)
    if image.shape[1:] != mask.shape[1:]:
        raise InputError(
            f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[2]} but image {pair.image} is "
            f"{image.shape[1]}x{image.shape[2]} (HxW)"
        )
    return image, mask
