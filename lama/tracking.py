"""MLflow tracking for the pipeline: one run per stage execution, tagged so it can be found from DVC and back.

Why a module of its own rather than calling ``mlflow`` or Accelerate's tracker directly:

- Only rank 0 may log. A :class:`Tracker` built on any other rank does nothing, so callers cannot get it wrong.
- Nested configs become dotted params (``loss.kappa``, ``data.loader.batch_size``). A value over MLflow's length
  limit is cut with a visible marker and the whole config is logged as ``config.yaml``; Accelerate's tracker drops
  such values silently.
- Tracking never stops a training. When the server cannot be reached, at the start or part-way, the remaining calls
  go to a local record (one warning), and :func:`sync_offline_record` replays it later with the original steps and
  timestamps.
- A resumed training continues its MLflow run (``resume_run_id``), so metric history and system metrics carry on.
- With a SQLite store the artifacts go next to the database (``mlartifacts/``), not wherever the process runs
  (DVC runs experiments in temporary copies of the repository).

``mlflow`` is imported on first use, because importing it takes about a second. Before that, telemetry is
switched off and MLflow's HTTP retries are shortened, in each case only where the environment does not already say
otherwise. This way a dead server costs seconds, where MLflow's defaults (7 retries, 120 s timeout) would cost
minutes.

Offline record, one folder per run named by its run id (``offline-<hex>`` when no server ever gave one)::

    <record_root>/<run_id>/
        run.json        experiment, run_name, run_id, params, tags, start_time, end_time (ms), status,
                        tracking_uri it was meant for, and per tracking URI what has been synced there
        metrics.jsonl   {"key", "value", "step", "timestamp"} per line
        images.jsonl    {"key", "step", "timestamp", "file"} per line, the PNG files under images/
        images/
        artifacts/      logged files under their artifact paths (config.yaml, model_dir.json, ...)
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import yaml
from PIL import Image

from lama import __version__
from lama.files import atomic_write

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# Written by training into its out_dir: the MLflow run (id, URI) that later stages log a model's scores into.
TRACKING_REFERENCE = "tracking.json"
DEFAULT_RECORD_ROOT = Path("mlflow-offline")
ARTIFACTS_DIR = "mlartifacts"
# MLflow's limits (mlflow.utils.validation): longer values are rejected unless MLFLOW_TRUNCATE_LONG_VALUES is set.
PARAM_VALUE_LIMIT = 6000
TAG_VALUE_LIMIT = 8000
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
CONFIG_ARTIFACT = "config.yaml"
MODEL_DIR_ARTIFACT = "model_dir.json"
MODEL_DIR_TAG = "lama.model_dir"
RECORD_TAG = "lama.offline_record"
OFFLINE_PREFIX = "offline-"
STATUSES = ("FINISHED", "FAILED", "KILLED")
PROBE_TIMEOUT_S = 3.0
# Used where the environment does not set them (see the module docstring).
MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# Answers that mean "this call was wrong", not "the server is gone": the call is dropped and tracking stays online.
_REJECTED_CODES = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE", "BAD_REQUEST"}
_IMAGE_KEY = re.compile(r"^[A-Za-z0-9_\-./ ]+$")
_RUN_FILE = "run.json"
_METRICS_FILE = "metrics.jsonl"
_IMAGES_FILE = "images.jsonl"
_DVC_ENV_TAGS = (
    ("DVC_EXP_NAME", "dvc.exp_name"),
    ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev"),
    ("DVC_STAGE", "dvc.stage"),
)
_MODEL_DIR_LISTING = 1000


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers: configs, tags, ranks, URIs


def _plain(value: Any) -> Any:
    """Plain dicts, lists and scalars from OmegaConf configs, dataclasses, paths and enums."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return _plain(OmegaConf.to_container(value, resolve=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _truncate(text: str, limit: int | None, where: str) -> str:
    """``text`` cut to ``limit`` characters, ending in a marker that says it was cut and where the rest is."""
    if limit is None or len(text) <= limit:
        return text
    marker = f" ...[truncated from {len(text)} chars{where}]"
    return text[: max(limit - len(marker), 0)] + marker


def flatten_config(mapping: Any, max_length: int | None = PARAM_VALUE_LIMIT) -> dict[str, str]:
    """Dotted-key string params (``loss.kappa``, ``masks.kinds.0``) from a nested config, as MLflow needs them.

    Values longer than ``max_length`` end in a visible truncation marker (never dropped); ``None`` keeps them whole.
    Empty containers stay as ``{}`` / ``[]`` so that their keys are not lost.
    """
    plain = _plain(mapping)
    if not isinstance(plain, dict):
        raise TypeError(f"flatten_config needs a mapping, dataclass or OmegaConf config, got {type(mapping).__name__}")
    flat: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict) and value:
            for name, item in value.items():
                walk(item, f"{key}.{name}" if key else name)
        elif isinstance(value, list) and value:
            for index, item in enumerate(value):
                walk(item, f"{key}.{index}" if key else str(index))
        else:
            flat[key] = "{}" if value == {} else "[]" if value == [] else str(value)

    walk(plain, "")
    return {key: _truncate(value, max_length, f"; full value in {CONFIG_ARTIFACT}") for key, value in flat.items()}


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


