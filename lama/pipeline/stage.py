"""How a stage script runs: params.yaml parsed once and checked whole, then the stage's body; bad input ends it
with one line and exit status 2."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from lama.config import ConfigError
from lama.files import atomic_write
from lama.pipeline.params import PipelineParams, load_params
from lama.progress import format_duration


def write_json(path: Path, value: object) -> None:
    atomic_write(path, lambda handle: handle.write((json.dumps(value, indent=2) + "\n").encode()))


def run_stage(name: str, body: Callable[[PipelineParams], int | None]) -> None:
    """Load and check the whole params.yaml, then run ``body``; a bad key, value or input ends with one line.

    The stage ends with one line of its duration on stderr (``stage train lama: done in 3 min 12 s``), named with
    its arguments so the entries of a matrix stage can be told apart in one log."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lama").setLevel(logging.INFO)
    started = time.monotonic()
    label = " ".join([name, *sys.argv[1:]])
    try:
        params = load_params()
        status = body(params) or 0
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"stage {name}: {error}", file=sys.stderr)
        status = 2
    except Exception:
        traceback.print_exc()  # here rather than at exit, so that the duration line comes after it
        status = 1
    except SystemExit as exiting:  # an exit inside the body: its status, then the same exit
        _print_end(label, started, exiting.code if isinstance(exiting.code, int) else int(exiting.code is not None))
        raise
    except KeyboardInterrupt:
        _print_end(label, started, None)
        raise
    _print_end(label, started, status)
    sys.exit(status)


def stage_end_line(label: str, seconds: float, status: int | None) -> str:
    """``stage masks test thick: done in 41 s``, ``failed after ... (exit status N)``, or ``stopped after ...``
    (``status`` None: interrupted)."""
    if status is None:
        return f"stage {label}: stopped after {format_duration(seconds)}"
    if status == 0:
        return f"stage {label}: done in {format_duration(seconds)}"
    return f"stage {label}: failed after {format_duration(seconds)} (exit status {status})"


def _print_end(label: str, started: float, status: int | None) -> None:
    if status == 0 and int(os.environ.get("RANK", "0")) != 0:  # one line per stage, not one per training process
        return
    print(stage_end_line(label, time.monotonic() - started, status), file=sys.stderr, flush=True)
