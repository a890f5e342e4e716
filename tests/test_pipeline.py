"""End to end: `dvc repro` of the sample pipeline in a fresh git repository, then `dvc exp run -S ...`, checked on
the reports, on DVC's metrics and experiments and on the MLflow runs.

The sample profile runs as shipped except for its budgets (4 training steps, 4 test images, two table mask sets and
one Fig. 6 resolution), set in a `tiny` profile inside the temporary repository, so that `dvc exp run` recomposes
the same thing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

TINY = """
profile: tiny
prepare: {train_count: 16, val_count: 4, test_count: 4, eval_sizes: [256, 320]}
data: {val_limit: 2, loader: {batch_size: 2, num_workers: 0}}
train: {steps: 4, save_every: 2, val_every: 2, log_every: 1, sample_every: 2, progress: false}
eval: {mask_sets: [thin_256, thick_256], resolution_sizes: [320], num_workers: 0, batch_size: 4}
tracking: {system_metrics: false}
sweep: {objective: closed-form, coordinates: [kappa], max_rounds: 1, steps: 2, val_every: 1, poll_seconds: 0.2}
"""


def run(command: list[str], cwd: Path, env: dict[str, str], stdout_only: bool = False) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout if stdout_only else result.stdout + result.stderr


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The working tree's files (no outputs) in a new git repository whose default profile is the tiny one."""
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        if (REPO / relative).is_file() and not relative.startswith(("tests/", "benchmarks/")):
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, repo / relative)
    profiles = repo / "configs" / "profile"
    (profiles / "tiny.yaml").write_text((profiles / "sample.yaml").read_text().replace("profile: sample\n", "") + TINY)
    config = repo / "configs" / "config.yaml"
    config.write_text(config.read_text().replace("  - profile: sample\n", "  - profile: tiny\n"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    for variable in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME", "DVC_ROOT"):
        env.pop(variable, None)
    run([sys.executable, "-m", "lama.cli", "params"], repo, env)
    for command in (["git", "init", "-q"], ["git", "config", "user.name", "LaMa Lab tests"],
                    ["git", "config", "user.email", "tests@localhost"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "pipeline"]):
        run(command, repo, env)
    return repo, env


def experiments(repo: Path, env: dict[str, str]) -> dict[str, dict]:
    """`dvc exp show --json` as {name or rev: {"params": ..., "metrics": {path: data}}}."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env, stdout_only=True))
    found: dict[str, dict] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and "params" in data:
                name = node.get("name") or data.get("name") or node.get("rev") or data.get("rev")
                found[name] = {"params": data["params"]["params.yaml"]["data"],
                               "metrics": {path: value.get("data", {}) for path, value in
                                           (data.get("metrics") or {}).items()}}
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(shown)
    return found


def test_dvc_repro_then_an_experiment_fill_reports_dvc_and_mlflow(pipeline_repo: tuple[Path, dict]) -> None:
    repo, env = pipeline_repo
    run(["dvc", "repro"], repo, env)

    # reports/: the tables filled from the evaluations, the figure, the sample grids.
    metrics = json.loads((repo / "metrics/eval/lama/thin_256.json").read_text())
    assert set(metrics) >= {"ssim", "psnr", "lpips_stand-in", "fid_stand-in"}
    report = json.loads((repo / "reports/report.json").read_text())
    fourier = report["tables"]["table1"]["rows"][0]["cells"]
    assert fourier["narrow_fid"]["ours"] == pytest.approx(metrics["fid_stand-in"])
    assert fourier["narrow_fid"]["stand_in"] is True
    wide = json.loads((repo / "metrics/eval/lama/thick_256.json").read_text())
    assert fourier["wide_lpips"]["ours"] == pytest.approx(wide["lpips_stand-in"])
    sizes = {point["size"] for points in report["figure"]["series"]["fid"].values() for point in points}
    assert sizes == {256, 320}
    assert (repo / "reports/fig6_resolution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "LaMa-Fourier" in (repo / "reports/tables.md").read_text()
    assert list((repo / "reports/samples").glob("*.png"))
    bins = json.loads((repo / "metrics/eval/lama/thick_256.bins.json").read_text())
    assert all("bin" in row and "ssim" in row for row in bins) and bins

    # DVC: metrics visible, nothing left to do.
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo, env, stdout_only=True))
    assert json.dumps(shown).count("lpips_stand-in") >= 3
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], repo, env)

    # MLflow: one training run with its params and its final scores.
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lama-lab")
    (baseline,) = client.search_runs([experiment.experiment_id])
    assert baseline.data.params["loss.mask_interp"] == "none" and baseline.info.run_name == "lama"
    assert baseline.data.metrics["eval.thin_256.ssim"] == pytest.approx(metrics["ssim"])
    assert baseline.data.metrics["eval.thick_320.lpips_stand-in"] > 0

    # Commit the run (dvc.lock, the outputs' .gitignore files) as the baseline, as a user would.
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "sample run"], repo, env)

    # An experiment: DVC recomposes params.yaml, reruns train -> report, and both sides record it.
    output = run(["dvc", "exp", "run", "-S", "loss.mask_interp=bicubic"], repo, env)
    assert "Running stage 'train@lama'" in output and "Running stage 'prepare'" not in output
    name = re.search(r"Ran experiment\(s\): (\S+)", output).group(1)
    shown = experiments(repo, env)
    assert shown[name]["params"]["loss"]["mask_interp"] == "bicubic"
    baseline_entry = next(entry for key, entry in shown.items() if key != name
                          and entry["params"]["loss"]["mask_interp"] == "none")
    path = "metrics/eval/lama/thick_256.json"
    assert shown[name]["metrics"][path]["ssim"] != baseline_entry["metrics"][path]["ssim"]

    runs = {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}
    (bicubic,) = [mlflow_run for run_id, mlflow_run in runs.items() if run_id != baseline.info.run_id]
    assert bicubic.data.tags["dvc.exp_name"] == name and bicubic.info.run_name == f"{name}/lama"
    assert bicubic.data.params["loss.mask_interp"] == "bicubic"
    assert bicubic.data.metrics["eval.thick_256.ssim"] == pytest.approx(shown[name]["metrics"][path]["ssim"])
    assert bicubic.data.metrics["eval.thick_256.ssim"] != baseline.data.metrics["eval.thick_256.ssim"]


def test_the_sweep_stage_runs_apart_from_the_default_target(pipeline_repo: tuple[Path, dict]) -> None:
    repo, env = pipeline_repo
    assert "sweep" not in run(["dvc", "repro", "--dry"], repo, env)  # not part of `dvc repro`
    output = run(["dvc", "repro", "sweep/dvc.yaml"], repo, env)
    assert "Running stage 'sweep/dvc.yaml:sweep'" in output and "Running stage 'train" not in output
    best = json.loads((repo / "reports/sweep/best.json").read_text())
    assert best["best"]["weights"]["kappa"] == 10.0 and best["best"]["value"] == 0.0  # the closed form's optimum
    assert [trial["weights"]["kappa"] for trial in best["trials"]] == [1.0, 10.0, 100.0]
    swept = (repo / "configs/loss/swept.yaml").read_text()
    assert "kappa: 10.0" in swept
    assert "configs/loss/swept.yaml" in run(["git", "status", "--porcelain"], repo, env)  # for git, not DVC's cache
    assert "up to date" in run(["dvc", "repro", "sweep/dvc.yaml"], repo, env)

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lama-lab").experiment_id])
    (parent,) = [run for run in runs if run.info.run_name == best["search"]]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(float(child.data.params["kappa"]) for child in children) == [1.0, 10.0, 100.0]
