"""Pretrained-weights registry: paths, the missing-file message, hash verification and atomic downloads (no network)."""

from __future__ import annotations

import hashlib
import io
import urllib.error
from pathlib import Path

import pytest

from lama import weights
from lama.cli import main
from lama.weights import (
    REGISTRY,
    CorruptWeightsError,
    MissingWeightsError,
    UnknownWeightsError,
    UnpinnedWeightsError,
    WeightFile,
)

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes: more than one download chunk


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lama-home"
    monkeypatch.setenv("LAMA_HOME", str(root))
    return root


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "served" / "model.pth"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def make_entry(*urls: str, sha256: str | None = None, size: int | None = None) -> WeightFile:
    return WeightFile(
        name="test-model",
        filename="test/sub/model.pth",
        urls=urls,
        sha256=sha256,
        size=size,
        licence="CC0-1.0",
        description="test payload",
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_ade20k_encoder_entry() -> None:
    entry = REGISTRY["ade20k-resnet50dilated-encoder"]
    assert entry.name == "ade20k-resnet50dilated-encoder"
    assert entry.filename == "ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth"
    assert entry.urls == (
        "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth",
    )
    assert "BSD-3-Clause" in entry.licence
    assert entry.sha256 is None or len(entry.sha256) == 64
    with pytest.raises(AttributeError):
        entry.sha256 = "0" * 64  # type: ignore[misc]  # frozen


def test_lama_home_default_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert weights.lama_home() == tmp_path / ".cache" / "lama"
    monkeypatch.setenv("LAMA_HOME", str(tmp_path / "elsewhere"))
    assert weights.lama_home() == tmp_path / "elsewhere"
    assert weights.weight_path("ade20k-resnet50dilated-encoder") == (
        tmp_path / "elsewhere/ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth"
    )


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownWeightsError, match=r"known: .*ade20k-resnet50dilated-encoder"):
        weights.weight_path("no-such-model")


def test_require_missing_names_path_and_command(home: Path) -> None:
    with pytest.raises(MissingWeightsError) as info:
        weights.require("ade20k-resnet50dilated-encoder")
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "\n" not in message
    assert str(home / "ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth") in message
    assert "`lama weights fetch ade20k-resnet50dilated-encoder`" in message


def test_require_returns_an_existing_file(home: Path) -> None:
    entry = make_entry("file:///unused")
    entry.local_path().parent.mkdir(parents=True)
    entry.local_path().write_bytes(PAYLOAD)
    assert weights.require("test-model", entry=entry) == entry.local_path()


def test_verify(tmp_path: Path, source: Path) -> None:
    assert weights.verify(source, make_entry(sha256=GOOD_SHA, size=len(PAYLOAD))) == GOOD_SHA
    wrong = "0" * 64
    with pytest.raises(CorruptWeightsError) as info:
        weights.verify(source, make_entry(sha256=wrong))
    assert str(source) in str(info.value) and wrong in str(info.value) and GOOD_SHA in str(info.value)
    with pytest.raises(CorruptWeightsError, match="size"):
        weights.verify(source, make_entry(sha256=GOOD_SHA, size=len(PAYLOAD) + 1))


def test_verify_refuses_an_unpinned_entry_unless_given_the_hash(source: Path) -> None:
    with pytest.raises(UnpinnedWeightsError, match="no SHA-256 is pinned") as info:
        weights.verify(source, make_entry())
    assert str(source) in str(info.value)
    assert weights.verify(source, make_entry(), sha256=GOOD_SHA.upper()) == GOOD_SHA
    with pytest.raises(CorruptWeightsError):
        weights.verify(source, make_entry(), sha256="f" * 64)


def test_fetch_from_a_file_url(home: Path, source: Path) -> None:
    entry = make_entry(source.as_uri(), sha256=GOOD_SHA, size=len(PAYLOAD))
    target = weights.fetch("test-model", progress=False, entry=entry)
    assert target == home / "test/sub/model.pth"
    assert target.read_bytes() == PAYLOAD
    assert leftovers(target.parent) == ["model.pth"]
    weights.verify(target, entry)
    # A verified copy is not downloaded again, even when the URL has gone.
    gone = make_entry(source.with_name("gone.pth").as_uri(), sha256=GOOD_SHA)
    assert weights.fetch("test-model", progress=False, entry=gone) == target


