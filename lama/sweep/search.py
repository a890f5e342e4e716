"""Open a search (``lama sweep``) or join one (``lama sweep --worker``), and work on it until it ends.

A worker loops: derive the plan from the storage, claim a free setting of the open stage, evaluate it under a
heartbeat, record the outcome in Optuna and MLflow. With nothing to claim it waits for the other workers' trials.

A trial that fails by an error of its environment (``ENVIRONMENT``: a stop signal, missing data or weights, an
unusable configuration) stops the worker, since every other setting would fail alike; the trial is stored as
transient (see :mod:`lama.sweep.storage`) and does not use up a retry of its setting. Any other error fails the
trial, counts against its setting, and the worker goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from omegaconf import OmegaConf

from lama.config import ConfigError
from lama.sweep.config import COORDINATES, SweepConfig, check_weights, objective_name
from lama.sweep.interrupt import check, interruptible, stop_on_signals
from lama.sweep.objective import Objective, TrainingObjective, TrialContext, closed_form
from lama.sweep.plan import Plan, SearchSpec, Stage, StageId, make_plan, setting_key
from lama.sweep.progress import Progress
from lama.sweep.storage import ERROR, TRANSIENT, SearchStorage, heartbeat, open_storage, redact
from lama.sweep.tracking import PARENT_TAG, SEARCH_TAG, STUDY_TAG, TRIAL_TAG, SweepTracking
from lama.train.config import MAXIMISED

log = logging.getLogger(__name__)

# Errors of the environment, not of the setting: a retry cannot help, and every other setting would fail alike, so
# the worker stops instead, and the trial does not count against its setting. OSError covers missing data and
# weights (FileNotFoundError), unreadable or corrupt files, a full disk; KeyboardInterrupt covers the stop
# signals (lama.signals.Interrupted, TrialInterruptedError). A trial's weights are valid by construction, so a
# ConfigError inside a trial is about the run it trains (its data, its paths).
ENVIRONMENT = (ConfigError, OSError, KeyboardInterrupt, SystemExit)


def maximized(config: SweepConfig) -> bool:
    return config.objective == "training" and config.metric in MAXIMISED


def search_name(config: SweepConfig, run: str, identity: dict[str, Any]) -> str:
    """``sweep.name``, or the run's name and a hash of everything that defines the search."""
    if config.name:
        return config.name
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{run}-{digest}"


def spec_of(config: SweepConfig, initial: dict[str, float]) -> SearchSpec:
    return SearchSpec(tuple(config.coordinates), tuple((name, initial[name]) for name in COORDINATES),
                      config.grid_points, config.grid_factor, config.beam_width, config.max_rounds,
                      config.min_improvement, maximized(config))


@dataclass
class Search:
    name: str
    config: SweepConfig
    spec: SearchSpec
    storage: SearchStorage
    base: dict[str, Any]  # the training run config the trials start from
    tracking: SweepTracking | None
    lease: int | None = None  # held by the process that owns the MLflow parent run (see lama.sweep.storage)

    def plan(self) -> Plan:
        return make_plan(self.spec, self.storage.outcomes)


def _pruner(config: SweepConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=config.pruner_startup_trials,
                                       n_warmup_steps=config.pruner_warmup_steps)


def _tracking(base: dict[str, Any]) -> SweepTracking | None:
    tracking = base.get("tracking") or {}
    if not tracking.get("enabled", True):
        return None
    from lama.tracking import resolve_tracking_uri

    return SweepTracking(resolve_tracking_uri(tracking.get("uri")), tracking.get("experiment", "lama"))


def _open(config: SweepConfig, name: str, storage_url: str, initial: dict[str, float],
          base: dict[str, Any]) -> Search:
    storage = open_storage(storage_url, config.heartbeat_interval, config.grace_period)
    searched = SearchStorage(storage, name, maximized(config), config.max_retries, _pruner(config))
    return Search(name, config, spec_of(config, initial), searched, base, _tracking(base))


