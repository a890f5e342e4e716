"""Decoding, checking, resizing and encoding of dataset images, with a stated reason for every image turned away."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lama.imageio.formats import IMAGE_FORMATS

EXIF_ORIENTATION = 0x0112


class UnusableImageError(ValueError):
    """An image that cannot be used; the message is the reason written to the skip list."""


@dataclass(frozen=True)
class DecodedImage:
    """An 8-bit RGB image, the mode it was stored in when that was not RGB, and its format (JPEG, PNG...).

    ``pristine`` says that the stored bytes decode to exactly ``image`` (RGB, no EXIF rotation), so they can be kept.
    """

    image: Image.Image
    converted_from: str | None
    format: str | None
    pristine: bool


def to_rgb(opened: Image.Image) -> Image.Image:
    """Any decoded image as 8-bit RGB; 16-bit greyscale is scaled down (a plain convert would clip it to white)."""
    if opened.mode.startswith("I;16") or (opened.mode == "I" and np.asarray(opened).max() > 255):
        pixels = np.asarray(opened, dtype=np.float64) / 257
        return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "L").convert("RGB")
    return opened.convert("RGB")


def load_image(source: str | Path | BinaryIO) -> Image.Image:
    """Open and fully decode an untrusted image file, so that truncation shows here rather than later.

    Pillow's decompression-bomb warning is an error here: a tiny file claiming a huge size is turned away before
    its pixels are allocated. Every way of failing is an ``UnusableImageError`` whose message is the reason.
    """
    return _open(source, decode=True)


def image_size(source: str | Path | BinaryIO) -> tuple[int, int]:
    """(width, height) read from the header alone, turned away on the same grounds as :func:`load_image`."""
    with _open(source, decode=False) as opened:
        return opened.size


def _open(source: str | Path | BinaryIO, decode: bool) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(source)
            if decode:
                opened.load()
    except UnidentifiedImageError:
        raise UnusableImageError("not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnusableImageError(
            f"larger than the decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels") from None
    except OSError as error:
        if error.errno is not None:  # the file itself (permissions, a folder...), not its contents
            raise UnusableImageError(f"cannot open: {error.strerror}") from None
        raise UnusableImageError(f"corrupt or truncated: {_first_line(error)}") from None
    except Exception as error:  # Pillow's decoders raise many exception types (struct.error, IndexError...)
        raise UnusableImageError(f"corrupt or truncated: {_first_line(error)}") from None
    return opened


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def decode_rgb(data: bytes, min_side: int = 1) -> DecodedImage:
    """Decode fully (so truncation shows here, not in a training worker), apply EXIF orientation, convert to RGB.

    EXIF orientation is applied as OpenCV's ``imread`` (the official reader) applies it.
    """
    opened = load_image(io.BytesIO(data))
    image_format = opened.format
    width, height = opened.size
    if min(width, height) < min_side:
        raise UnusableImageError(f"too small: {width}x{height}, short side below {min_side}")
    converted_from = None if opened.mode == "RGB" else opened.mode
    rotated = opened.getexif().get(EXIF_ORIENTATION, 1) not in (0, 1)
    image = to_rgb(ImageOps.exif_transpose(opened) if rotated else opened)
    return DecodedImage(image, converted_from, image_format, pristine=converted_from is None and not rotated)


def resize_short_side(image: Image.Image, size: int) -> Image.Image:
    """Bicubic resize so that the short side is ``size`` (official rounding: numpy's round half to even)."""
    factor = size / min(image.size)
    new_size = tuple(int(v) for v in np.round(np.array(image.size) * factor))
    if new_size == image.size:
        return image
    return image.resize(new_size, resample=Image.BICUBIC)


def center_square(image: Image.Image) -> Image.Image:
    """The central square of side min(W, H)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def encode(image: Image.Image, image_format: str, quality: int = 95) -> bytes:
    """Encode with fixed settings, so that the same pixels always give the same bytes."""
    buffer = io.BytesIO()
    pil_format = IMAGE_FORMATS[image_format]
    if pil_format == "PNG":
        image.save(buffer, format=pil_format)
    else:
        image.save(buffer, format=pil_format, quality=quality)
    return buffer.getvalue()
