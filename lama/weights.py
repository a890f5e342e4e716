"""Registry of the pretrained files LaMa needs, and a small verified downloader for them.

Pretrained networks (the ADE20k encoder behind the HRF perceptual loss, the LPIPS VGG16 backbone, the FID Inception)
are not shipped with the package. They live under ``$LAMA_HOME`` (default ``~/.cache/lama``) at fixed relative paths,
are fetched explicitly (``lama weights fetch NAME``), and are checked against a pinned SHA-256 where one is known. A
download goes to a temporary file next to the target and is renamed only after it verified, so the target path never
holds a partial or unverified file.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lama.files import atomic_write

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightFile:
    """One pretrained file: where it comes from, where it lives under ``lama_home()``, and what it must hash to.

    ``sha256`` and ``size`` are ``None`` when no trustworthy value is known; such an entry is "unpinned" and
    ``verify``/``fetch`` refuse to vouch for it unless the caller supplies the hash or explicitly accepts that.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None
    licence: str
    description: str

    def local_path(self) -> Path:
        """Where this file lives now (depends on ``$LAMA_HOME``, so it is computed on each call)."""
        return lama_home() / self.filename


class UnknownWeightsError(KeyError):
    """The name is not in ``REGISTRY``."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class MissingWeightsError(FileNotFoundError):
    """A pretrained file is not on disk; the message names the path and the command that fetches it."""


class CorruptWeightsError(OSError):
    """A file's size or SHA-256 differs from the expected value."""


class UnpinnedWeightsError(ValueError):
    """No expected SHA-256 is known for the file, so it cannot be called verified."""


REGISTRY: dict[str, WeightFile] = {
    entry.name: entry
    for entry in (
        WeightFile(
            name="ade20k-resnet50dilated-encoder",
            filename="ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth",
            urls=(
                "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth",
            ),
            # No published checksum could be found; the official LaMa code downloads it unchecked. The file holds
            # 23,631,808 float32 values (about 94.5 MB plus pickle overhead), but its exact size is not pinned either.
            sha256=None,
            size=None,
            licence="BSD-3-Clause (CSAILVision/semantic-segmentation-pytorch)",
            description="ADE20k ResNet50-dilated (PPM deep-sup) scene-parsing encoder, epoch 20: the network behind "
            "LaMa's high-receptive-field perceptual loss (ResNetPL)",
        ),
        WeightFile(
            name="torchvision-vgg16",
            filename="torchvision/vgg16-397923af.pth",
            urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
            # torchvision names its files by the first 8 hex digits of the SHA-256 (397923af); the full digest and
            # the size are the ones several independent projects pin for this URL.
            sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            size=553_433_881,
            licence="BSD-3-Clause (pytorch/vision); trained on ImageNet",
            description="torchvision VGG16 ImageNet classifier: the backbone of LPIPS (net-lin, vgg) in LaMa's "
            "evaluation; only its `features.*` tensors are used",
        ),
        WeightFile(
            name="pytorch-fid-inception",
            filename="pytorch-fid/pt_inception-2015-12-05-6726825d.pth",
            urls=(
                "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                "pt_inception-2015-12-05-6726825d.pth",
            ),
            # The name carries the first 8 hex digits of the SHA-256 (6726825d), as torch.hub checks it; the full
            # digest and the size are the ones several independent projects pin for this file (torch-fidelity
            # redistributes the same bytes).
            sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
            size=95_628_359,
            licence="Apache-2.0 (mseitzer/pytorch-fid; weights ported from TensorFlow's inception-2015-12-05)",
            description="FID Inception v3 (TensorFlow inception-2015-12-05 weights ported by pytorch-fid): the "
            "2048-d pool3 features behind FID in LaMa's evaluation",
        ),
    )
}


