"""Resumable training state, saved so that a crash during a save never costs the last good state, and read back
so that no code runs from any of its files.

Each save is an ``accelerator.save_state`` (models, optimizers, every rank's RNG states) plus ``progress.json``
(``TrainProgress``) written into ``state/.partial-<step>/``, fsynced, renamed to ``state/step-<step>/`` and only then
named in ``state/latest`` (replaced atomically). A crash at any point leaves ``latest`` naming a complete state;
partial folders are removed by the next run. States travel (shared filesystems, DVC remotes, ``train.resume=DIR``),
so a resume first reads every file of the folder through ``lama.safe_load`` and refuses any other kind of file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from accelerate import Accelerator

from lama.files import atomic_write
from lama.safe_load import CheckpointError, check_safetensors_file, load_state_file

log = logging.getLogger(__name__)

LATEST = "latest"
PARTIAL_PREFIX = ".partial-"
PROGRESS_FILE = "progress.json"
# Where states written before progress.json hold TrainProgress (Accelerate's ``register_for_checkpointing``, which
# reads it back with weights_only=False: Accelerate is never given this file, it is read here instead).
LEGACY_PROGRESS_FILE = "custom_checkpoint_0.pkl"
CUSTOM_CHECKPOINT_PREFIX = "custom_checkpoint_"
SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".bin", ".pkl", ".pt")  # what Accelerate's save_state writes besides safetensors


@dataclass
class TrainProgress:
    """What the models and optimizers don't hold: how far the run is, its best score, its MLflow run, and every
    rank's data position (gathered before a save, since only the main process writes this object)."""

    step: int = 0
    best_value: float | None = None
    best_step: int | None = None
    tracking_run_id: str | None = None
    loader_positions: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: Any, source: str | Path = "progress") -> None:
        """Take the values of a saved progress; a key or type it never holds is a one-line error naming ``source``."""
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{source}: expected a mapping of {', '.join(_PROGRESS_TYPES)}")
        for key, value in state.items():
            expected = _PROGRESS_TYPES.get(key)
            if expected is None:
                raise CheckpointError(f"{source}: unknown key {key!r}; expected {', '.join(_PROGRESS_TYPES)}")
            if isinstance(value, bool) or not isinstance(value, expected[0]):
                raise CheckpointError(f"{source}: {key}={value!r}: expected {expected[1]}")
        if state.get("step", 0) < 0:
            raise CheckpointError(f"{source}: step={state['step']}: expected a step >= 0")
        if not all(isinstance(position, dict) for position in state.get("loader_positions", [])):
            raise CheckpointError(f"{source}: loader_positions: expected a list of mappings")
        for key, value in state.items():
            setattr(self, key, value)


# The JSON types of each field of TrainProgress (checked on load: a state's files may come from anywhere).
_PROGRESS_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "step": ((int,), "an integer"),
    "best_value": ((int, float, type(None)), "a number or null"),
    "best_step": ((int, type(None)), "an integer or null"),
    "tracking_run_id": ((str, type(None)), "a string or null"),
    "loader_positions": ((list,), "a list of loader positions"),
}


class CheckedState(NamedTuple):
    progress: Any  # the saved TrainProgress.state_dict(), not yet checked by TrainProgress.load_state_dict
    source: Path  # the file it came from
    files: list[Path]  # every file of the folder, each checked


def read_state(folder: Path) -> CheckedState:
    """Check every file of a state folder without running code from any; returns what it holds.

    Pickled files (optimizers, RNG states) are fully read through the training-state allow-list, safetensors
    headers are checked, and anything else (another kind of file, a sub-folder) is refused naming it."""
    found: dict[str, Any] = {}
    files = sorted(folder.iterdir())
    for path in files:
        if path.name == PROGRESS_FILE:
            try:
                found[PROGRESS_FILE] = json.loads(path.read_bytes())
            except (OSError, ValueError, RecursionError) as error:
                raise CheckpointError(f"{path}: not readable JSON ({error})") from None
        elif path.is_dir():
            raise CheckpointError(f"{path}: a folder; a training state holds only files")
        elif path.name.endswith(SAFETENSORS_SUFFIX):
            check_safetensors_file(path)
        elif path.name.endswith(PICKLE_SUFFIXES):
            loaded = load_state_file(path)
            if path.name == LEGACY_PROGRESS_FILE:
                found[LEGACY_PROGRESS_FILE] = loaded
        else:
            raise CheckpointError(f"{path}: not a file of a training state; expected {PROGRESS_FILE}, "
                                  f"*{SAFETENSORS_SUFFIX} or {'/'.join('*' + s for s in PICKLE_SUFFIXES)} files")
    for name in (PROGRESS_FILE, LEGACY_PROGRESS_FILE):
        if name in found:
            return CheckedState(found[name], folder / name, files)
    raise CheckpointError(f"{folder}: no {PROGRESS_FILE}; expected a state folder written by lama train")


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class StateStore:
    """The ``state/`` folder of a run: numbered complete states and a ``latest`` pointer."""

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep

    def latest(self) -> Path | None:
        """The last complete state, or None when the run has none yet."""
        pointer = self.root / LATEST
        if not pointer.is_file():
            return None
        path = self.root / pointer.read_text().strip()
        if not path.is_dir():
            raise FileNotFoundError(f"{pointer}: names {path.name}, which does not exist")
        return path

    def save(self, accelerator: Accelerator, step: int, progress: TrainProgress) -> Path:
        """Called on every rank; returns the new state's folder once all ranks wrote their part."""
        name = f"step-{step:09d}"
        partial, final = self.root / f"{PARTIAL_PREFIX}{name}", self.root / name
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (partial / PROGRESS_FILE).write_text(json.dumps(progress.state_dict(), indent=1) + "\n")
            _fsync_tree(partial)
            if final.exists():  # a state of this step from an earlier, interrupted attempt
                shutil.rmtree(final)
            os.replace(partial, final)
            _fsync_dir(self.root)
            atomic_write(self.root / LATEST, lambda handle: handle.write(f"{name}\n".encode()), durable=True)
            self.prune()
        accelerator.wait_for_everyone()
        return final

    def prune(self) -> None:
        """Keep the newest ``keep`` states (the one ``latest`` names among them) and drop partial folders."""
        latest = self.latest()
        states = sorted(path for path in self.root.glob("step-*") if path.is_dir())
        for path in states[: -self.keep]:
            if path != latest:
                shutil.rmtree(path)
        for path in self.root.glob(f"{PARTIAL_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def load(accelerator: Accelerator, folder: str | Path, progress: TrainProgress) -> None:
        """Restore models, optimizers, RNG states and ``progress`` from a state folder, every file checked first.

        Accelerate reads a view of the folder (links to its checked files) without ``custom_checkpoint_*.pkl``:
        it would read those with weights_only=False, and with the file present it expects a registered object. It
        reads the others with weights_only=True, so a file swapped between the check and the load runs no code
        either."""
        folder = Path(folder)
        checked = read_state(folder)
        with tempfile.TemporaryDirectory(prefix="lama-state-") as view:
            for path in checked.files:
                if not path.name.startswith(CUSTOM_CHECKPOINT_PREFIX):
                    os.symlink(path.resolve(), Path(view) / path.name)
            try:
                accelerator.load_state(view)
            except (RuntimeError, KeyError, ValueError, OSError) as error:  # the state of another model or run
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise CheckpointError(f"{folder}: does not fit this run's models and optimizers ({first})") from None
        progress.load_state_dict(checked.progress, checked.source)