def test_fetch_with_progress_bar(home: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights.fetch("test-model", progress=True, entry=make_entry(source.as_uri(), sha256=GOOD_SHA))
    assert "test-model" in capsys.readouterr().err


def test_fetch_rejects_a_corrupt_download_and_leaves_nothing(home: Path, source: Path) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    entry = make_entry(source.as_uri(), sha256=wrong)
    with pytest.raises(CorruptWeightsError) as info:
        weights.fetch("test-model", progress=False, entry=entry)
    message = str(info.value)
    assert str(entry.local_path()) in message and wrong in message and GOOD_SHA in message
    assert not entry.local_path().exists()
    assert leftovers(entry.local_path().parent) == []


def test_fetch_replaces_a_corrupt_existing_file(home: Path, source: Path) -> None:
    entry = make_entry(source.as_uri(), sha256=GOOD_SHA)
    entry.local_path().parent.mkdir(parents=True)
    entry.local_path().write_bytes(b"truncated")
    assert weights.fetch("test-model", progress=False, entry=entry).read_bytes() == PAYLOAD


class BrokenStream(io.RawIOBase):
    """A download that dies half-way; it also checks that the target never appears while bytes arrive."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.sent = 0
        self.headers = {"Content-Length": str(len(PAYLOAD))}

    def read(self, size: int = -1) -> bytes:
        assert not self.target.exists(), "the target must not exist while the download is in progress"
        if self.sent >= len(PAYLOAD) // 2:
            raise ConnectionResetError("connection reset by peer")
        chunk = PAYLOAD[self.sent : self.sent + min(size, 4096)]
        self.sent += len(chunk)
        return chunk


def test_fetch_interrupted_download_leaves_no_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = make_entry("https://example.invalid/model.pth", sha256=GOOD_SHA)
    streams: list[BrokenStream] = []

    def fake_open(url: str) -> BrokenStream:
        streams.append(BrokenStream(entry.local_path()))
        return streams[-1]

    monkeypatch.setattr(weights, "_open_url", fake_open)
    with pytest.raises(ConnectionResetError):
        weights.fetch("test-model", progress=False, entry=entry)
    assert streams and streams[0].sent > 0
    assert not entry.local_path().exists()
    assert leftovers(entry.local_path().parent) == []


def test_fetch_falls_back_to_the_next_url(home: Path, source: Path) -> None:
    entry = make_entry(source.with_name("missing.pth").as_uri(), source.as_uri(), sha256=GOOD_SHA)
    assert weights.fetch("test-model", progress=False, entry=entry).read_bytes() == PAYLOAD


def test_fetch_reports_every_failed_url(home: Path, source: Path) -> None:
    first, second = source.with_name("a.pth").as_uri(), source.with_name("b.pth").as_uri()
    with pytest.raises(OSError, match="could not fetch 'test-model'") as info:
        weights.fetch("test-model", progress=False, entry=make_entry(first, second, sha256=GOOD_SHA))
    assert first in str(info.value) and second in str(info.value)


def test_fetch_of_an_unpinned_entry_needs_consent(home: Path, source: Path) -> None:
    entry = make_entry(source.as_uri())
    with pytest.raises(UnpinnedWeightsError):
        weights.fetch("test-model", progress=False, entry=entry)
    assert not entry.local_path().parent.exists()  # refused before downloading anything
    assert weights.fetch("test-model", progress=False, entry=entry, sha256=GOOD_SHA).read_bytes() == PAYLOAD
    entry.local_path().unlink()
    assert weights.fetch("test-model", progress=False, entry=entry, allow_unpinned=True).read_bytes() == PAYLOAD


def test_fetch_checks_the_entry_name(home: Path, source: Path) -> None:
    with pytest.raises(ValueError, match="not 'other'"):
        weights.fetch("other", progress=False, entry=make_entry(source.as_uri(), sha256=GOOD_SHA))


def test_pinned_registry_entries() -> None:
    """The LPIPS backbone and the FID Inception are pinned; their file names carry the hash's first 8 digits."""
    for name in ("torchvision-vgg16", "pytorch-fid-inception"):
        entry = REGISTRY[name]
        assert entry.sha256 is not None and len(entry.sha256) == 64 and entry.size is not None
        assert Path(entry.filename).stem.endswith(entry.sha256[:8])


def test_local_state(home: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = make_entry(source.as_uri(), sha256=GOOD_SHA, size=len(PAYLOAD))
    assert weights.local_state(entry) == "missing"
    weights.fetch(entry.name, progress=False, entry=entry)
    assert weights.local_state(entry) == "present"
    assert weights.local_state(entry, check_hash=True) == "verified"
    path = entry.local_path()
    path.write_bytes(PAYLOAD[:-1] + b"X")
    assert weights.local_state(entry, check_hash=True) == "corrupt"
    path.write_bytes(PAYLOAD[:10])
    assert weights.local_state(entry) == "wrong size"
    unpinned = make_entry(source.as_uri())
    assert weights.local_state(unpinned, check_hash=True) == "unpinned"


def test_cli_lists_and_fails_cleanly_offline(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    for name in REGISTRY:
        line = next(line for line in listing.splitlines() if line.startswith(name))
        assert line.split()[1] == "missing"
    assert str(weights.weight_path("torchvision-vgg16")) in listing

    def offline(url: str) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(weights, "_open_url", offline)
    assert main(["weights", "fetch", "torchvision-vgg16", "pytorch-fid-inception", "-q"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("lama weights: torchvision-vgg16: could not fetch 'torchvision-vgg16': "
                                "https://download.pytorch.org/models/vgg16-397923af.pth: ")
    assert "Name or service not known" in errors[1]
    assert leftovers(home / "torchvision") == [] and leftovers(home / "pytorch-fid") == []


def test_cli_refuses_unpinned_and_unknown_fetches(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "fetch", "ade20k-resnet50dilated-encoder", "-q"]) == 1
    assert "no SHA-256 is pinned for 'ade20k-resnet50dilated-encoder'" in capsys.readouterr().err
    assert main(["weights", "fetch", "nonsense", "-q"]) == 1
    assert "unknown weights 'nonsense'" in capsys.readouterr().err
