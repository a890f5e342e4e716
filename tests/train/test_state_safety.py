"""A training state from elsewhere (``train.resume=DIR``, a shared filesystem, a DVC remote) runs no code: every
file is checked before Accelerate reads any, and a refused file stops ``lama train`` with one line naming it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from lama.cli import main
from lama.safe_load import CheckpointError, load_state_file
from lama.train import load_config, train
from lama.train.state import LEGACY_PROGRESS_FILE, PROGRESS_FILE, TrainProgress, read_state
from tests.train.conftest import tiny_config


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _WritesAFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _config(embedded_data: Path, out_dir: Path, **train: object) -> dict:
    return tiny_config(embedded_data, out_dir, data={"val": None}, train={"steps": 2, **train},
                       tracking={"enabled": False})


@pytest.fixture(scope="module")
def saved_state(embedded_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state folder of a real two-step run."""
    out_dir = tmp_path_factory.mktemp("saved") / "run"
    train(load_config(base=_config(embedded_data, out_dir)))
    return out_dir / "state" / "step-000000002"


@pytest.fixture
def state(saved_state: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "state"
    shutil.copytree(saved_state, copy)
    return copy


def _resume_through_the_cli(embedded_data: Path, tmp_path: Path, state: Path,
                            capsys: pytest.CaptureFixture) -> tuple[int, list[str], str]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(embedded_data, tmp_path / "run")))
    status = main(["train", str(config), f"train.resume={state}", "train.steps=3"])
    err = capsys.readouterr().err
    return status, [line for line in err.splitlines() if line.startswith("lama train:")], err


def test_a_saved_state_holds_progress_as_json_and_every_file_reads_safely(saved_state: Path) -> None:
    names = sorted(path.name for path in saved_state.iterdir())
    assert PROGRESS_FILE in names and not [name for name in names if name.startswith("custom_checkpoint_")]
    checked = read_state(saved_state)
    assert checked.source == saved_state / PROGRESS_FILE and checked.progress["step"] == 2
    assert json.loads(checked.source.read_text()) == checked.progress
    assert [path.name for path in checked.files] == names


def _tamper_legacy_progress(state: Path, marker: Path) -> Path:
    (state / PROGRESS_FILE).unlink()  # as the states written before progress.json
    torch.save({"step": 2, "hook": _RunsShell(marker)}, state / LEGACY_PROGRESS_FILE)
    return state / LEGACY_PROGRESS_FILE


def _tamper_random_states(state: Path, marker: Path) -> Path:
    path = state / "random_states_0.pkl"
    torch.save({**load_state_file(path), "hook": _WritesAFile(marker)}, path)
    return path


def _tamper_optimizer(state: Path, marker: Path) -> Path:
    path = state / "optimizer.bin"
    torch.save({**load_state_file(path), "hook": _RunsShell(marker)}, path)
    return path


@pytest.mark.parametrize("tamper", [_tamper_legacy_progress, _tamper_random_states, _tamper_optimizer],
                         ids=["custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"])
def test_a_state_file_that_runs_code_stops_the_resume_with_one_line(
        embedded_data: Path, tmp_path: Path, state: Path, tamper, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"
    path = tamper(state, marker)
    status, lines, err = _resume_through_the_cli(embedded_data, tmp_path, state, capsys)
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"lama train: {path}: refusing to load")
    assert not marker.exists()
    assert not (tmp_path / "run" / "state").exists()  # nothing trained on top of a refused state


@pytest.mark.parametrize(("name", "content", "message"), [
    ("notes.txt", b"hello", "not a file of a training state"),
    (PROGRESS_FILE, b'{"step": "2"}', "step='2': expected an integer"),
    (PROGRESS_FILE, b'{"step": 2, "hook": 1}', "unknown key 'hook'"),
    ("optimizer.bin", b"", "empty file"),
    ("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "not a readable safetensors file"),
])
def test_an_unusable_state_file_is_named(embedded_data: Path, tmp_path: Path, state: Path, name: str,
                                         content: bytes, message: str, capsys: pytest.CaptureFixture) -> None:
    (state / name).write_bytes(content)
    status, lines, err = _resume_through_the_cli(embedded_data, tmp_path, state, capsys)
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"lama train: {state / name}: ") and message in lines[0]


def test_a_benign_state_of_the_earlier_layout_still_resumes(embedded_data: Path, tmp_path: Path,
                                                            state: Path) -> None:
    progress = json.loads((state / PROGRESS_FILE).read_text())
    (state / PROGRESS_FILE).unlink()
    torch.save(progress, state / LEGACY_PROGRESS_FILE)  # what Accelerate's register_for_checkpointing wrote
    result = train(load_config(base=_config(embedded_data, tmp_path / "run", steps=3, resume=str(state))))
    assert (result.status, result.step) == ("finished", 3)
    records = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [3]


def test_progress_checks_every_key_and_type() -> None:
    progress = TrainProgress()
    progress.load_state_dict({"step": 5, "best_value": 0.5, "loader_positions": [{"batches": 5}]}, "p.json")
    assert (progress.step, progress.best_value) == (5, 0.5)
    for bad, message in [({"step": True}, "step=True"), ({"step": -1}, "step=-1"), ([], "expected a mapping"),
                         ({"loader_positions": [1]}, "loader_positions")]:
        with pytest.raises(CheckpointError, match=message):
            progress.load_state_dict(bad, "p.json")
    assert progress.step == 5


def test_a_saved_run_config_that_is_an_alias_bomb_is_refused(embedded_data: Path, tmp_path: Path) -> None:
    saved = tmp_path / "run" / "train_config.yaml"
    saved.parent.mkdir()
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    saved.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train_config\.yaml: its aliases expand"):
        train(load_config(base=_config(embedded_data, tmp_path / "run", resume="same-config")))
