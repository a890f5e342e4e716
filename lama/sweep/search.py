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
from lama.sweep.config import COORDINATES, SweepConfig, check_weights
from lama.sweep.interrupt import check, interruptible, protected, stop_on_signals
from lama.sweep.objective import Objective, TrainingObjective, TrialContext, closed_form
from lama.sweep.plan import Plan, SearchSpec, StageId, make_plan, setting_key
from lama.sweep.storage import ERROR, TRANSIENT, SearchStorage, heartbeat, open_storage, redact
from lama.sweep.tracking import PARENT_TAG, SweepTracking
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
    if search.tracking is not None:
        with protected():  # a parent run not stored with the search would be orphaned, and another one made
            parent = search.storage.parent_run()
            if parent is None:
                parent = search.tracking.start_parent(
                    name, {"sweep": config.identity(), "initial": initial, "run": run},
                    {"optuna.storage": redact(storage_url), "optuna.study": name})
                search.storage.set_parent_run(parent)
            else:
                search.tracking.reopen_parent(parent)
    log.info("search %s in %s", name, redact(storage_url))
    return search


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
    waiting_for = None
    with stop_on_signals():
        while True:
            check()
            plan = search.plan()
            if plan.finished:
                log.info("search %s ended: %s", search.name, plan.reason)
                return plan
            stage = plan.current
            with protected():  # from the claim to the recorded outcome, only the objective may be cut short
                claimed = search.storage.claim(stage, worker)
                if claimed is not None:
                    waiting_for = None
                    run_trial(search, objective, *claimed, stage.id, worker)
                    continue
            if waiting_for != stage.id:
                log.info("stage %s: waiting for %d running trial(s) of other workers", stage.id.label,
                         search.storage.running(stage.id))
                waiting_for = stage.id
            with interruptible():
                time.sleep(search.config.poll_seconds)


def run_trial(search: Search, objective: Objective, trial: optuna.trial.Trial, trial_id: int, stage_id: StageId,
              worker: str) -> None:
    """Evaluate one claimed trial and record its outcome; call it inside :func:`protected` (``work`` does)."""
    weights = {name: float(trial.params[name]) for name in COORDINATES}
    key = setting_key(weights)
    parent = search.storage.parent_run() if search.tracking is not None else None
    tags = {"lama.sweep": search.name, "optuna.study": search.storage.stage_name(stage_id),
            "optuna.trial": str(trial.number), "sweep.stage": stage_id.label, "sweep.setting": key,
            "sweep.worker": worker, **({PARENT_TAG: parent} if parent else {})}
    context = TrialContext(trial, weights, key, stage_id, search.name, tags)
    study = search.storage.study(stage_id)
    log.info("trial %s #%d: %s", stage_id.label, trial.number, key)
    outcome, value = "failed", None
    try:
        with interruptible(), heartbeat(search.storage.storage, trial_id, search.config.heartbeat_interval):
            value = float(objective(context))
        outcome = "complete"
        study.tell(trial, value)
    except optuna.TrialPruned as reason:
        outcome = "pruned"
        trial.set_user_attr("lama.pruned", str(reason) or "pruned")
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    except BaseException as error:
        reason = f"{type(error).__name__}: {error}"[:1000]
        trial.set_user_attr(ERROR, reason)
        if isinstance(error, ENVIRONMENT):
            outcome = "interrupted"
            trial.set_user_attr(TRANSIENT, True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if outcome == "interrupted":
            log.warning("trial %s #%d interrupted (%s); it runs again when the search resumes", stage_id.label,
                        trial.number, reason)
            raise
        given_up = search.storage.given_up(stage_id).get(key)
        if given_up is None:
            log.warning("trial %s #%d failed (%s); it will be retried", stage_id.label, trial.number, reason)
        else:
            log.error("trial %s #%d failed (%s); setting %s is given up after %d failures", stage_id.label,
                      trial.number, reason, key, given_up.failures)
    finally:
        if search.tracking is not None:
            # After a stop signal, a second one may cut the MLflow bookkeeping short; the storage has the outcome.
            with interruptible(check_first=False) if outcome == "interrupted" else nullcontext():
                search.tracking.record_trial(context.run_id, f"{search.name}/{stage_id.label}/{trial.number}",
                                             tags, {name: weights[name] for name in COORDINATES}, outcome, value,
                                             search.config.metric if search.config.objective == "training"
                                             else "closed-form")
    log.info("trial %s #%d: %s%s", stage_id.label, trial.number, outcome,
             f" {value:.6g}" if value is not None else "")


def make_objective(search: Search) -> Objective:
    if search.config.objective == "closed-form":
        return closed_form(search.config)
    return TrainingObjective(search.base, search.config, search.config.trials_dir)

