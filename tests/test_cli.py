"""The ``lama`` command line itself: help without the heavy stack, the version, one spelling per flag, and the
training previews (``--print-config``, ``--dry-run``) that check a run without starting it."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lama.cli import evaluate_options, main, parse_arguments
from lama.eval.options import EvaluateOptions
from tests.conftest import REPO
from tests.train.conftest import TINY_GENERATOR

# What ``lama --help`` must not wait for: each takes from a tenth of a second (numpy) to seconds (torch) to import.
HEAVY = ("torch", "torchvision", "numpy", "cv2", "PIL", "scipy", "accelerate", "mlflow", "dvc", "kornia",
         "torchmetrics", "webdataset", "optuna", "pydantic", "onnx", "onnxruntime", "onnxscript")

HELP_SCRIPT = f"""
import argparse, contextlib, io, json, sys
from lama.cli import build_parser

HEAVY = {HEAVY!r}
loaded = {{}}
parser = build_parser()
loaded["build_parser()"] = [name for name in HEAVY if name in sys.modules]
commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
for command in [[], *([name] for name in commands)]:
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
        build_parser().parse_args([*command, "--help"])
    assert text.getvalue().startswith("usage: lama"), command
    loaded[" ".join(["lama", *command, "--help"])] = [name for name in HEAVY if name in sys.modules]
print(json.dumps(loaded))
"""


def test_help_of_every_command_loads_no_heavy_library() -> None:
    result = subprocess.run([sys.executable, "-c", HELP_SCRIPT], cwd=REPO, capture_output=True, text=True,
                            check=True)
    loaded = json.loads(result.stdout)
    assert len(loaded) > 10  # build_parser(), lama --help and one per command
    assert {step: modules for step, modules in loaded.items() if modules} == {}


def test_the_lama_entry_point_prints_help() -> None:
    result = subprocess.run([sys.executable, "-m", "lama", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: lama") and "--version" in result.stdout


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    tomllib = pytest.importorskip("tomllib")
    name = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code in (0, None)
    assert capsys.readouterr().out == f"lama {metadata.version(name)}\n"


EVALUATE = ["evaluate", "masks/thick", "predictions/thick", "results/thick.json"]


def test_evaluate_takes_n_jobs_and_bare_overrides_as_the_other_commands_do() -> None:
    old = parse_arguments([*EVALUATE, "--workers", "3", "--set", "model.name=tiny", "--set", "mask_set.size=256"])
    new = parse_arguments([*EVALUATE, "model.name=tiny", "mask_set.size=256", "--n-jobs", "3"])
    after_an_option = parse_arguments([*EVALUATE, "--n-jobs", "3", "model.name=tiny", "mask_set.size=256"])
    assert evaluate_options(old) == evaluate_options(new) == evaluate_options(after_an_option)
    assert evaluate_options(new).num_workers == 3
    assert evaluate_options(new).overrides == ["model.name=tiny", "mask_set.size=256"]
    assert evaluate_options(parse_arguments(EVALUATE)).num_workers == EvaluateOptions.num_workers


def test_prepare_takes_image_format_and_its_old_name() -> None:
    new = parse_arguments(["prepare", "embedded", "out", "--image-format", "png"])
    old = parse_arguments(["prepare", "embedded", "out", "--format", "png"])
    assert new.image_format == old.image_format == "png"


def test_key_values_may_follow_options_but_nothing_else_may() -> None:
    args = parse_arguments(["train", "run.yaml", "--dry-run", "train.steps=3"])
    assert args.dry_run and args.arguments == ["run.yaml", "train.steps=3"]
    for stray in ([*EVALUATE, "--n-jobs", "1", "stray-path"], ["masks", "thin_256", "in", "out", "--seed", "1", "a=b"]):
        with pytest.raises(SystemExit) as stop:
            parse_arguments(stray)
        assert stop.value.code == 2


def test_print_config_shows_the_composed_config_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from lama.train.preview import compose

    monkeypatch.chdir(tmp_path)
    arguments = ["train.steps=7", "loss.kappa=3", f"train.out_dir={tmp_path / 'run'}"]
    assert main(["train", "--print-config", *arguments]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["steps"] == 7 and printed["loss"]["kappa"] == 3
    assert printed == compose(arguments).to_dict()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("override", "key"), [("train.stepz=3", "stepz"), ("train.steps=-1", "train.steps"),
                                               ("loss.kappa=many", "kappa")])
def test_a_dry_run_with_a_bad_key_or_value_fails_in_one_line(
        override: str, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dry-run", override]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("lama train: ") and key in error
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared dataset of six small random images and a run config for a 94k-parameter generator on it."""
    from lama.data.prepare import PrepareConfig, prepare

    root = tmp_path_factory.mktemp("tiny-run")
    rng = np.random.RandomState(0)
    (root / "source").mkdir()
    for index in range(6):
        Image.fromarray(rng.randint(0, 256, (48, 56, 3), dtype=np.uint8)).save(root / "source" / f"{index}.png")
    prepare(PrepareConfig(source="folder", root=str(root / "source"), size=48, min_size=32, image_format="png",
                          shard_size=4, eval_sizes=[32]), root / "data", progress=False)
    config = {"generator": TINY_GENERATOR, "discriminator": {"ndf": 8, "n_layers": 3}, "loss": {"alpha": 0},
              "data": {"train": str(root / "data"),
                       "loader": {"batch_size": 2, "num_workers": 0, "crop_size": 32, "augment": "no_augs",
                                  "masks": "narrow"}},
              "train": {"steps": 3, "out_dir": str(root / "run")}}
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    return root


def _files(root: Path) -> dict[str, float]:
    return {str(path.relative_to(root)): path.stat().st_mtime for path in sorted(root.rglob("*"))}


def test_a_good_dry_run_summarises_the_run_and_writes_nothing(
        tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _files(tiny_run)
    assert main(["train", str(tiny_run / "run.yaml"), "--dry-run", "train.steps=5"]) == 0
    summary = capsys.readouterr().out
    assert "parameters" in summary and "2 shard(s)" in summary and "image 2x3x32x32" in summary
    assert "5 steps of 2 images" in summary and "step 0 (no state yet)" in summary and str(tiny_run / "run") in summary
    assert _files(tiny_run) == before
