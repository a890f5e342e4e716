"""What later steps add to a training's MLflow run: the model as an artifact and a registered version that
``models:/`` resolves, the report's files, and scores; and the experiment opening as a training experiment."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lama.tracking import (
    MODEL_ARTIFACT,
    MODEL_DIR_TAG,
    REGISTERED_MODEL_TAG,
    TRACKING_REFERENCE,
    Tracker,
    attach_report,
    log_final_scores,
    publish_model,
)
from lama.tracking.client import EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT_KIND
from tests.tracking.conftest import artifact_paths, model_dir


def trained(store: str, tmp_path: Path, experiment: str = "models") -> tuple[Path, str]:
    """A finished tracked run and a model dir whose reference names it, as a training leaves them."""
    directory = model_dir(tmp_path)
    with Tracker(tracking_uri=store, record_root=tmp_path / "offline") as tracker:
        run_id = tracker.start(experiment, "lama", {"loss": {"kappa": 10}})
        tracker.log_model_dir_reference(directory)
    (directory / TRACKING_REFERENCE).write_text(json.dumps({"run_id": run_id, "tracking_uri": store,
                                                            "experiment": experiment, "offline": False}))
    return directory, run_id


def test_a_finished_training_is_a_registered_model_version_that_models_uris_download(
        store: str, client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    first, first_id = trained(store, tmp_path / "a")
    second, second_id = trained(store, tmp_path / "b")
    files = {"config.yaml": first / "config.yaml", "models/best.ckpt": first / "models" / "best.ckpt"}
    assert publish_model(first, files, "models.lama", {"dvc.exp_name": "baseline"}) == "models:/models.lama/1"
    (second / "models" / "best.ckpt").write_bytes(b"\1" * 10)
    files = {"config.yaml": second / "config.yaml", "models/best.ckpt": second / "models" / "best.ckpt"}
    assert publish_model(second, files, "models.lama") == "models:/models.lama/2"
    assert publish_model(second, files, "models.lama") == "models:/models.lama/2"  # once per run

    assert sorted(artifact_paths(client, first_id, MODEL_ARTIFACT)) == ["model/config.yaml", "model/models/best.ckpt"]
    run = client.get_run(first_id)
    assert run.data.tags[MODEL_DIR_TAG] == f"runs:/{first_id}/model"  # not a workspace path that can go stale
    assert run.data.tags[REGISTERED_MODEL_TAG] == "models:/models.lama/1"
    version = client.get_model_version("models.lama", "1")
    assert version.run_id == first_id and version.tags == {"dvc.exp_name": "baseline"}

    # The workspace's model dir is retrained: version 1 still holds the first training's files.
    (first / "models" / "best.ckpt").write_bytes(b"retrained")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    downloaded = Path(mlflow.artifacts.download_artifacts("models:/models.lama/1", dst_path=str(tmp_path / "dl")))
    assert (downloaded / "models" / "best.ckpt").read_bytes() == b"\0" * 1000
    assert (downloaded / "config.yaml").read_text() == "generator: {}\n"
    downloaded = Path(mlflow.artifacts.download_artifacts(f"runs:/{second_id}/model", dst_path=str(tmp_path / "r")))
    assert (downloaded / "models" / "best.ckpt").read_bytes() == b"\1" * 10


def test_the_report_and_scores_join_the_training_run(store: str, client, tmp_path: Path) -> None:
    directory, run_id = trained(store, tmp_path)
    report = tmp_path / "reports"
    (report / "samples").mkdir(parents=True)
    (report / "tables.md").write_text("# tables\n")
    (report / "samples" / "thick_128.png").write_bytes(b"png")
    files = {"tables.md": report / "tables.md", "samples/thick_128.png": report / "samples" / "thick_128.png"}
    assert attach_report(directory, files) == run_id
    (report / "tables.md").write_text("# tables, again\n")
    assert attach_report(directory, files) == run_id  # a rerun replaces the files
    assert sorted(artifact_paths(client, run_id, "report")) == ["report/samples/thick_128.png", "report/tables.md"]
    downloaded = Path(client.download_artifacts(run_id, "report/tables.md", str(tmp_path / "dl")))
    assert downloaded.read_text() == "# tables, again\n"
    assert log_final_scores(directory, {"eval.thick_128.ssim": 0.5}) == run_id
    assert client.get_run(run_id).data.metrics["eval.thick_128.ssim"] == 0.5


def test_without_a_reachable_run_nothing_is_added_and_one_warning_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = model_dir(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert publish_model(directory, {"config.yaml": directory / "config.yaml"}, "x") is None
    assert [record.getMessage() for record in caplog.records] == [
        f"{directory / TRACKING_REFERENCE}: no MLflow reference (was the training tracked?); the model not added to "
        "a run"]


def test_experiments_open_as_training_experiments(store: str, client, tmp_path: Path) -> None:
    trained(store, tmp_path, experiment="kind")
    assert client.get_experiment_by_name("kind").tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT_KIND
    # Made before the tag existed: the next run marks it.
    client.create_experiment("older", artifact_location=(tmp_path / "older-artifacts").as_uri())
    trained(store, tmp_path / "older", experiment="older")
    assert client.get_experiment_by_name("older").tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT_KIND