def _reachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
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


def _mlflow() -> Any:
    """``mlflow``, imported after the environment defaults are in place."""
    for name, value in MLFLOW_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import mlflow

    return mlflow


def _client(uri: str) -> Any:
    database = _sqlite_path(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    return _mlflow().MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_location(uri, name))
    except Exception:  # another stage may have created it in the meantime
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _rejected(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) in _REJECTED_CODES


def _now_ms() -> int:
    return int(time.time() * 1000)


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


def _safe_artifact_path(artifact_path: str | None) -> str:
    parts = Path(artifact_path or "").parts
    if any(part in ("..", "/") for part in parts) or (artifact_path or "").startswith("/"):
        raise ValueError(f"artifact_path must be relative and stay inside the run, got {artifact_path!r}")
    return "/".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# The offline record


class _Record:
    """The local stand-in for one MLflow run while no tracking server can be reached (layout: module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.meta: dict[str, Any] = {}

    def exists(self) -> bool:
        return (self.dir / _RUN_FILE).is_file()

    def load(self) -> dict[str, Any]:
        self.meta = json.loads((self.dir / _RUN_FILE).read_text(encoding="utf-8"))
        return self.meta

    def save(self, keep_synced: bool = False) -> None:
        """Write ``run.json``; ``keep_synced`` keeps the sync state on disk, which a sync in another process may
        have advanced while a training was still recording."""
        if keep_synced and self.exists():
            self.meta["synced"] = json.loads((self.dir / _RUN_FILE).read_text(encoding="utf-8")).get("synced", {})
        text = json.dumps(self.meta, indent=2, sort_keys=True) + "\n"
        atomic_write(self.dir / _RUN_FILE, lambda handle: handle.write(text.encode("utf-8")), durable=True)

    def mend(self) -> None:
        """Cut a line torn by a killed process, so that appended lines start on a fresh line."""
        for name in (_METRICS_FILE, _IMAGES_FILE):
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
        self.append(_IMAGES_FILE, [{"key": key, "step": step, "timestamp": timestamp, "file": file}])

    def add_artifact(self, path: Path, artifact_path: str | None) -> None:
        """Copy as ``MlflowClient.log_artifact`` would place it: a folder keeps its name under ``artifact_path``."""
        target = self.dir / "artifacts" / _safe_artifact_path(artifact_path)
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


# ---------------------------------------------------------------------------------------------------------------
# The tracker


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
        self._record: _Record | None = None
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
        self._config = _plain(params if params is not None else {})
        full = flatten_config(self._config, max_length=None)
        flat = {
            key: _truncate(value, PARAM_VALUE_LIMIT, f"; full value in {CONFIG_ARTIFACT}")
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
        all_tags = {key: _truncate(str(value), TAG_VALUE_LIMIT, "") for key, value in (tags or {}).items()}
        all_tags["params.hash"] = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]
        run_name = run_name or os.environ.get("DVC_EXP_NAME") or None
        self._meta = {
            "experiment": experiment,
            "run_name": run_name,
            "params": flat,
            "tags": all_tags,
            "tracking_uri": self.tracking_uri,
            "start_time": _now_ms(),
            "end_time": None,
            "status": "RUNNING",
        }
        self.run_id, self._client, self._record, self._active = None, None, None, True
        if not _reachable(self.tracking_uri):
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
        client = _client(self.tracking_uri)
        run = None
        if resume is not None:
            record = _Record(self.record_root / resume)
            if record.exists():  # what an earlier, offline part of this training logged comes first
                resume = sync_offline_record(record.dir, self.tracking_uri)
            run = None if resume.startswith(OFFLINE_PREFIX) else self._find_run(client, resume)
            if run is None:
                log.warning(
                    "cannot resume MLflow run %s: not found at %s; starting a new run", resume, self.tracking_uri
                )
        if run is None:
            experiment_id = _experiment_id(client, experiment, self.tracking_uri)
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
    def _find_run(client: Any, run_id: str) -> Any:
        try:
            return client.get_run(run_id)
        except Exception as exc:
            if getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

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
        record = _Record(self.record_root / self.run_id)
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
                if _rejected(exc):  # warned once per kind of call, as the same call tends to repeat every step
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
        timestamp = _now_ms()
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

        self._guard("metrics", online, lambda: self._record.append(_METRICS_FILE, rows))

    def log_image(self, image: Any, key: str, step: int) -> None:
        """Add an image at ``step`` to the series ``key`` (HWC uint8 or float in [0,1]; CHW tensors are accepted)."""
        if not self._live("an image"):
            return
        if not _IMAGE_KEY.match(key):
            raise ValueError(f"image key {key!r} may only hold letters, digits, '_', '-', '.', ' ' and '/'")
        pixels, timestamp = _as_uint8_image(image), _now_ms()
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
        _safe_artifact_path(artifact_path)
        self._guard(
            f"artifact {path.name!r}",
            lambda: self._client.log_artifact(self.run_id, str(path), artifact_path),
            lambda: self._record.add_artifact(path, artifact_path),
        )

    def set_tag(self, key: str, value: Any) -> None:
        """Set one tag of the run (values over MLflow's limit end in a truncation marker)."""
        if not self._live("a tag"):
            return
        text = _truncate(str(value), TAG_VALUE_LIMIT, "")
        self._meta["tags"][key] = text

        def offline() -> None:
            self._record.meta.setdefault("tags", {})[key] = text
            self._record.save(keep_synced=True)

        self._guard(f"tag {key!r}", lambda: self._client.set_tag(self.run_id, key, text), offline)

    def log_model_dir_reference(self, path: str | Path) -> None:
        """Point the run at the trained model dir without copying it: checkpoints are versioned by DVC.

        Sets the tag :data:`MODEL_DIR_TAG` to the absolute path and logs :data:`MODEL_DIR_ARTIFACT` with the path,
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
        end_time = _now_ms()

        def offline() -> None:
            self._record.meta.update(status=status, end_time=end_time)
            self._record.save(keep_synced=True)

        self._guard("the run's end", lambda: self._client.set_terminated(self.run_id, status, end_time), offline)
        self._active = False


def log_final_scores(model_dir: str | Path, scores: Mapping[str, float], tags: Mapping[str, str] | None = None,
                     ) -> str | None:
    """Add a model's evaluation scores to the MLflow run that trained it, named in ``model_dir``'s
    :data:`TRACKING_REFERENCE`, so one run (one row of ``mlflow ui``) shows a model's params and final scores.

    Returns the run id, or None (with a warning) when there is no reference, the training was tracked offline, or
    the store cannot be reached: the scores stay in the evaluation's own files either way."""
    if not is_rank_zero():
        return None
    reference_file = Path(model_dir) / TRACKING_REFERENCE
    if not reference_file.is_file():
        log.warning("%s: no MLflow reference (was the training tracked?); scores are not added to a run",
                    reference_file)
        return None
    reference = json.loads(reference_file.read_text())
    run_id, uri = reference.get("run_id"), reference.get("tracking_uri")
    if not run_id or reference.get("offline") or str(run_id).startswith(OFFLINE_PREFIX) or not _reachable(uri):
        log.warning("the training run of %s is not reachable in MLflow (%s); scores are not added to it",
                    model_dir, uri)
        return None
    mlflow = _mlflow()
    entities = mlflow.entities
    now = _now_ms()
    try:
        _client(uri).log_batch(
            run_id,
            metrics=[entities.Metric(key, float(value), now, 0) for key, value in sorted(scores.items())],
            tags=[entities.RunTag(key, _truncate(str(value), TAG_VALUE_LIMIT, "")) for key, value in
                  sorted((tags or {}).items())])
    except Exception as exc:  # the scores are on disk; MLflow is the comparison view, not the record
        log.warning("adding scores to MLflow run %s at %s failed (%s)", run_id, uri, exc)
        return None
    return run_id


# ---------------------------------------------------------------------------------------------------------------
# Replaying offline records


def sync_offline_record(record_dir: str | Path, tracking_uri: str | None = None) -> str:
    """Replay an offline record into a tracking server; returns the MLflow run id it went to.

    The target is ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the URI the record was meant for. A record
    that began as an online run continues that run where the target has it. What has been replayed is written into
    the record per target, so a second sync sends only what was added since (nothing, for a finished record).
    """
    record = _Record(Path(record_dir))
    if not record.exists():
        raise FileNotFoundError(f"no offline MLflow record at {record.dir} (missing {_RUN_FILE})")
    meta = record.load()
    uri = resolve_tracking_uri(tracking_uri, default=meta.get("tracking_uri") or DEFAULT_TRACKING_URI)
    state = meta.setdefault("synced", {}).get(uri)
    metrics, images, artifacts = record.rows(_METRICS_FILE), record.rows(_IMAGES_FILE), record.artifact_files()
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
    if not _reachable(uri):
        raise ConnectionError(f"no MLflow tracking server answers at {uri}; offline record {record.dir} kept")
    client = _client(uri)
    if state is None:
        run = None
        recorded_id = meta.get("run_id", "")
        if recorded_id and not recorded_id.startswith(OFFLINE_PREFIX):
            run = Tracker._find_run(client, recorded_id)
        if run is None:
            experiment_id = _experiment_id(client, meta["experiment"], uri)
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
    record: _Record,
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
    folders = sorted(path for path in root.iterdir() if (path / _RUN_FILE).is_file()) if root.is_dir() else []
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
