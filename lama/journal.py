"""An append-only record of finished work, so that a long job killed part-way resumes where it stopped.

The first line is the job's identity (its parameters); each further line is one finished unit. A journal written
by a different job is an error rather than something to merge, and the line being written when the job was killed
is cut off so that new records start on a fresh line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TextIO

from lama.files import atomic_write


class Journal:
    """The journal at ``path`` of the job ``identity``; ``what`` names the job in error messages."""

    def __init__(self, path: Path, identity: dict, what: str) -> None:
        self.path = Path(path)
        self.identity = identity
        self.what = what
        self._handle: TextIO | None = None

    def records(self) -> list[dict]:
        """The units an interrupted run of the same job finished; empty when there is no journal."""
        if not self.path.is_file():
            return []
        text = self.path.read_text()
        complete = text[: text.rfind("\n") + 1]
        if complete != text:
            atomic_write(self.path, lambda handle: handle.write(complete.encode()))
        lines = complete.splitlines()
        if not lines:
            return []
        try:
            first = json.loads(lines[0])
            records = [json.loads(line) for line in lines[1:]]
        except json.JSONDecodeError:
            raise ValueError(f"{self.path}: unreadable journal of an interrupted {self.what}; "
                             "delete it to start over") from None
        if first != self.identity:
            raise ValueError(f"{self.path}: an interrupted {self.what} with other settings; "
                             "use an empty folder or delete it")
        return records

    def __enter__(self) -> Journal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a")
        if self.path.stat().st_size == 0:
            self._write(self.identity)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def append(self, record: dict) -> None:
        """Record one finished unit; synced at once, so neither a kill nor a machine crash loses it."""
        self._write(record)
        os.fsync(self._handle.fileno())

    def remove(self) -> None:
        """The job is complete and its results are recorded elsewhere."""
        self.path.unlink(missing_ok=True)

    def _write(self, record: dict) -> None:
        if self._handle is None:
            raise RuntimeError(f"{self.path}: journal is not open")
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
