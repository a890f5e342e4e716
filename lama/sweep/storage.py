"""The search in an Optuna RDB storage: one root study holding the search's definition, one study per stage.

Claiming a setting is creating a RUNNING trial that carries it: Optuna creates trials one at a time per study
(a row lock on PostgreSQL, the single writer of SQLite), and the numbers follow that order. After creating its
trial a worker reads the study again and gives way to an earlier live trial of the same setting, so two workers
never both evaluate one setting (``study.enqueue_trial`` and ``GridSampler`` do not promise that under
concurrency). Running trials send heartbeats; a trial whose worker died is failed after ``grace_period`` and its
setting is claimed again.

A failed trial counts against its setting, which is given up after ``max_retries`` retries (the results name it
with its last error), unless the failure was the environment's: a stop signal, missing data or weights, a bad
configuration (see ``ENVIRONMENT`` in :mod:`lama.sweep.search`). Optuna has no state for such a trial, so it is
stored FAIL with the user attribute ``lama.transient`` set; the tally skips it, and the setting is claimed again
as if that trial had never run. A trial whose worker died without a word (a SIGKILL, the OOM killer) does count:
the setting itself may be what kills its workers.

The process that owns the search's MLflow parent run (``lama sweep``, not ``--worker``) holds a lease on it: a
RUNNING trial of the root study, with heartbeats like any trial, so that a worker can tell an owner that died
without a word from a live one (see :mod:`lama.sweep.tracking`).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from lama.config import ConfigError, first_difference
from lama.sweep.config import COORDINATES
from lama.sweep.interrupt import interruptible
from lama.sweep.plan import Outcomes, Stage, StageId, Weights, setting_key

log = logging.getLogger(__name__)

RECORD = "lama.sweep"  # the root study's user attribute holding the search's definition
PARENT_RUN = "lama.sweep.parent_run"
KEY, WORKER, DUPLICATE, ERROR = "lama.setting", "lama.worker", "lama.duplicate", "lama.error"
TRANSIENT = "lama.transient"  # the trial was stopped by its environment: it does not count against its setting
SILENT_DEATH = "its worker stopped sending heartbeats"  # the error of a stale trial, which has none of its own
# The weights as trial params, so optuna-dashboard and Optuna's plots show them.
WEIGHT_DISTRIBUTION = FloatDistribution(0.0, 1e12)


def open_storage(url: str, heartbeat_interval: int, grace_period: int) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats; SQLite waits for its lock instead of failing under several writers."""
    engine: dict[str, Any] = {"connect_args": {"timeout": 300}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    # Heartbeats are "experimental" in Optuna since 2.9; they are what marks a dead worker's trial failed.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module="optuna")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module="lama.sweep")
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_interval,
                                              grace_period=grace_period)
        except Exception:  # workers starting together on an empty database race to create its tables and types
            if attempt == 4:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def redact(url: str) -> str:
    """The storage URL without its password, for logs and MLflow."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: the storage itself will say so
        return url


@dataclass(frozen=True)
class GivenUp:
    """A setting that failed more than ``max_retries`` times: how often, and its last error."""

    failures: int
    error: str


class Tally:
    """A stage's trials by setting: the ended ones (value, None when pruned), the running ones (and their workers),
    the failure counts and last errors. Trials that gave way to an earlier claim of their setting, and trials
    stopped by their environment, do not count."""

    def __init__(self, trials: list[FrozenTrial]) -> None:
        self.ended: Outcomes = {}
        self.running: set[str] = set()
        self.running_workers: set[str] = set()
        self.failures: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        for trial in trials:
            key = trial.user_attrs.get(KEY)
            if key is None or trial.user_attrs.get(DUPLICATE):
                continue
            if trial.state == TrialState.COMPLETE:
                self.ended[key] = trial.value
            elif trial.state == TrialState.PRUNED:
                self.ended.setdefault(key, None)
            elif trial.state == TrialState.FAIL and not trial.user_attrs.get(TRANSIENT):
                self.failures[key] = self.failures.get(key, 0) + 1
                self.errors[key] = trial.user_attrs.get(ERROR, SILENT_DEATH)
            elif trial.state == TrialState.RUNNING:
                self.running.add(key)
                self.running_workers.add(trial.user_attrs.get(WORKER, ""))

    def given_up(self, max_retries: int) -> dict[str, GivenUp]:
        return {key: GivenUp(count, self.errors[key]) for key, count in self.failures.items()
                if key not in self.ended and key not in self.running and count > max_retries}


class SearchStorage:
    """The studies of one search named ``name``."""

    def __init__(self, storage: optuna.storages.RDBStorage, name: str, maximize: bool, max_retries: int = 2,
                 pruner: optuna.pruners.BasePruner | None = None) -> None:
        self.storage, self.name, self.maximize, self.max_retries = storage, name, maximize, max_retries
        self.pruner = pruner or optuna.pruners.NopPruner()
        self._studies: dict[StageId, optuna.Study] = {}

    # -- the root study: the search's definition --

    def create(self, record: dict[str, Any]) -> dict[str, Any]:
        """Create the search, or return the stored definition when it exists with the same identity. A stop
        signal does not come between the study and its definition (see :mod:`lama.sweep.interrupt`): a study
        without one could not be resumed."""
        try:
            study = optuna.create_study(storage=self.storage, study_name=self.name)
        except optuna.exceptions.DuplicatedStudyError:
            stored = self.wait_for_record(timeout=60)
            if stored["identity"] != record["identity"]:
                key, old, new = first_difference(stored["identity"], record["identity"])
                raise ConfigError(f"search {self.name!r} in {redact(self.storage.url)} was started with other "
                                  f"settings ({key}: {old!r} stored, {new!r} now); choose another sweep.name or "
                                  "leave it null") from None
            return stored
        study.set_user_attr(RECORD, record)
        return record

    def record(self) -> dict[str, Any] | None:
        try:
            study = optuna.load_study(study_name=self.name, storage=self.storage)
        except KeyError:
            return None
        return study.user_attrs.get(RECORD)

    def wait_for_record(self, timeout: float, poll: float = 1.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self.record()
            if record is not None:
                return record
            if time.monotonic() > deadline:
                raise ConfigError(f"no search named {self.name!r} in {redact(self.storage.url)} after {timeout:.0f} s;"
                                  " start it with 'lama sweep' (workers join with --worker)")
            with interruptible():
                time.sleep(poll)

    def set_parent_run(self, run_id: str) -> None:
        optuna.load_study(study_name=self.name, storage=self.storage).set_user_attr(PARENT_RUN, run_id)

    def parent_run(self) -> str | None:
        return optuna.load_study(study_name=self.name, storage=self.storage).user_attrs.get(PARENT_RUN)

    # -- stage studies --

    def stage_name(self, stage: StageId) -> str:
        return f"{self.name}/{stage.label}"

    def study(self, stage: StageId, create: bool = True) -> optuna.Study | None:
        if stage not in self._studies:
            direction = "maximize" if self.maximize else "minimize"
            try:
                self._studies[stage] = optuna.load_study(study_name=self.stage_name(stage), storage=self.storage,
                                                         pruner=self.pruner)
            except KeyError:
                if not create:
                    return None
                self._studies[stage] = optuna.create_study(storage=self.storage, study_name=self.stage_name(stage),
                                                           direction=direction, pruner=self.pruner,
                                                           load_if_exists=True)
        return self._studies[stage]

    def trials(self, stage: StageId) -> list[FrozenTrial]:
        study = self.study(stage, create=False)
        return [] if study is None else study.get_trials(deepcopy=False)

    def outcomes(self, stage: StageId) -> Outcomes:
        """The settings of ``stage`` that ended: their value, or None when pruned or given up."""
        tally = self.tally(stage)
        return {**tally.ended, **dict.fromkeys(tally.given_up(self.max_retries))}

    def tally(self, stage: StageId) -> Tally:
        return Tally(self.trials(stage))

    def given_up(self, stage: StageId) -> dict[str, GivenUp]:
        """The settings of ``stage`` that failed more than ``max_retries`` times."""
        return self.tally(stage).given_up(self.max_retries)

    def claim(self, stage: Stage, worker: str) -> tuple[optuna.trial.Trial, int] | None:
        """A RUNNING trial (and its id) for a setting of ``stage`` that nobody evaluates; None when none is free."""
        study = self.study(stage.id)
        optuna.storages.fail_stale_trials(study)
        tally = Tally(study.get_trials(deepcopy=False))
        given_up = tally.given_up(self.max_retries)
        free = [weights for weights in stage.todo if setting_key(weights) not in tally.ended
                and setting_key(weights) not in tally.running and setting_key(weights) not in given_up]
        if not free:
            return None
        weights = free[0]
        trial_id = self._create_trial(study, weights, stage, worker)
        if self._has_precedent(study, trial_id, setting_key(weights)):
            self.storage.set_trial_user_attr(trial_id, DUPLICATE, True)
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
            log.info("another worker claimed %s first; looking again", setting_key(weights))
            return self.claim(stage, worker)
        return optuna.trial.Trial(study, trial_id), trial_id

    def _create_trial(self, study: optuna.Study, weights: Weights, stage: Stage, worker: str) -> int:
        template = optuna.trial.create_trial(
            state=TrialState.RUNNING, params={name: weights[name] for name in COORDINATES},
            distributions={name: WEIGHT_DISTRIBUTION for name in COORDINATES},
            user_attrs={KEY: setting_key(weights), WORKER: worker, "lama.stage": stage.id.label})
        study_id = self.storage.get_study_id_from_name(study.study_name)
        trial_id = self.storage.create_new_trial(study_id, template_trial=template)
        self.storage.record_heartbeat(trial_id)
        return trial_id

    def _has_precedent(self, study: optuna.Study, trial_id: int, key: str) -> bool:
        """Whether a trial created before ours (or already ended) holds the same setting."""
        number = self.storage.get_trial_number_from_id(trial_id)
        for trial in study.get_trials(deepcopy=False):
            if trial.number == number or trial.user_attrs.get(KEY) != key or trial.user_attrs.get(DUPLICATE):
                continue
            if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
                return True
            if trial.state == TrialState.RUNNING and trial.number < number:
                return True
        return False

    def running(self, stage: StageId) -> int:
        return sum(1 for t in self.trials(stage) if t.state == TrialState.RUNNING)

    def all_trials(self, stages: list[StageId]) -> Iterator[tuple[StageId, FrozenTrial]]:
        for stage in stages:
            for trial in self.trials(stage):
                yield stage, trial

    def live_trials(self) -> set[tuple[str, str]]:
        """(stage study, trial number) of every trial of the search that is still running, once the trials whose
        heartbeats stopped are failed."""
        live = set()
        for name in optuna.get_all_study_names(self.storage):
            if name.startswith(f"{self.name}/"):
                study = optuna.load_study(study_name=name, storage=self.storage)
                optuna.storages.fail_stale_trials(study)
                live |= {(name, str(trial.number)) for trial in study.get_trials(deepcopy=False)
                         if trial.state == TrialState.RUNNING}
        return live

    # -- the lease on the MLflow parent run: a trial of the root study --

    def take_lease(self, worker: str) -> int:
        """A RUNNING trial of the root study that stands for the process owning the search's MLflow parent run.
        Kept alive by :func:`heartbeat` and failed when its heartbeats stop, as a trial is, it tells the other
        processes whether the parent run's owner is still there."""
        study_id = self.storage.get_study_id_from_name(self.name)
        template = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={WORKER: worker})
        trial_id = self.storage.create_new_trial(study_id, template_trial=template)
        self.storage.record_heartbeat(trial_id)
        return trial_id

    def release_lease(self, lease: int) -> None:
        """End the lease: COMPLETE, its value the seconds it was held."""
        started = self.storage.get_trial(lease).datetime_start
        held = (datetime.now() - started).total_seconds() if started else 0.0
        self.storage.set_trial_state_values(lease, TrialState.COMPLETE, [held])

    def owner_alive(self) -> bool:
        """Whether a process holds a live lease on the parent run (leases whose heartbeats stopped are failed)."""
        study = optuna.load_study(study_name=self.name, storage=self.storage)
        optuna.storages.fail_stale_trials(study)
        return any(trial.state == TrialState.RUNNING for trial in study.get_trials(deepcopy=False))


@contextmanager
def heartbeat(storage: optuna.storages.RDBStorage, trial_id: int, interval: float) -> Iterator[None]:
    """Record the trial's heartbeat every ``interval`` seconds while the block runs (Optuna does this only inside
    ``study.optimize``, which the search does not use)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                storage.record_heartbeat(trial_id)
            except Exception as error:  # a lost beat is harmless; a dead worker is what the beats detect
                log.warning("heartbeat of trial %d failed: %s", trial_id, error)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

