"""The run tracker: what a run holds, resuming, the rank guard, provenance tags."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import lama
from lama.tracking import (
    CONFIG_ARTIFACT,
    MODEL_DIR_ARTIFACT,
    MODEL_DIR_TAG,
    PARAM_VALUE_LIMIT,
    Tracker,
    is_rank_zero,
    run_tags,
)
from tests.conftest import REPO
from tests.tracking.conftest import artifact_paths, closed_port, history, model_dir

# MLflow's SQLite store trips a SQLAlchemy deprecation that is MLflow's to fix, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")


def test_run_tags_name_the_commit_the_dirt_and_the_dvc_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (repo / "file.txt").write_text("a")
    git("add", "file.txt")
    git("commit", "-q", "-m", "first")
    sha = git("rev-parse", "HEAD")
    monkeypatch.setenv("DVC_EXP_NAME", "puffy-daks")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    monkeypatch.setenv("DVC_STAGE", "train")
    monkeypatch.chdir(repo)

    tags = run_tags("train")
    assert tags["git.sha"] == sha and tags["mlflow.source.git.commit"] == sha
    assert tags["git.dirty"] == "false"
    assert tags["dvc.exp_name"] == "puffy-daks"
    assert tags["dvc.baseline_rev"] == "0" * 40
    assert tags["dvc.stage"] == "train"
    assert tags["stage"] == "train"
    assert tags["lama.version"] == lama.__version__
    assert tags["host"] == socket.gethostname()

    (repo / "file.txt").write_text("b")
    assert run_tags("train")["git.dirty"] == "true"


def test_run_tags_say_unknown_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outside = run_tags("eval", cwd=plain)
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))
    no_git = run_tags("eval", cwd=plain)
    for tags in (outside, no_git):
        assert tags["git.sha"] == "unknown" and tags["git.dirty"] == "unknown"
        assert "mlflow.source.git.commit" not in tags and "dvc.exp_name" not in tags
        assert tags["stage"] == "eval"


def test_rank_zero_follows_the_rank_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_rank_zero()
    monkeypatch.setenv("RANK", "0")
    assert is_rank_zero()
    monkeypatch.setenv("RANK", "1")
    assert not is_rank_zero()


def test_a_run_holds_params_tags_metrics_image_and_model_dir_reference(
    store: str, client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "puffy-daks")
    config = {"loss": {"kappa": 10, "alpha": 30}, "data": {"loader": {"batch_size": 4}}, "masks": ["thin", "thick"]}
    image = np.random.default_rng(0).random((16, 24, 3))
    directory = model_dir(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    records = tmp_path / "records"
    with Tracker(store, record_root=records) as tracker:
        run_id = tracker.start("lama-test", params=config, tags=run_tags("train", cwd=REPO), system_metrics=False)
        for step in range(3):
            tracker.log_metrics({"loss/total": 1.0 / (step + 1), "lr": np.float32(0.25)}, step=step * 10)
        tracker.log_image(image, key="val/inpainted", step=20)
        tracker.log_model_dir_reference(directory)
        tracker.log_artifact(notes, artifact_path="reports")
        with pytest.raises(ValueError):
            tracker.log_image(np.zeros((4, 4, 2)), key="val/bad", step=0)
        with pytest.raises(ValueError):
            tracker.log_image(np.zeros((4, 4, 3)), key="bad:key", step=0)
    assert not tracker.offline and not records.exists()

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "puffy-daks"
    assert run.data.params == {
        "loss.kappa": "10",
        "loss.alpha": "30",
        "data.loader.batch_size": "4",
        "masks.0": "thin",
        "masks.1": "thick",
    }
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert run.data.tags["git.sha"] == (sha or "unknown")
    assert run.data.tags["dvc.exp_name"] == "puffy-daks"
    assert run.data.tags["stage"] == "train"
    assert len(run.data.tags["params.hash"]) == 16
    assert [(step, value) for step, value, _ in history(client, run_id, "loss/total")] == [
        (0, 1.0),
        (10, 0.5),
        (20, pytest.approx(1 / 3)),
    ]
    assert [(step, value) for step, value, _ in history(client, run_id, "lr")] == [(0, 0.25), (10, 0.25), (20, 0.25)]

    paths = artifact_paths(client, run_id)
    pngs = [p for p in paths if p.startswith("images/val~inpainted+step+20+") and p.endswith(".png")]
    assert len(pngs) == 1
    with Image.open(client.download_artifacts(run_id, pngs[0], str(tmp_path))) as logged:
        np.testing.assert_array_equal(np.asarray(logged), np.rint(image * 255).astype(np.uint8))

    assert run.data.tags[MODEL_DIR_TAG] == str(directory.absolute())
    reference = json.loads(Path(client.download_artifacts(run_id, MODEL_DIR_ARTIFACT, str(tmp_path))).read_text())
    assert reference["path"] == str(directory.absolute()) and reference["uri"] == directory.absolute().as_uri()
    assert {"path": "models/best.ckpt", "bytes": 1000} in reference["files"]
    assert not [p for p in paths if p.endswith(".ckpt")]  # checkpoints stay in DVC
    assert "reports/notes.txt" in paths
    assert yaml.safe_load(Path(client.download_artifacts(run_id, CONFIG_ARTIFACT, str(tmp_path))).read_text()) == config

    database = Path(store[len("sqlite:///") :])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.startswith((database.parent / "mlartifacts").as_uri())


def test_long_params_are_truncated_visibly_and_the_full_config_is_an_artifact(
    store: str, client, tmp_path: Path
) -> None:
    config = {"data": {"paths": "p" * (PARAM_VALUE_LIMIT + 1000), "size": 256}}
    with Tracker(store, record_root=tmp_path) as tracker:
        run_id = tracker.start("lama-test", "long-params", params=config, system_metrics=False)
    params = client.get_run(run_id).data.params
    assert len(params["data.paths"]) == PARAM_VALUE_LIMIT and "truncated" in params["data.paths"]
    assert params["data.size"] == "256"
    logged = yaml.safe_load(Path(client.download_artifacts(run_id, CONFIG_ARTIFACT, str(tmp_path))).read_text())
    assert logged == config


def test_resuming_continues_the_same_run_and_its_metric_history(store: str, client, tmp_path: Path) -> None:
    config = {"loss": {"kappa": 10}}
    first = Tracker(store, record_root=tmp_path)
    run_id = first.start("lama-test", "resume", params=config, system_metrics=False)
    first.log_metrics({"loss": 3.0}, step=0)
    first.log_metrics({"loss": 2.0}, step=1)
    first.end("KILLED")
    assert client.get_run(run_id).info.status == "KILLED"

    second = Tracker(store, record_root=tmp_path)
    changed = {"loss": {"kappa": 20}, "extra": 1}
    assert second.start("lama-test", "resume", params=changed, resume_run_id=run_id, system_metrics=False) == run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    second.log_metrics({"loss": 1.0}, step=2)
    second.end()

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [(step, value) for step, value, _ in history(client, run_id, "loss")] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert run.data.params["loss.kappa"] == "10"  # MLflow params cannot change; the first value stays
    assert run.data.params["extra"] == "1"
    experiment_id = run.info.experiment_id
    assert len(client.search_runs([experiment_id], "attributes.run_name = 'resume'")) == 1


def test_a_tracker_on_another_rank_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    for uri in (f"sqlite:///{tmp_path / 'rank1.db'}", f"http://127.0.0.1:{closed_port()}"):
        with Tracker(uri, record_root=tmp_path / "records") as tracker:
            assert not tracker.enabled
            assert tracker.start("lama-test", "rank1", params={"a": 1}) is None
            tracker.log_metrics({"x": 1.0}, step=0)
            tracker.log_image(np.zeros((4, 4, 3), np.uint8), key="x", step=0)
            tracker.set_tag("k", "v")
            tracker.log_artifact(notes)
            tracker.log_model_dir_reference(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_system_metrics_are_logged_while_the_run_is_active(
    store: str, client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    tracker = Tracker(store, record_root=tmp_path)
    run_id = tracker.start("lama-test", "system-metrics", params={}, system_metrics=True)

    def system_keys() -> list[str]:
        return [key for key in client.get_run(run_id).data.metrics if key.startswith("system/")]

    deadline = time.monotonic() + 20  # the first sample is published after one interval; a busy machine is slower
    while not system_keys() and time.monotonic() < deadline:
        time.sleep(0.05)
    tracker.end()
    assert any(key.startswith("system/cpu") for key in system_keys())


def test_an_exception_inside_the_context_marks_the_run_failed(store: str, client, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), Tracker(store, record_root=tmp_path) as tracker:
        run_id = tracker.start("lama-test", "fails", system_metrics=False)
        raise RuntimeError("boom")
    assert client.get_run(run_id).info.status == "FAILED"
    with pytest.raises(RuntimeError, match="no active run"):
        tracker.log_metrics({"x": 1.0}, step=0)
