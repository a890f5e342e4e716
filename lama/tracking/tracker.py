"""The run tracker: one MLflow run per stage execution, tagged so it can be found from DVC and back.

Only rank 0 logs, a resumed training continues its run, and tracking never stops a training: when the server
cannot be reached, at the start or part-way, the remaining calls go to an offline record (one warning).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import yaml

from lama import __version__
from lama.tracking.client import (
    METRICS_PER_BATCH,
    PARAMS_PER_BATCH,
    find_run,
    get_or_create_experiment_id,
    is_rejected,
    mlflow_client,
    now_ms,
    reachable,
    resolve_tracking_uri,
)
from lama.tracking.flatten import (
    CONFIG_ARTIFACT,
    PARAM_VALUE_LIMIT,
    TAG_VALUE_LIMIT,
    flatten_config,
    to_plain,
    truncate,
)
from lama.tracking.offline import (
    DEFAULT_RECORD_ROOT,
    METRICS_FILE,
    OFFLINE_PREFIX,
    OfflineRecord,
    safe_artifact_path,
    sync_offline_record,
)

log = logging.getLogger(__name__)

# Written by training into its out_dir: the MLflow run (id, URI) that later stages log a model's scores into.
TRACKING_REFERENCE = "tracking.json"
MODEL_DIR_ARTIFACT = "model_dir.json"
MODEL_DIR_TAG = "lama.model_dir"
STATUSES = ("FINISHED", "FAILED", "KILLED")
_IMAGE_KEY = re.compile(r"^[A-Za-z0-9_\-./ ]+$")
_DVC_ENV_TAGS = (
    ("DVC_EXP_NAME", "dvc.exp_name"),
    ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev"),
    ("DVC_STAGE", "dvc.stage"),
)
_MODEL_DIR_LISTING = 1000


def _git(args: list[str], cwd: str | Path | None) -> str | None:
    """Output of a git command, or None where git or the repository is missing."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def run_tags(stage: str, cwd: str | Path | None = None) -> dict[str, str]:
    """Provenance tags set explicitly, because inside DVC's temporary copies MLflow's own git detection misleads.

    The commit is that of the working directory (``cwd``); ``git.dirty`` counts changes to tracked files only.
    Without git, or outside a repository, the git tags say ``unknown``.
    """
    sha = _git(["rev-parse", "HEAD"], cwd)
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd) if sha else None
    tags = {
        "stage": stage,
        "lama.version": __version__,
        "host": socket.gethostname(),
        "git.sha": sha or "unknown",
        "git.dirty": "unknown" if status is None else str(bool(status)).lower(),
    }
    if sha:
        tags["mlflow.source.git.commit"] = sha
    for variable, tag in _DVC_ENV_TAGS:
        if os.environ.get(variable):
            tags[tag] = os.environ[variable]
    return tags


def is_rank_zero() -> bool:
    """Whether this process is the one that logs: rank 0 of torch.distributed when initialised, else of ``RANK``."""
    dist = sys.modules.get("torch.distributed")  # not imported means not initialised: no need to import torch
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return os.environ.get("RANK", "0").strip() in ("", "0")


def _as_uint8_image(image: Any) -> np.ndarray:
    """HW or HWC (1, 3 or 4 channels) uint8 pixels from uint8, bool or float-in-[0,1] arrays, or CHW/HWC tensors."""
    channels_first = hasattr(image, "detach")  # torch tensors come CHW, numpy arrays HWC
    if channels_first:
        image = image.detach().cpu()
        image = (image.float() if image.is_floating_point() else image).numpy()
    array = np.asarray(image)
    if channels_first and array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"an image must be HW or HWC with 1, 3 or 4 channels, got shape {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        return np.rint(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"integer image values must lie in [0, 255], got [{array.min()}, {array.max()}]")
        return array.astype(np.uint8)
    raise ValueError(f"unsupported image dtype {array.dtype}")


