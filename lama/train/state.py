"""Resumable training state, saved so that a crash during a save never costs the last good state.

Each save is an ``accelerator.save_state`` (models, optimizers, every rank's RNG states, and ``TrainProgress``)
written into ``state/.partial-<step>/``, fsynced, renamed to ``state/step-<step>/`` and only then named in
``state/latest`` (replaced atomically). A crash at any point leaves ``latest`` naming a complete state; partial
folders are removed by the next run.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from lama.files import atomic_write

log = logging.getLogger(__name__)

LATEST = "latest"
PARTIAL_PREFIX = ".partial-"


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

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


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

    def save(self, accelerator: Accelerator, step: int) -> Path:
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
