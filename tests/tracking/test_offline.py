"""The offline record: falling back to it when the server is unreachable or lost, and replaying it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lama.tracking import (
    CONFIG_ARTIFACT,
    MODEL_DIR_ARTIFACT,
    MODEL_DIR_TAG,
    PARAM_VALUE_LIMIT,
    Tracker,
    sync_offline_record,
)
from tests.tracking.conftest import artifact_paths, closed_port, fallback_warnings, history, model_dir

# MLflow's SQLite store trips a SQLAlchemy deprecation that is MLflow's to fix, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")


def test_an_unreachable_server_falls_back_to_a_record_that_syncs_once(
    store: str, client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lama.tracking")
    records = tmp_path / "records"
    config = {"loss": {"kappa": 10}, "long": "z" * (PARAM_VALUE_LIMIT + 10)}
    tracker = Tracker(f"http://127.0.0.1:{closed_port()}", record_root=records)
    run_id = tracker.start("lama-offline", "offline", params=config, tags={"stage": "train"})
    assert tracker.offline and run_id.startswith("offline-") and tracker.record_dir == records / run_id
    for step in range(4):
        tracker.log_metrics({"loss": 10.0 - step, "psnr": 20.0 + step}, step=step)
    pixels = np.full((8, 6, 3), 200, np.uint8)
    tracker.log_image(pixels, key="val/sample", step=3)
    tracker.set_tag("note", "offline")
    tracker.log_model_dir_reference(model_dir(tmp_path))
    tracker.end()
    assert len(fallback_warnings(caplog)) == 1

    record = records / run_id
    meta = json.loads((record / "run.json").read_text())
    assert meta["status"] == "FINISHED" and meta["experiment"] == "lama-offline" and meta["run_name"] == "offline"
    assert meta["params"]["loss.kappa"] == "10" and "truncated" in meta["params"]["long"]
    rows = [json.loads(line) for line in (record / "metrics.jsonl").read_text().splitlines()]
    assert sorted((r["key"], r["step"], r["value"]) for r in rows) == sorted(
        [("loss", s, 10.0 - s) for s in range(4)] + [("psnr", s, 20.0 + s) for s in range(4)]
    )
    assert (record / "artifacts" / CONFIG_ARTIFACT).is_file() and (record / "artifacts" / MODEL_DIR_ARTIFACT).is_file()

    synced = sync_offline_record(record, tracking_uri=store)
    run = client.get_run(synced)
    assert run.data.params == meta["params"]
    assert run.data.tags["note"] == "offline" and run.data.tags["stage"] == "train"
    assert run.data.tags[MODEL_DIR_TAG] == str((tmp_path / "model").absolute())
    assert run.info.status == "FINISHED"
    assert (run.info.start_time, run.info.end_time) == (meta["start_time"], meta["end_time"])
    for key in ("loss", "psnr"):
        expected = sorted((r["step"], r["value"], r["timestamp"]) for r in rows if r["key"] == key)
        assert history(client, synced, key) == expected
    paths = artifact_paths(client, synced)
    pngs = [p for p in paths if p.startswith("images/val~sample+step+3+") and p.endswith(".png")]
    assert len(pngs) == 1
    with Image.open(client.download_artifacts(synced, pngs[0], str(tmp_path))) as logged:
        np.testing.assert_array_equal(np.asarray(logged), pixels)
    full = yaml.safe_load(Path(client.download_artifacts(synced, CONFIG_ARTIFACT, str(tmp_path))).read_text())
    assert full == config

    assert sync_offline_record(record, tracking_uri=store) == synced
    for key in ("loss", "psnr"):
        assert len(client.get_metric_history(synced, key)) == 4
    assert len(artifact_paths(client, synced)) == len(paths)
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_a_server_lost_mid_run_continues_in_a_record_that_syncs_into_the_same_run(
    store: str, client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    caplog.set_level(logging.WARNING, logger="lama.tracking")

    def gone(*args, **kwargs):
        raise MlflowException("API request to http://tracking/api/2.0/mlflow/runs/log-batch failed with exception")

    tracker = Tracker(store, record_root=tmp_path / "records")
    run_id = tracker.start("lama-test", "lost", params={"a": 1}, system_metrics=False)
    tracker.log_metrics({"loss": 1.0}, step=0)
    with monkeypatch.context() as patch:
        for method in ("log_batch", "set_tag", "set_terminated", "log_artifact", "log_image"):
            patch.setattr(mlflow.MlflowClient, method, gone)
        tracker.log_metrics({"loss": 0.5}, step=1)
        tracker.log_metrics({"loss": 0.25}, step=2)
        tracker.set_tag("phase", "after")
        tracker.end()
    assert tracker.offline and tracker.record_dir == tmp_path / "records" / run_id
    assert len(fallback_warnings(caplog)) == 1
    assert client.get_run(run_id).info.status == "RUNNING"
    assert [step for step, _, _ in history(client, run_id, "loss")] == [0]

    assert sync_offline_record(tracker.record_dir) == run_id  # the record remembers where it was meant to go
    run = client.get_run(run_id)
    assert [(step, value) for step, value, _ in history(client, run_id, "loss")] == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert run.data.tags["phase"] == "after" and run.data.params == {"a": "1"}
    assert run.info.status == "FINISHED"


def test_resuming_an_offline_run_online_syncs_it_first_and_continues(store: str, client, tmp_path: Path) -> None:
    records = tmp_path / "records"
    offline = Tracker(f"http://127.0.0.1:{closed_port()}", record_root=records)
    offline_id = offline.start("lama-test", "offline-then-online", params={"a": 1})
    offline.log_metrics({"loss": 2.0}, step=0)
    offline.end("KILLED")

    online = Tracker(store, record_root=records)
    run_id = online.start(
        "lama-test", "offline-then-online", params={"a": 1}, resume_run_id=offline_id, system_metrics=False
    )
    assert not online.offline and run_id != offline_id
    online.log_metrics({"loss": 1.0}, step=1)
    online.end()
    assert [(step, value) for step, value, _ in history(client, run_id, "loss")] == [(0, 2.0), (1, 1.0)]
    assert client.get_run(run_id).info.status == "FINISHED"
