"""Listing a folder of images: every image file below it, and every other entry with the reason it is not used
(other files, broken or looping links, links to folders, unreadable folders), so nothing is dropped silently."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class FileListing:
    """What a folder holds: the image files, and every other entry with the reason it is not used."""

    images: list[Path] = field(default_factory=list)
    unused: list[tuple[Path, str]] = field(default_factory=list)


def list_files(root: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS, exclude: Path | None = None) -> FileListing:
    """Every entry below ``root``, sorted: image files (case-insensitive extensions; a link to one counts) and,
    with their reason, the rest: other files, broken or looping links, links to folders (not followed), folders that
    cannot be listed, special files. ``exclude`` (an output folder inside ``root``) is left out altogether."""
    wanted = sorted({ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions})
    excluded = exclude.resolve() if exclude is not None else None
    listing = FileListing()

    def unlisted(error: OSError) -> None:
        listing.unused.append((Path(error.filename), f"folder cannot be listed: {error.strerror}"))

    for folder, subfolders, names in os.walk(root, onerror=unlisted):
        for name in list(subfolders):
            path = Path(folder, name)
            if excluded is not None and path.resolve() == excluded:
                subfolders.remove(name)
            elif path.is_symlink():
                listing.unused.append((path, "link to a folder: not followed"))
        for name in names:
            path = Path(folder, name)
            reason = _unusable(path, wanted)
            if reason:
                listing.unused.append((path, reason))
            else:
                listing.images.append(path)
    listing.images.sort()
    listing.unused.sort()
    return listing


def _unusable(path: Path, wanted: list[str]) -> str:
    """Why the entry at ``path`` is not an image file to read, or "" when it is one."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"broken link: its target {os.readlink(path)} does not exist"
        return "removed while the folder was listed"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "link loop: following it never reaches a file"
        return f"cannot be read: {error.strerror}"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe, socket or device)"
    if path.suffix.lower() not in wanted:
        return f"not an image file: extension {path.suffix or '(none)'} is not one of {', '.join(wanted)}"
    return ""