def start_search(config: SweepConfig, base: dict[str, Any], run: str, storage_url: str) -> Search:
    """Create the search ``config`` describes, or reopen it: the same definition resumes where it stopped."""
    initial = check_weights(base.get("loss", {}), config.coordinates, "loss")
    identity = {"sweep": config.identity(), "initial": initial,
                "training": _training_identity(base) if config.objective == "training" else None}
    name = search_name(config, run, identity)
    search = _open(config, name, storage_url, initial, base)
    record = {"identity": identity, "config": asdict(config), "initial": initial, "base": base, "run": run,
              "storage": redact(storage_url)}
    search.storage.create(record)
    own_parent_run(search)
    end_orphaned_runs(search)
    log.info("search %s in %s", name, redact(storage_url))
    return search


def own_parent_run(search: Search) -> None:
    """Take the lease on the search's MLflow parent run, and start the run or reopen it (a resumed search)."""
    if search.tracking is None:
        return
    record = search.storage.record() or {}
    search.lease = search.storage.take_lease(worker_id())
    parent = search.storage.parent_run()
    if parent is None:
        parent = search.tracking.start_parent(
            search.name, {"sweep": search.config.identity(), "initial": search.spec.start,
                          "run": record.get("run")},
            {"optuna.storage": redact(search.storage.storage.url), STUDY_TAG: search.name})
        search.storage.set_parent_run(parent)
    else:
        search.tracking.reopen_parent(parent)


def end_orphaned_runs(search: Search) -> None:
    """End KILLED the MLflow runs of the search that a process killed without a word left RUNNING: the trial runs
    whose trial no longer runs (its heartbeats stopped), and the parent run when no process holds its lease (a
    process holding the lease, this one, keeps it). A failure is a warning: MLflow is the comparison view."""
    if search.tracking is None:
        return
    try:
        live = search.storage.live_trials()
        parent = search.storage.parent_run()
        owner_gone = parent is not None and search.lease is None and not search.storage.owner_alive()
        orphaned = parent if owner_gone else None
        ended = search.tracking.end_orphans(search.name, live, orphaned)
    except Exception as error:
        log.warning("search %s: ending the MLflow runs of stopped processes failed: %s", search.name, error)
        return
    if ended:
        log.info("search %s: ended %d MLflow run(s) that a stopped process left running", search.name, len(ended))


def join_search(storage_url: str, name: str, wait: float = 300.0) -> Search:
    """Join a search that ``lama sweep`` opened, possibly on another host; its definition comes from the storage."""
    probe = SearchStorage(open_storage(storage_url, 30, 120), name, True)
    record = probe.wait_for_record(timeout=wait)
    stored = OmegaConf.merge(OmegaConf.structured(SweepConfig), record["config"])
    config = OmegaConf.to_object(stored)
    assert isinstance(config, SweepConfig)
    search = _open(config, name, storage_url, record["initial"], record["base"])
    if search.tracking is not None:
        deadline = time.monotonic() + wait
        while search.storage.parent_run() is None and time.monotonic() < deadline:
            with interruptible():
                time.sleep(1)
        end_orphaned_runs(search)
    return search


