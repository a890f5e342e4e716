"""What later steps add to the MLflow run that trained a model: its final scores (evaluate), the model itself as
an artifact and a registered model version (the end of training), and the report's files (report).

The run is the one named in the model dir's :data:`TRACKING_REFERENCE`, written when the training started. These are
additions to a view: when the run cannot be reached (an offline training, a store that is gone) each returns None
with a warning and the files on disk stay the record.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lama.tracking.client import import_mlflow, is_rejected, mlflow_client, now_ms, reachable
from lama.tracking.flatten import TAG_VALUE_LIMIT, truncate
from lama.tracking.offline import OFFLINE_PREFIX
from lama.tracking.tracker import MODEL_DIR_TAG, TRACKING_REFERENCE, is_rank_zero

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"  # the model dir's files under the run's artifacts, in the official layout
REPORT_ARTIFACT = "report"
REGISTERED_MODEL_TAG = "lama.registered_model"
REGISTERED_MODEL_DESCRIPTION = ("LaMa model dirs in the official layout (config.yaml, models/best.ckpt), one version "
                                "per training; download one with mlflow.artifacts.download_artifacts('models:/...').")


@dataclass(frozen=True)
class TrackedRun:
    """The MLflow run a model dir points at, and a client of its store."""

    run_id: str
    uri: str
    experiment: str | None
    client: Any


def tracked_run(model_dir: str | Path, purpose: str) -> TrackedRun | None:
    """The reachable training run of ``model_dir``; None (with a warning naming ``purpose``) when there is none."""
    if not is_rank_zero():
        return None
    reference_file = Path(model_dir) / TRACKING_REFERENCE
    if not reference_file.is_file():
        log.warning("%s: no MLflow reference (was the training tracked?); %s not added to a run", reference_file,
                    purpose)
        return None
    reference = json.loads(reference_file.read_text())
    run_id, uri = reference.get("run_id"), reference.get("tracking_uri")
    if not run_id or reference.get("offline") or str(run_id).startswith(OFFLINE_PREFIX) or not reachable(uri):
        log.warning("the training run of %s is not reachable in MLflow (%s); %s not added to it", model_dir, uri,
                    purpose)
        return None
    return TrackedRun(run_id, uri, reference.get("experiment"), mlflow_client(uri))


def log_final_scores(model_dir: str | Path, scores: Mapping[str, float], tags: Mapping[str, str] | None = None,
                     ) -> str | None:
    """Add a model's evaluation scores to the run that trained it, so one run (one row of ``mlflow ui``) shows a
    model's params and final scores. Returns the run id, or None."""
    run = tracked_run(model_dir, "scores")
    if run is None:
        return None
    entities = import_mlflow().entities
    now = now_ms()
    try:
        run.client.log_batch(
            run.run_id,
            metrics=[entities.Metric(key, float(value), now, 0) for key, value in sorted(scores.items())],
            tags=[entities.RunTag(key, truncate(str(value), TAG_VALUE_LIMIT, "")) for key, value in
                  sorted((tags or {}).items())])
    except Exception as exc:  # the scores are on disk; MLflow is the comparison view, not the record
        log.warning("adding scores to MLflow run %s at %s failed (%s)", run.run_id, run.uri, exc)
        return None
    return run.run_id


def publish_model(model_dir: str | Path, files: Mapping[str, Path], name: str,
                  tags: Mapping[str, str] | None = None) -> str | None:
    """Log ``files`` (relative path in the model dir -> file) under the run's :data:`MODEL_ARTIFACT` and register
    them as a new version of the registered model ``name``, so ``models:/NAME/VERSION`` names this training for
    good, whatever later happens to the workspace's model dir. Returns that URI (the existing one when the run
    already has a version), or None."""
    run = tracked_run(model_dir, "the model")
    if run is None:
        return None
    try:
        published = run.client.get_run(run.run_id).data.tags.get(REGISTERED_MODEL_TAG)
        if published:  # a resumed training that had nothing left to do: the version exists
            return published
        with tempfile.TemporaryDirectory() as folder:
            staged = Path(folder) / MODEL_ARTIFACT
            for relative, source in files.items():
                (staged / relative).parent.mkdir(parents=True, exist_ok=True)
                (staged / relative).symlink_to(Path(source).absolute())
            run.client.log_artifacts(run.run_id, str(staged), MODEL_ARTIFACT)
        source_uri = f"{run.client.get_run(run.run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
        try:
            run.client.create_registered_model(name, description=REGISTERED_MODEL_DESCRIPTION)
        except Exception as exc:
            if not is_rejected(exc):  # RESOURCE_ALREADY_EXISTS: an earlier training registered the name
                raise
        version = run.client.create_model_version(name, source_uri, run_id=run.run_id, tags=dict(tags or {}))
        uri = f"models:/{name}/{version.version}"
        run.client.set_tag(run.run_id, MODEL_DIR_TAG, f"runs:/{run.run_id}/{MODEL_ARTIFACT}")
        run.client.set_tag(run.run_id, REGISTERED_MODEL_TAG, uri)
    except Exception as exc:  # the model dir is on disk and in DVC's cache either way
        log.warning("logging the model of %s to MLflow run %s at %s failed (%s)", model_dir, run.run_id, run.uri, exc)
        return None
    log.info("model of %s logged to MLflow as %s", model_dir, uri)
    return uri


def attach_report(model_dir: str | Path, files: Mapping[str, Path]) -> str | None:
    """Log report files (artifact path under :data:`REPORT_ARTIFACT` -> file) to the run that trained
    ``model_dir``, replacing an earlier report's files of the same names. Returns the run id, or None."""
    run = tracked_run(model_dir, "the report")
    if run is None:
        return None
    try:
        for relative, source in files.items():
            folder = str(Path(REPORT_ARTIFACT, relative).parent.as_posix())
            run.client.log_artifact(run.run_id, str(source), folder)
    except Exception as exc:
        log.warning("attaching the report to MLflow run %s at %s failed (%s)", run.run_id, run.uri, exc)
        return None
    return run.run_id
