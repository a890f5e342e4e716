"""Atomic file writes: an interrupted run never leaves a partial file that looks finished."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

TEMPORARY_GLOB = ".*.tmp"  # the name of a file being written: hidden, never taken for an output


def atomic_write(path: Path, write: Callable[[BinaryIO], object], durable: bool = False) -> None:
    """Write through a temporary file in the same dir, then rename; ``durable`` also fsyncs before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def try_writing_in(folder: Path) -> None:
    """Create ``folder`` and write (and remove) a file in it: an ``OSError`` now rather than after the work."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder):
        pass


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new empty file beside ``path`` named by ``TEMPORARY_GLOB``, opened for writing.

    Its mode is 0666 less the umask, as for any file a program creates; ``tempfile.mkstemp`` always makes 0600,
    which would leave every output readable by its owner only."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


def remove_temporaries(folder: Path) -> int:
    """Delete the temporary files a killed run left below ``folder``; returns how many.

    They are never mistaken for outputs (an output appears only by rename), but they take space and confuse."""
    removed = 0
    if folder.is_dir():
        for leftover in folder.rglob(TEMPORARY_GLOB):
            if leftover.is_file() and not leftover.is_symlink():
                leftover.unlink()
                removed += 1
    return removed


def write_image(path: Path, pixels: np.ndarray, mode: str = "RGB") -> None:
    """Save uint8 pixels atomically in the format the file extension names (PNG when unknown)."""
    image_format = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    atomic_write(path, lambda handle: Image.fromarray(pixels, mode).save(handle, format=image_format))