class Tracker:
    """One MLflow run of one stage, logged from rank 0 only, falling back to a local record when offline.

    Built on a rank other than 0 (see :func:`is_rank_zero`) every method is a no-op and ``start`` returns None.
    ``tracking_uri`` falls back to ``MLFLOW_TRACKING_URI``, then :data:`DEFAULT_TRACKING_URI`. As a context
    manager it ends the run FINISHED, or FAILED on an exception (KILLED on Ctrl-C).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        record_root: str | Path = DEFAULT_RECORD_ROOT,
        enabled: bool | None = None,
    ) -> None:
        self.enabled = is_rank_zero() if enabled is None else bool(enabled)
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.record_root = Path(record_root)
        self.run_id: str | None = None
        self._active = False
        self._client: Any = None
        self._record: OfflineRecord | None = None
        self._monitor: Any = None
        self._meta: dict[str, Any] = {}
        self._config: Any = {}
        self._rejected: set[str] = set()

    @property
    def offline(self) -> bool:
        """Whether calls now go to the local record rather than to MLflow."""
        return self._record is not None

    @property
    def record_dir(self) -> Path | None:
        """The local record's folder, once tracking has fallen back to one."""
        return None if self._record is None else self._record.dir

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
        else:
            self.end("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def start(
        self,
        experiment: str,
        run_name: str | None = None,
        params: Any = None,
        tags: Mapping[str, Any] | None = None,
        resume_run_id: str | None = None,
        system_metrics: bool = True,
    ) -> str | None:
        """Start (or with ``resume_run_id`` continue) a run; returns its id, which a resumed training passes back.

        ``params`` is the stage's config, nested or flat; it is logged flattened and whole as ``config.yaml``.
        ``run_name`` defaults to ``DVC_EXP_NAME``. A resumed run id may differ from ``resume_run_id`` when that
        named an offline record, which is then synced first and continued.
        """
        if not self.enabled:
            return None
        if self._active:
            raise RuntimeError(f"run {self.run_id} is still active; end() it before starting another")
        self._config = to_plain(params if params is not None else {})
        full = flatten_config(self._config, max_length=None)
        flat = {
            key: truncate(value, PARAM_VALUE_LIMIT, f"; full value in {CONFIG_ARTIFACT}")
            for key, value in full.items()
        }
        cut = sorted(key for key, value in full.items() if len(value) > PARAM_VALUE_LIMIT)
        if cut:
            log.warning(
                "params over %d chars are truncated in MLflow, whole in %s: %s",
                PARAM_VALUE_LIMIT,
                CONFIG_ARTIFACT,
                ", ".join(cut),
            )
        all_tags = {key: truncate(str(value), TAG_VALUE_LIMIT, "") for key, value in (tags or {}).items()}
        all_tags["params.hash"] = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]
        run_name = run_name or os.environ.get("DVC_EXP_NAME") or None
        self._meta = {
            "experiment": experiment,
            "run_name": run_name,
            "params": flat,
            "tags": all_tags,
            "tracking_uri": self.tracking_uri,
            "start_time": now_ms(),
            "end_time": None,
            "status": "RUNNING",
        }
        self.run_id, self._client, self._record, self._active = None, None, None, True
        if not reachable(self.tracking_uri):
            self._go_offline(f"no MLflow tracking server answers at {self.tracking_uri}", resume_run_id)
            return self.run_id
        try:
            self._start_online(experiment, run_name, flat, all_tags, resume_run_id)
        except Exception as exc:
            self._go_offline(f"starting the MLflow run at {self.tracking_uri} failed ({exc})", resume_run_id)
            return self.run_id
        self._guard("the config", self._log_config_online, lambda: None)
        if system_metrics and not self.offline:
            self._start_monitor(resumed=resume_run_id is not None)
        return self.run_id

    def _start_online(
        self, experiment: str, run_name: str | None, params: dict[str, str], tags: dict[str, str], resume: str | None
    ) -> None:
        client = mlflow_client(self.tracking_uri)
        run = None
        if resume is not None:
            record = OfflineRecord(self.record_root / resume)
            if record.exists():  # what an earlier, offline part of this training logged comes first
                resume = sync_offline_record(record.dir, self.tracking_uri)
            run = None if resume.startswith(OFFLINE_PREFIX) else find_run(client, resume)
            if run is None:
                log.warning(
                    "cannot resume MLflow run %s: not found at %s; starting a new run", resume, self.tracking_uri
                )
        if run is None:
            experiment_id = get_or_create_experiment_id(client, experiment, self.tracking_uri)
            run = client.create_run(experiment_id, tags=self._context_tags(tags), run_name=run_name)
            new_params = params
        else:
            client.update_run(run.info.run_id, status="RUNNING")
            logged = run.data.params
            changed = sorted(key for key, value in params.items() if key in logged and logged[key] != value)
            if changed:
                log.warning(
                    "MLflow params cannot change within a run; resumed run %s keeps its old values of %s",
                    run.info.run_id,
                    ", ".join(changed),
                )
            new_params = {key: value for key, value in params.items() if key not in logged}
        self._client, self.run_id = client, run.info.run_id
        self._guard("params and tags", lambda: self._log_batches(client, self.run_id, new_params, tags), lambda: None)

    @staticmethod
    def _context_tags(tags: dict[str, str]) -> dict[str, str]:
        """MLflow's automatic tags (user, source) under ours, as its fluent ``start_run`` would add them."""
        try:
            from mlflow.tracking.context.registry import resolve_tags

            return {key: str(value) for key, value in resolve_tags(tags).items()}
        except Exception:
            return dict(tags)

    @staticmethod
    def _log_batches(client: Any, run_id: str, params: Mapping[str, str], tags: Mapping[str, str]) -> None:
        from mlflow.entities import Param, RunTag

        items = list(params.items())
        for begin in range(0, len(items), PARAMS_PER_BATCH):
            client.log_batch(
                run_id, params=[Param(key, value) for key, value in items[begin : begin + PARAMS_PER_BATCH]]
            )
        items = list(tags.items())
        for begin in range(0, len(items), PARAMS_PER_BATCH):
            client.log_batch(
                run_id, tags=[RunTag(key, value) for key, value in items[begin : begin + PARAMS_PER_BATCH]]
            )

    def _log_config_online(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / CONFIG_ARTIFACT
            path.write_text(yaml.safe_dump(self._config, sort_keys=False), encoding="utf-8")
            self._client.log_artifact(self.run_id, str(path))

    def _start_monitor(self, resumed: bool) -> None:
        """MLflow's system metrics (CPU, memory, disk, network; GPU where pynvml is installed)."""
        if importlib.util.find_spec("psutil") is None:
            log.info("psutil is not installed: no system metrics for run %s", self.run_id)
            return
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            # Its INFO lines (start, stop, "Skip logging GPU metrics" on every machine without one) are noise in
            # every stage's log; its warnings still show.
            logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)

            monitor = SystemMetricsMonitor(self.run_id, resume_logging=resumed, tracking_uri=self.tracking_uri)
            monitor.start()
            self._monitor = monitor
        except Exception as exc:
            log.warning("system metrics are not logged for run %s: %s", self.run_id, exc)

    def _stop_monitor(self, wait: bool = True) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        if wait:
            monitor.finish()
        else:  # the server is gone: its last flush could only wait for timeouts
            threading.Thread(target=monitor.finish, name="stop-system-metrics", daemon=True).start()

    def _go_offline(self, reason: str, run_id: str | None = None) -> None:
        """Send this and all later calls of the run to the local record; the one warning a training shows."""
        self._stop_monitor(wait=False)
        self.run_id = self.run_id or run_id or OFFLINE_PREFIX + uuid.uuid4().hex
        record = OfflineRecord(self.record_root / self.run_id)
        if record.exists():  # an earlier offline part of the same training: continue it
            record.load()
            record.mend()
            record.meta["params"] = {**self._meta["params"], **record.meta.get("params", {})}
            record.meta["tags"] = {**record.meta.get("tags", {}), **self._meta["tags"]}
            record.meta.update(status="RUNNING", end_time=None, tracking_uri=self.tracking_uri)
        else:
            record.meta = {**self._meta, "run_id": self.run_id}
        record.dir.mkdir(parents=True, exist_ok=True)
        record.save(keep_synced=True)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / CONFIG_ARTIFACT
            path.write_text(yaml.safe_dump(self._config, sort_keys=False), encoding="utf-8")
            record.add_artifact(path, None)
        self._record, self._client = record, None
        log.warning(
            "%s; training goes on and run %s is recorded in %s (replay it with sync_offline_record)",
            reason,
            self.run_id,
            record.dir,
        )

    def _guard(self, what: str, online: Callable[[], Any], offline: Callable[[], Any]) -> None:
        """Do ``online``; when the server fails, fall back to the record and do ``offline`` instead."""
        if self._record is None:
            try:
                online()
                return
            except Exception as exc:
                if is_rejected(exc):  # warned once per kind of call, as the same call tends to repeat every step
                    level = logging.DEBUG if what in self._rejected else logging.WARNING
                    self._rejected.add(what)
                    log.log(level, "MLflow rejected %s for run %s and it is dropped: %s", what, self.run_id, exc)
                    return
                self._go_offline(f"MLflow tracking at {self.tracking_uri} failed while logging {what} ({exc})")
        offline()

    def _live(self, what: str) -> bool:
        if not self.enabled:
            return False
        if not self._active:
            raise RuntimeError(f"cannot log {what}: no active run (call start() first)")
        return True

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log scalar metrics at ``step`` (0-d tensors and numpy scalars are fine)."""
        if not self._live("metrics"):
            return
        timestamp = now_ms()
        rows = [
            {"key": key, "value": float(value), "step": int(step), "timestamp": timestamp}
            for key, value in metrics.items()
        ]

        def online() -> None:
            from mlflow.entities import Metric

            for begin in range(0, len(rows), METRICS_PER_BATCH):
                batch = [
                    Metric(r["key"], r["value"], r["timestamp"], r["step"])
                    for r in rows[begin : begin + METRICS_PER_BATCH]
                ]
                self._client.log_batch(self.run_id, metrics=batch)

        self._guard("metrics", online, lambda: self._record.append(METRICS_FILE, rows))

    def log_image(self, image: Any, key: str, step: int) -> None:
        """Add an image at ``step`` to the series ``key`` (HWC uint8 or float in [0,1]; CHW tensors are accepted)."""
        if not self._live("an image"):
            return
        if not _IMAGE_KEY.match(key):
            raise ValueError(f"image key {key!r} may only hold letters, digits, '_', '-', '.', ' ' and '/'")
        pixels, timestamp = _as_uint8_image(image), now_ms()
        self._guard(
            f"image {key!r}",
            lambda: self._client.log_image(
                self.run_id, pixels, key=key, step=int(step), timestamp=timestamp, synchronous=True
            ),
            lambda: self._record.add_image(pixels, key, int(step), timestamp),
        )

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file, or a folder under its own name, into the run's artifacts (below ``artifact_path``)."""
        if not self._live("an artifact"):
            return
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no artifact to log at {path}")
        safe_artifact_path(artifact_path)
        self._guard(
            f"artifact {path.name!r}",
            lambda: self._client.log_artifact(self.run_id, str(path), artifact_path),
            lambda: self._record.add_artifact(path, artifact_path),
        )

    def set_tag(self, key: str, value: Any) -> None:
        """Set one tag of the run (values over MLflow's limit end in a truncation marker)."""
        if not self._live("a tag"):
            return
        text = truncate(str(value), TAG_VALUE_LIMIT, "")
        self._meta["tags"][key] = text

        def offline() -> None:
            self._record.meta.setdefault("tags", {})[key] = text
            self._record.save(keep_synced=True)

        self._guard(f"tag {key!r}", lambda: self._client.set_tag(self.run_id, key, text), offline)

    def log_model_dir_reference(self, path: str | Path) -> None:
        """Point the run at the trained model dir without copying it: checkpoints are versioned by DVC.

        Sets the tag :data:`MODEL_DIR_TAG` to the absolute path (until the finished training's model is logged,
        ``lama.tracking.publish_model``) and logs :data:`MODEL_DIR_ARTIFACT` with the path,
        its ``file://`` URI and the files (with sizes) it held at that moment.
        """
        if not self._live("a model dir reference"):
            return
        directory = Path(path).absolute()
        files = sorted(item for item in directory.rglob("*") if item.is_file()) if directory.is_dir() else []
        reference = {
            "path": str(directory),
            "uri": directory.as_uri(),
            "exists": directory.is_dir(),
            "files": [
                {"path": item.relative_to(directory).as_posix(), "bytes": item.stat().st_size}
                for item in files[:_MODEL_DIR_LISTING]
            ],
            "files_total": len(files),
            "note": "checkpoints are versioned by DVC and not copied into MLflow",
        }
        if not directory.is_dir():
            log.warning("model dir %s does not exist; logging the reference anyway", directory)
        self.set_tag(MODEL_DIR_TAG, str(directory))
        with tempfile.TemporaryDirectory() as folder:
            file = Path(folder) / MODEL_DIR_ARTIFACT
            file.write_text(json.dumps(reference, indent=2) + "\n", encoding="utf-8")
            self.log_artifact(file)

    def end(self, status: str = "FINISHED") -> None:
        """End the run as FINISHED, FAILED or KILLED; a second call does nothing."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if not self.enabled or not self._active:
            return
        self._stop_monitor(wait=self._record is None)
        end_time = now_ms()

        def offline() -> None:
            self._record.meta.update(status=status, end_time=end_time)
            self._record.save(keep_synced=True)

        self._guard("the run's end", lambda: self._client.set_terminated(self.run_id, status, end_time), offline)
        self._active = False
