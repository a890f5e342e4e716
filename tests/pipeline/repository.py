"""A copy of the working tree's files (no outputs) as a new git repository, for end-to-end runs of the pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO


def run(command: list[str], cwd: Path, env: dict[str, str], stdout_only: bool = False) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout if stdout_only else result.stdout + result.stderr


def pipeline_repository(repo: Path, prepare: Callable[[Path], None] = lambda repo: None,
                        params: tuple[str, ...] = ()) -> dict[str, str]:
    """Copy the tracked and untracked files (not tests/ or benchmarks/) into ``repo``, let ``prepare`` edit them,
    compose params.yaml with ``params`` and commit everything; returns the environment the stages run in."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        if (REPO / relative).is_file() and not relative.startswith(("tests/", "benchmarks/")):
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, repo / relative)
    prepare(repo)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo)}
    for variable in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME", "DVC_ROOT"):
        env.pop(variable, None)
    run([sys.executable, "-m", "lama.cli", "params", *params], repo, env)
    for command in (["git", "init", "-q"], ["git", "config", "user.name", "LaMa Lab tests"],
                    ["git", "config", "user.email", "tests@localhost"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "pipeline"]):
        run(command, repo, env)
    return env
