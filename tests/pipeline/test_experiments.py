"""Reading the evaluations of saved DVC experiments without applying them, in a small DVC repository whose one
stage writes an evaluation file from a param."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lama.pipeline.experiments import experiment_evaluations, saved_experiments
from tests.report import evaluation

STAGE = """
import json, os, sys
os.makedirs("results/lama", exist_ok=True)
sys.path.insert(0, {tests!r})
from tests.report import evaluation
import yaml
interp = yaml.safe_load(open("params.yaml"))["mask_interp"]
data = evaluation("fourier", "thick", 128, 1.0, 0.5 if interp == "none" else 0.4, mask_interp=interp, name="lama")
open("results/lama/thick_128.json", "w").write(json.dumps(data))
open("results/lama/notes.json", "w").write("[1, 2]")  # not an evaluation: skipped
"""


def dvc(repo: Path, *arguments: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *arguments], cwd=repo, capture_output=True, text=True,
                            env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                 "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("experiments")
    (root / "results" / "lama").mkdir(parents=True)
    (root / "stage.py").write_text(STAGE.format(tests=str(Path(__file__).resolve().parents[2])))
    (root / "params.yaml").write_text("mask_interp: none\n")
    (root / "dvc.yaml").write_text(f"stages:\n  evaluate:\n    cmd: {sys.executable} stage.py\n"
                                   "    deps: [stage.py]\n    params: [mask_interp]\n    outs: [results/lama]\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], cwd=root,
                   check=True)
    dvc(root, "repro")
    dvc(root, "exp", "save", "--name", "baseline")
    dvc(root, "exp", "run", "-S", "mask_interp=bicubic", "--name", "bicubic")
    return root


def test_saved_experiments_are_read_without_applying_them(repo: Path) -> None:
    assert [name for name, _ in saved_experiments(repo)] == ["baseline", "bicubic"]
    # The workspace holds the bicubic experiment's outputs: that file is the workspace's, read once, not twice.
    found = experiment_evaluations(repo)
    assert [(item.experiment, item.mask_interp, item.metrics["lpips"]) for item in found] == [("baseline", "none", 0.5)]
    (only,) = found
    assert only.model_label == "lama [baseline]" and str(only.source) == "baseline:results/lama/thick_128.json"
    assert json.loads((repo / "results/lama/thick_128.json").read_text())["model"]["mask_interp"] == "bicubic"


def test_outside_a_dvc_repository_there_are_no_experiments(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(json.dumps(evaluation("fourier", "thick", 128, 1.0, 0.5)))
    assert saved_experiments(tmp_path) == [] and experiment_evaluations(tmp_path) == []
