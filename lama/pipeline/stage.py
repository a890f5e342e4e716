"""How a stage script runs: params.yaml parsed once and checked whole, then the stage's body; bad input ends it
with one line and exit status 2."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from lama.config import ConfigError
from lama.files import atomic_write
from lama.pipeline.params import PipelineParams, load_params


def write_json(path: Path, value: object) -> None:
    atomic_write(path, lambda handle: handle.write((json.dumps(value, indent=2) + "\n").encode()))


def run_stage(name: str, body: Callable[[PipelineParams], int | None]) -> None:
    """Load and check the whole params.yaml, then run ``body``; a bad key, value or input ends with one line."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lama").setLevel(logging.INFO)
    try:
        params = load_params()
        status = body(params)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"stage {name}: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)
