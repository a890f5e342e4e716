"""The MLflow client side: which store, whether it answers, its client and experiments.

``mlflow`` is imported on first use, because importing it takes about a second. Before that, telemetry is
switched off and MLflow's HTTP retries are shortened, in each case only where the environment does not already say
otherwise. This way a dead server costs seconds, where MLflow's defaults (7 retries, 120 s timeout) would cost
minutes. With a SQLite store the artifacts go next to the database (``mlartifacts/``), not wherever the process
runs (DVC runs experiments in temporary copies of the repository).
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
PROBE_TIMEOUT_S = 3.0
# The experiment tag by which the MLflow 3 UI chooses between its model-training and GenAI views.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT_KIND = "custom_model_development"
# Used where the environment does not set them (see the module docstring).
MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# Answers that mean "this call was wrong", not "the server is gone": the call is dropped and tracking stays online.
_REJECTED_CODES = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE", "BAD_REQUEST"}


def resolve_tracking_uri(tracking_uri: str | None = None, default: str = DEFAULT_TRACKING_URI) -> str:
    """The tracking URI to use: the argument, else ``MLFLOW_TRACKING_URI``, else ``default``."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory unless absolute)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).absolute()


def _artifact_location(uri: str, experiment: str) -> str | None:
    """For SQLite stores, the experiment's artifact folder beside the database; other stores choose their own."""
    database = _sqlite_path(uri)
    if database is None:
        return None
    folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment).strip("._") or "experiment"
    return (database.parent / ARTIFACTS_DIR / folder).as_uri()


def reachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether an HTTP tracking server answers at all (any HTTP status counts); in-process stores count as yes."""
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def import_mlflow() -> Any:
    """``mlflow``, imported after the environment defaults are in place."""
    for name, value in MLFLOW_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import mlflow

    return mlflow


def mlflow_client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``; a SQLite database's folder is created first."""
    database = _sqlite_path(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    return import_mlflow().MlflowClient(tracking_uri=uri)


def get_or_create_experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of the experiment ``name``, created (artifacts beside a SQLite database) where it does not exist, and
    marked as model training, so the MLflow UI opens it on its runs rather than its GenAI view."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT_KIND)
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_location(uri, name),
                                        tags={EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT_KIND})
    except Exception:  # another stage may have created it in the meantime
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def find_run(client: Any, run_id: str) -> Any:
    """The run ``run_id``, or None where the store does not have it."""
    try:
        return client.get_run(run_id)
    except Exception as exc:
        if getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def is_rejected(exc: BaseException) -> bool:
    """Whether MLflow refused the call itself (see ``_REJECTED_CODES``) rather than failing to answer."""
    return getattr(exc, "error_code", None) in _REJECTED_CODES


def now_ms() -> int:
    """The current time in milliseconds, as MLflow timestamps are."""
    return int(time.time() * 1000)