def _training_identity(base: dict[str, Any]) -> dict[str, Any]:
    """The base training without what differs between hosts or runs of the same search."""
    plain = json.loads(json.dumps(base, default=str))
    for key in ("out_dir", "progress", "resume"):
        plain.get("train", {}).pop(key, None)
    plain.pop("tracking", None)
    return plain


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def work(search: Search, objective: Objective | None = None, worker: str | None = None) -> Plan:
    """Evaluate settings of ``search`` until it ends; returns the final plan. A stop signal raises
    :class:`~lama.signals.Interrupted` once the running trial, if any, is recorded as interrupted;
    an error of the environment (``ENVIRONMENT``) is raised likewise."""
    objective = objective or make_objective(search)
    worker = worker or worker_id()
    progress = Progress(search.storage, search.config, search.spec.maximize, worker)
    waiting_for = None
    with stop_on_signals():
        while True:
            check()
            plan = search.plan()
            if plan.finished:
                progress.finished(plan)
                end_orphaned_runs(search)
                return plan
            stage = plan.current
            progress.stage(plan)
            # From the claim to the recorded outcome only the objective may be cut short (lama.sweep.interrupt).
            claimed = search.storage.claim(stage, worker)
            if claimed is not None:
                waiting_for = None
                run_trial(search, objective, *claimed, stage, worker, progress)
                continue
            if waiting_for != stage.id:
                progress.waiting(stage.id, search.storage.running(stage.id))
                waiting_for = stage.id
            with interruptible():
                time.sleep(search.config.poll_seconds)


def trial_tags(search: Search, stage: StageId, trial: optuna.trial.Trial, key: str, worker: str) -> dict[str, str]:
    """A trial's MLflow tags: where it is in the storage, its setting, its worker and its parent run."""
    parent = search.storage.parent_run() if search.tracking is not None else None
    return {SEARCH_TAG: search.name, STUDY_TAG: search.storage.stage_name(stage), TRIAL_TAG: str(trial.number),
            "sweep.stage": stage.label, "sweep.setting": key, "sweep.worker": worker,
            **({PARENT_TAG: parent} if parent else {})}


def start_trial_run(search: Search, objective: Objective, context: TrialContext) -> bool:
    """Start the trial's MLflow run, unless the objective makes its own (the training does); whether it did."""
    if search.tracking is None or getattr(objective, "makes_own_run", False):
        return False
    context.run_id = search.tracking.start_trial(trial_run_name(search, context), context.tags, context.weights)
    return context.run_id is not None


def trial_run_name(search: Search, context: TrialContext) -> str:
    return f"{search.name}/{context.stage.label}/{context.trial.number}"


def run_trial(search: Search, objective: Objective, trial: optuna.trial.Trial, trial_id: int, stage: Stage,
              worker: str, progress: Progress) -> None:
    """Evaluate one claimed trial and record its outcome; a stop signal cuts only the objective short."""
    weights = {name: float(trial.params[name]) for name in COORDINATES}
    key = setting_key(weights)
    context = TrialContext(trial, weights, key, stage.id, search.name,
                           trial_tags(search, stage.id, trial, key, worker))
    owned = start_trial_run(search, objective, context)
    study = search.storage.study(stage.id)
    line = progress.started(stage, trial.number, weights)
    outcome, value, detail = "failed", None, ""
    try:
        with interruptible(), heartbeat(search.storage.storage, trial_id, search.config.heartbeat_interval):
            value = float(objective(context))
        study.tell(trial, value)
        outcome = "complete"
    except optuna.TrialPruned as reason:
        outcome, detail = "pruned", str(reason) or "pruned"
        trial.set_user_attr("lama.pruned", detail)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    except BaseException as error:
        detail = f"{type(error).__name__}: {error}"[:1000]
        trial.set_user_attr(ERROR, detail)
        if isinstance(error, ENVIRONMENT):
            outcome = "interrupted"
            trial.set_user_attr(TRANSIENT, True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if outcome == "interrupted":
            raise
    finally:
        if search.tracking is not None:
            # After a stop signal, a second one may cut the MLflow bookkeeping short; the storage has the outcome.
            with interruptible(check_first=False) if outcome == "interrupted" else nullcontext():
                search.tracking.record_trial(context.run_id, owned, trial_run_name(search, context), context.tags,
                                             weights, outcome, value, objective_name(search.config))
        progress.ended(line, outcome, value, detail)


def make_objective(search: Search) -> Objective:
    if search.config.objective == "closed-form":
        return closed_form(search.config)
    return TrainingObjective(search.base, search.config, search.config.trials_dir)

