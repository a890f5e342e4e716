"""The offline record: the local stand-in for an MLflow run while no server answers, and its later replay.

One folder per run, named by its run id (``offline-<hex>`` when no server ever gave one)::

    <record_root>/<run_id>/
        run.json        experiment, run_name, run_id, params, tags, start_time, end_time (ms), status,
                        tracking_uri it was meant for, and per tracking URI what has been synced there
        metrics.jsonl   {"key", "value", "step", "timestamp"} per line
        images.jsonl    {"key", "step", "timestamp", "file"} per line, the PNG files under images/
        images/
        artifacts/      logged files under their artifact paths (config.yaml, model_dir.json, ...)

:func:`sync_offline_record` replays a record with its original steps and timestamps.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lama.files import atomic_write
from lama.tracking.client import (
    DEFAULT_TRACKING_URI,
    METRICS_PER_BATCH,
    PARAMS_PER_BATCH,
    find_run,
    get_or_create_experiment_id,
    mlflow_client,
    reachable,
    resolve_tracking_uri,
)

log = logging.getLogger(__name__)

DEFAULT_RECORD_ROOT = Path("mlflow-offline")
RECORD_TAG = "lama.offline_record"
OFFLINE_PREFIX = "offline-"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
IMAGES_FILE = "images.jsonl"


def safe_artifact_path(artifact_path: str | None) -> str:
    """``artifact_path`` as a relative POSIX path; raises where it would leave the run's artifacts."""
    parts = Path(artifact_path or "").parts
    if any(part in ("..", "/") for part in parts) or (artifact_path or "").startswith("/"):
        raise ValueError(f"artifact_path must be relative and stay inside the run, got {artifact_path!r}")
    return "/".join(parts)