def lama_home() -> Path:
    """Root of the local weights cache: ``$LAMA_HOME`` if set, else ``~/.cache/lama``."""
    configured = os.environ.get("LAMA_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "lama"


def get_entry(name: str) -> WeightFile:
    """The registry entry called ``name``; the error lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownWeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def weight_path(name: str) -> Path:
    """Local path of a registry file (whether or not it exists)."""
    return get_entry(name).local_path()


def require(name: str, entry: WeightFile | None = None) -> Path:
    """Path of a file that must already be on disk; never downloads, so training never hits the network implicitly."""
    entry = _resolve(name, entry)
    path = entry.local_path()
    if not path.is_file():
        raise MissingWeightsError(
            f"pretrained weights {entry.name!r} not found at {path}; fetch them with `lama weights fetch {entry.name}`"
            " (or point $LAMA_HOME at a directory that has them)"
        )
    return path


def local_state(entry: WeightFile, check_hash: bool = False) -> str:
    """``missing``, ``present`` (size right or unknown), ``wrong size``, and with ``check_hash`` also ``verified``,
    ``corrupt`` or ``unpinned`` (present, but no hash to check it against): what ``lama weights list`` shows."""
    path = entry.local_path()
    if not path.is_file():
        return "missing"
    if entry.size is not None and path.stat().st_size != entry.size:
        return "wrong size"
    if not check_hash:
        return "present"
    if entry.sha256 is None:
        return "unpinned"
    return "verified" if sha256_of(path) == entry.sha256 else "corrupt"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in chunks so that large checkpoints are not loaded into memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | os.PathLike[str], entry: WeightFile, sha256: str | None = None) -> str:
    """Check ``path`` against the pinned (or explicitly given) SHA-256 and size; returns the actual digest.

    An unpinned entry without an explicit ``sha256`` raises ``UnpinnedWeightsError``: hashing a file against
    nothing would only pretend to verify it.
    """
    path = Path(path)
    expected = (sha256 or entry.sha256 or "").lower() or None
    if entry.size is not None and path.stat().st_size != entry.size:
        raise CorruptWeightsError(
            f"{path}: size {path.stat().st_size} bytes, expected {entry.size} for {entry.name!r}; delete it and fetch"
            " again"
        )
    actual = sha256_of(path)
    if expected is None:
        raise UnpinnedWeightsError(
            f"{path}: no SHA-256 is pinned for {entry.name!r} (actual sha256 {actual}); pass the expected hash"
            " from a trusted source to verify it"
        )
    if actual != expected:
        raise CorruptWeightsError(
            f"{path}: sha256 mismatch for {entry.name!r}: expected {expected}, actual {actual}; delete it and fetch"
            " again"
        )
    return actual


def fetch(
    name: str,
    progress: bool = True,
    *,
    entry: WeightFile | None = None,
    sha256: str | None = None,
    allow_unpinned: bool = False,
) -> Path:
    """Download a registry file into ``lama_home()`` unless a verified copy is already there; returns its path.

    Each URL is tried in turn. The bytes go to a temporary file in the target's directory, are hashed while they
    stream, and the file is renamed onto the target (atomic on one filesystem) only when size and hash match. An
    unpinned entry needs ``sha256=`` or ``allow_unpinned=True``; otherwise nothing is downloaded. ``entry`` lets
    callers (tests, mirrors) fetch files that are not in ``REGISTRY``.
    """
    entry = _resolve(name, entry)
    expected = (sha256 or entry.sha256 or "").lower() or None
    if expected is None and not allow_unpinned:
        raise UnpinnedWeightsError(
            f"no SHA-256 is pinned for {entry.name!r}; pass the expected hash from a trusted source (--sha256 HEX,"
            " sha256=) or accept whatever the URL serves (--allow-unpinned, allow_unpinned=True)"
        )
    target = entry.local_path()
    if target.is_file():
        if expected is None:
            return target
        try:
            verify(target, entry, expected)
            return target
        except CorruptWeightsError:
            pass  # replaced below, atomically, by a verified download
    target.parent.mkdir(parents=True, exist_ok=True)
    errors: list[Exception] = []
    for url in entry.urls:
        try:
            _download(url, target, entry, expected, progress)
            return target
        except OSError as error:  # URLError, HTTPError, a broken stream and CorruptWeightsError are all OSErrors
            errors.append(error)
    if len(errors) == 1 and not isinstance(errors[0], urllib.error.URLError):
        raise errors[0]  # a corrupt or broken download keeps its own type; an unreachable URL gets named below
    details = "; ".join(f"{url}: {error}" for url, error in zip(entry.urls, errors, strict=True))
    raise OSError(f"could not fetch {entry.name!r}: {details}")


def _resolve(name: str, entry: WeightFile | None) -> WeightFile:
    if entry is None:
        return get_entry(name)
    if entry.name != name:
        raise ValueError(f"entry is named {entry.name!r}, not {name!r}")
    return entry


def _open_url(url: str) -> BinaryIO:
    """Open a URL for streaming (a seam for tests that simulate broken connections)."""
    return urllib.request.urlopen(url, timeout=60)


def _chunks(response: BinaryIO) -> Iterator[bytes]:
    while chunk := response.read(_CHUNK):
        yield chunk


def _download(url: str, target: Path, entry: WeightFile, expected: str | None, progress: bool) -> None:
    """Stream ``url`` into ``target`` through ``atomic_write``: the target appears only once size and hash match."""
    digest = hashlib.sha256()

    def stream_and_check(out: BinaryIO) -> None:
        received = 0
        with _open_url(url) as response:
            bar = _progress_bar(_content_length(response) or entry.size, entry.name, progress)
            try:
                for chunk in _chunks(response):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
        if entry.size is not None and received != entry.size:
            raise CorruptWeightsError(f"{url}: received {received} bytes, expected {entry.size} for {entry.name!r}")
        if expected is not None and digest.hexdigest() != expected:
            raise CorruptWeightsError(
                f"{url}: sha256 mismatch for {entry.name!r} (target {target}): expected {expected}, "
                f"actual {digest.hexdigest()}"
            )

    atomic_write(target, stream_and_check, durable=True)
    if expected is None and progress:
        print(f"fetched unpinned {entry.name!r} to {target}: sha256 {digest.hexdigest()}", file=sys.stderr)


def _content_length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value and value.isdigit() else None


def _progress_bar(total: int | None, label: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from lama.progress import progress_bar

    return progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label)
