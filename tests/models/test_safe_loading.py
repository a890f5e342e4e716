"""No checkpoint runs code, whatever its container, and every unusable one is a one-line error naming the file."""

from __future__ import annotations

import contextlib
import io
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lama.cli import main
from lama.models import load_model
from lama.safe_load import (
    CheckpointError,
    RestrictedUnpickler,
    UnsafeCheckpointError,
    load_checkpoint_file,
    load_state_file,
)


class ScriptedPayload(torch.nn.Module):
    """A module whose TorchScript archive carries code (``__setstate__`` runs when torch.jit.load reads it)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.zeros(1)

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        self.weight = state[0] + 1
        self.training = state[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


@pytest.fixture(scope="module")
def torchscript_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("torchscript") / "archive.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated, but torch.load still dispatches to torch.jit.load
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(ScriptedPayload()), str(path))
    return path


@pytest.fixture
def jit_load_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``torch.jit.load`` replaced by a function that writes a marker: the archive's code would run there."""
    marker = tmp_path / "jit-load-ran"

    def jit_load(*args: object, **kwargs: object) -> None:
        marker.write_text("torch.jit.load was called")
        raise AssertionError("torch.jit.load must never be called on a checkpoint")

    monkeypatch.setattr(torch.jit, "load", jit_load)
    return marker


def _model_dir(fixtures: Path, root: Path, checkpoint: bytes | Path) -> Path:
    model_dir = root / "model"
    (model_dir / "models").mkdir(parents=True)
    shutil.copy(fixtures / "tiny-biglama/config.yaml", model_dir / "config.yaml")
    target = model_dir / "models/best.ckpt"
    if isinstance(checkpoint, Path):
        shutil.copy(checkpoint, target)
    else:
        target.write_bytes(checkpoint)
    return model_dir


def _predict(model_dir: Path, fixtures: Path, out: Path, capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    status = main(["predict", str(model_dir), str(fixtures / "tiny-biglama/input"), str(out), "-q"])
    return status, capsys.readouterr().err.strip().splitlines()


def test_torchscript_archive_is_refused_by_inspection_and_never_loaded(
        torchscript_archive: Path, jit_load_marker: Path) -> None:
    with pytest.raises(CheckpointError, match="TorchScript archive") as error:
        load_checkpoint_file(torchscript_archive)
    assert str(error.value).startswith(f"{torchscript_archive}: ")
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        load_state_file(torchscript_archive)
    assert not jit_load_marker.exists()


def test_torchscript_best_ckpt_stops_load_model_and_predict(
        fixtures: Path, tmp_path: Path, torchscript_archive: Path, jit_load_marker: Path,
        capsys: pytest.CaptureFixture) -> None:
    model_dir = _model_dir(fixtures, tmp_path, torchscript_archive)
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        load_model(model_dir)
    status, lines = _predict(model_dir, fixtures, tmp_path / "out", capsys)
    assert status == 2 and len(lines) == 1, lines
    assert str(model_dir / "models/best.ckpt") in lines[0] and "TorchScript" in lines[0]
    assert not jit_load_marker.exists() and not list(tmp_path.rglob("*.png"))


def _half_of_a_real_checkpoint(fixtures: Path) -> bytes:
    data = (fixtures / "tiny-biglama/models/best-weights-only.ckpt").read_bytes()
    return data[: len(data) // 2]


def _numpy_bytes(kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "npy":
        np.save(buffer, np.zeros((2, 2), np.float32))
    else:
        np.savez(buffer, weight=np.zeros((2, 2), np.float32))
    return buffer.getvalue()


BAD_CHECKPOINTS = {
    "zero-byte": (lambda fixtures: b"", "empty file"),
    "truncated": (_half_of_a_real_checkpoint, "damaged or foreign zip archive"),
    "garbage": (lambda fixtures: b"\x07garbage" * 8, "not a PyTorch file"),
    "npy": (lambda fixtures: _numpy_bytes("npy"), "NumPy .npy array"),
    "npz": (lambda fixtures: _numpy_bytes("npz"), "NumPy .npz archive"),
    "truncated-legacy-pickle": (lambda fixtures: b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M",
                                "truncated or damaged"),
}


@pytest.mark.parametrize("kind", list(BAD_CHECKPOINTS))
def test_unusable_checkpoint_is_one_line_naming_the_file_and_exit_2(
        fixtures: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture) -> None:
    make, reason = BAD_CHECKPOINTS[kind]
    model_dir = _model_dir(fixtures, tmp_path, make(fixtures))
    checkpoint = model_dir / "models/best.ckpt"
    with pytest.raises(CheckpointError, match=reason) as error:
        load_model(model_dir)
    assert str(error.value).startswith(f"{checkpoint}: ") and "\n" not in str(error.value)
    assert "expected a torch.save file" in str(error.value)
    status, lines = _predict(model_dir, fixtures, tmp_path / "out", capsys)
    assert status == 2 and lines == [f"lama predict: {error.value}"]


class _WritesAFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_unsafe_pickle_refusal_names_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hook": _WritesAFile(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"'(io|builtins)\.open'") as error:
        load_checkpoint_file(path)
    assert str(error.value).startswith(f"{path}: refusing to load")
    assert not marker.exists()


def test_a_build_opcode_cannot_change_an_allowed_function() -> None:
    """GLOBAL torch._utils._rebuild_tensor_v2, then BUILD (None, {'__defaults__': ()}): the global stays intact."""
    name = b"__defaults__"
    payload = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X" + len(name).to_bytes(4, "little") + name
               + b")s\x86b.")
    function = torch._utils._rebuild_tensor_v2
    defaults = function.__defaults__
    try:
        with contextlib.suppress(TypeError):  # the fresh wrapper refuses a state that is not its own
            RestrictedUnpickler(io.BytesIO(payload)).load()
        assert function.__defaults__ == defaults
    finally:
        function.__defaults__ = defaults


def test_official_checkpoint_still_loads_with_numpy_as_stubs_and_states_refuse_stubs(tmp_path: Path) -> None:
    path = tmp_path / "lightning-like.ckpt"
    torch.save({"state_dict": {"generator.w": torch.ones(2)}, "loops": np.arange(3)}, path)
    checkpoint = load_checkpoint_file(path)
    assert torch.equal(checkpoint["state_dict"]["generator.w"], torch.ones(2))
    assert "stub of numpy" in repr(checkpoint["loops"])
    assert np.array_equal(load_state_file(path)["loops"], np.arange(3))  # the exact numpy allow-list of RNG states
    torch.save({"x": np.load}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"numpy\.load"):
        load_state_file(path)


def test_alias_bomb_config_is_refused_within_a_second(fixtures: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    model_dir = _model_dir(fixtures, tmp_path, fixtures / "tiny-biglama/models/best.ckpt")
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    (model_dir / "config.yaml").write_text("\n".join(levels) + "\ngenerator: {kind: ffc_resnet}\n")
    started = time.perf_counter()
    with pytest.raises(ValueError, match="alias") as error:
        load_model(model_dir)
    assert time.perf_counter() - started < 1
    assert str(error.value).startswith(f"{model_dir / 'config.yaml'}: ")
    status, lines = _predict(model_dir, fixtures, tmp_path / "out", capsys)
    assert status == 2 and lines == [f"lama predict: {error.value}"]
