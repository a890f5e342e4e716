"""Atomic file writes: an interrupted run never leaves a partial file that looks finished."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image


def atomic_write(path: Path, write: Callable[[BinaryIO], object], durable: bool = False) -> None:
    """Write through a temporary file in the same dir, then rename; ``durable`` also fsyncs before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_image(path: Path, pixels: np.ndarray, mode: str = "RGB") -> None:
    """Save uint8 pixels atomically in the format the file extension names (PNG when unknown)."""
    image_format = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    atomic_write(path, lambda handle: Image.fromarray(pixels, mode).save(handle, format=image_format))