class OfflineRecord:
    """The local stand-in for one MLflow run while no tracking server can be reached (layout: the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.meta: dict[str, Any] = {}

    def exists(self) -> bool:
        return (self.dir / RUN_FILE).is_file()

    def load(self) -> dict[str, Any]:
        self.meta = json.loads((self.dir / RUN_FILE).read_text(encoding="utf-8"))
        return self.meta

    def save(self, keep_synced: bool = False) -> None:
        """Write ``run.json``; ``keep_synced`` keeps the sync state on disk, which a sync in another process may
        have advanced while a training was still recording."""
        if keep_synced and self.exists():
            self.meta["synced"] = json.loads((self.dir / RUN_FILE).read_text(encoding="utf-8")).get("synced", {})
        text = json.dumps(self.meta, indent=2, sort_keys=True) + "\n"
        atomic_write(self.dir / RUN_FILE, lambda handle: handle.write(text.encode("utf-8")), durable=True)

    def mend(self) -> None:
        """Cut a line torn by a killed process, so that appended lines start on a fresh line."""
        for name in (METRICS_FILE, IMAGES_FILE):
            path = self.dir / name
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                complete = text[: text.rfind("\n") + 1]
                if complete != text:
                    atomic_write(path, lambda handle, data=complete: handle.write(data.encode("utf-8")))

    def append(self, name: str, rows: Iterable[dict[str, Any]]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / name).open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(row) + "\n" for row in rows))

    def rows(self, name: str) -> list[dict[str, Any]]:
        """Complete lines only: a line being written when the process died is not replayed."""
        path = self.dir / name
        if not path.is_file():
            return []
        text = path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]

    def add_image(self, pixels: np.ndarray, key: str, step: int, timestamp: int) -> None:
        file = f"images/{timestamp}-{uuid.uuid4().hex[:12]}.png"
        atomic_write(self.dir / file, lambda handle: Image.fromarray(pixels).save(handle, format="PNG"))
        self.append(IMAGES_FILE, [{"key": key, "step": step, "timestamp": timestamp, "file": file}])

    def add_artifact(self, path: Path, artifact_path: str | None) -> None:
        """Copy as ``MlflowClient.log_artifact`` would place it: a folder keeps its name under ``artifact_path``."""
        target = self.dir / "artifacts" / safe_artifact_path(artifact_path)
        if path.is_dir():
            shutil.copytree(path, target / path.name, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / path.name)

    def artifact_files(self) -> dict[str, str]:
        """Relative path → size and modification time, to tell which artifacts changed since the last sync."""
        root = self.dir / "artifacts"
        if not root.is_dir():
            return {}
        files = sorted(path for path in root.rglob("*") if path.is_file())
        return {path.relative_to(root).as_posix(): f"{path.stat().st_size}:{path.stat().st_mtime_ns}" for path in files}


def sync_offline_record(record_dir: str | Path, tracking_uri: str | None = None) -> str:
    """Replay an offline record into a tracking server; returns the MLflow run id it went to.

    The target is ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the URI the record was meant for. A record
    that began as an online run continues that run where the target has it. What has been replayed is written into
    the record per target, so a second sync sends only what was added since (nothing, for a finished record).
    """
    record = OfflineRecord(Path(record_dir))
    if not record.exists():
        raise FileNotFoundError(f"no offline MLflow record at {record.dir} (missing {RUN_FILE})")
    meta = record.load()
    uri = resolve_tracking_uri(tracking_uri, default=meta.get("tracking_uri") or DEFAULT_TRACKING_URI)
    state = meta.setdefault("synced", {}).get(uri)
    metrics, images, artifacts = record.rows(METRICS_FILE), record.rows(IMAGES_FILE), record.artifact_files()
    tags = {**meta.get("tags", {}), RECORD_TAG: str(record.dir.absolute())}
    ending = None if meta.get("status", "RUNNING") == "RUNNING" else [meta["status"], meta.get("end_time")]
    if state is not None:
        pending_tags = {key: value for key, value in tags.items() if state["tags"].get(key) != value}
        pending_params = {key: value for key, value in meta.get("params", {}).items() if key not in state["params"]}
        pending_artifacts = {rel: stamp for rel, stamp in artifacts.items() if state["artifacts"].get(rel) != stamp}
        if not (
            pending_tags
            or pending_params
            or pending_artifacts
            or len(metrics) > state["metrics"]
            or len(images) > state["images"]
            or (ending is not None and ending != state["ending"])
        ):
            log.info("offline record %s is already synced to %s as run %s", record.dir, uri, state["run_id"])
            return state["run_id"]
    if not reachable(uri):
        raise ConnectionError(f"no MLflow tracking server answers at {uri}; offline record {record.dir} kept")
    client = mlflow_client(uri)
    if state is None:
        run = None
        recorded_id = meta.get("run_id", "")
        if recorded_id and not recorded_id.startswith(OFFLINE_PREFIX):
            run = find_run(client, recorded_id)
        if run is None:
            experiment_id = get_or_create_experiment_id(client, meta["experiment"], uri)
            run = client.create_run(
                experiment_id, start_time=meta.get("start_time"), tags=tags, run_name=meta.get("run_name")
            )
        state = {
            "run_id": run.info.run_id,
            "metrics": 0,
            "images": 0,
            "artifacts": {},
            "params": [],
            "tags": {},
            "ending": None,
        }
        meta["synced"][uri] = state
        record.save()  # before anything else can fail: a second sync must continue this run, not make another
    run_id = state["run_id"]
    _replay(client, record, state, metrics, images, artifacts, tags)
    if ending is not None and ending != state["ending"]:
        client.set_terminated(run_id, ending[0], ending[1])
        state["ending"] = ending
        record.save()
    log.info("offline record %s synced to %s as run %s", record.dir, uri, run_id)
    return run_id


def _replay(
    client: Any,
    record: OfflineRecord,
    state: dict[str, Any],
    metrics: list[dict[str, Any]],
    images: list[dict[str, Any]],
    artifacts: dict[str, str],
    tags: dict[str, str],
) -> None:
    """Send what ``state`` says the target lacks, saving the state after each part so a failed sync resumes."""
    from mlflow.entities import Metric, Param, RunTag

    run_id = state["run_id"]
    logged = client.get_run(run_id).data.params
    params = {key: value for key, value in record.meta.get("params", {}).items() if key not in state["params"]}
    changed = sorted(key for key, value in params.items() if key in logged and logged[key] != value)
    if changed:
        log.warning("run %s already has other values for %s; keeping them", run_id, ", ".join(changed))
    items = [(key, value) for key, value in params.items() if key not in logged]
    for begin in range(0, len(items), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=[Param(key, value) for key, value in items[begin : begin + PARAMS_PER_BATCH]])
    state["params"] = sorted({*state["params"], *params})
    items = [(key, value) for key, value in tags.items() if state["tags"].get(key) != value]
    for begin in range(0, len(items), PARAMS_PER_BATCH):
        client.log_batch(run_id, tags=[RunTag(key, value) for key, value in items[begin : begin + PARAMS_PER_BATCH]])
    state["tags"] = {**state["tags"], **dict(items)}
    record.save()
    while state["metrics"] < len(metrics):
        batch = metrics[state["metrics"] : state["metrics"] + METRICS_PER_BATCH]
        client.log_batch(run_id, metrics=[Metric(r["key"], r["value"], r["timestamp"], r["step"]) for r in batch])
        state["metrics"] += len(batch)
        record.save()
    while state["images"] < len(images):
        row = images[state["images"]]
        with Image.open(record.dir / row["file"]) as image:
            pixels = np.asarray(image)
        client.log_image(run_id, pixels, key=row["key"], step=row["step"], timestamp=row["timestamp"], synchronous=True)
        state["images"] += 1
        record.save()
    for rel, stamp in artifacts.items():
        if state["artifacts"].get(rel) == stamp:
            continue
        parent = Path(rel).parent.as_posix()
        client.log_artifact(run_id, str(record.dir / "artifacts" / rel), None if parent == "." else parent)
        state["artifacts"][rel] = stamp
        record.save()


def sync_offline_records(
    record_root: str | Path = DEFAULT_RECORD_ROOT, tracking_uri: str | None = None
) -> dict[str, str]:
    """Sync every record under ``record_root``; returns record folder name → run id. Raises after trying all
    when any failed, naming them."""
    root = Path(record_root)
    folders = sorted(path for path in root.iterdir() if (path / RUN_FILE).is_file()) if root.is_dir() else []
    synced: dict[str, str] = {}
    failed: list[str] = []
    for folder in folders:
        try:
            synced[folder.name] = sync_offline_record(folder, tracking_uri)
        except Exception as exc:
            log.error("offline record %s was not synced: %s", folder, exc)
            failed.append(f"{folder.name} ({exc})")
    if failed:
        raise RuntimeError(f"{len(failed)} offline record(s) under {root} were not synced: {'; '.join(failed)}")
    return synced
