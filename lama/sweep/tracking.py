"""The search in MLflow: one parent run, one child run per trial, across processes and hosts.

Trials run in other processes than the one that opened the parent run (``lama sweep --worker``), so the nesting
is the ``mlflow.parentRunId`` tag set on each child from the id stored with the search; Optuna's MLflowCallback
would neither create the parent nor reuse the training's own run. A training trial's child run is the training's
run itself; the search adds the four weights, the objective and the outcome to it. For other objectives the search
starts the child run when the trial starts.

Every run ends in a final state: a trial's run by its outcome (``STATUS``), the parent FINISHED once the results
are written, KILLED by a stop signal, FAILED by an error. A process killed without a word (SIGKILL, the OOM killer)
leaves its runs RUNNING; the next process that opens or joins the search ends them KILLED (``end_orphans``) once the
storage says their process is gone: a trial's heartbeats stopped, or the parent's owner lost its lease (see
:mod:`lama.sweep.storage`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lama.tracking.client import get_or_create_experiment_id, mlflow_client, now_ms
from lama.tracking.flatten import flatten_config
from lama.tracking.runs import runs_with_status

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
SEARCH_TAG = "lama.sweep"  # on the parent and every child run: the search's name
STUDY_TAG, TRIAL_TAG = "optuna.study", "optuna.trial"  # a child run's stage study and trial number
OUTCOME_TAG = "sweep.outcome"
ORPHAN_TAG = "sweep.orphaned"  # set on a run that a later process ended because the one that ran it was gone
RUNNING = "RUNNING"
# A trial's outcome as the status of its run; "interrupted": stopped by its environment, it runs again later.
STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "interrupted": "KILLED"}
ORPHAN_STATUS = "KILLED"


def weight_params(weights: Mapping[str, float]) -> dict[str, str]:
    """A trial's weights as MLflow params, exact (repr) so that they match the storage's."""
    return {name: repr(float(value)) for name, value in weights.items()}


class SweepTracking:
    def __init__(self, uri: str, experiment: str) -> None:
        self.uri, self.experiment = uri, experiment
        self.client = mlflow_client(uri)

    def start_parent(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        experiment_id = get_or_create_experiment_id(self.client, self.experiment, self.uri)
        run = self.client.create_run(experiment_id, run_name=name, tags={SEARCH_TAG: name, **tags})
        self._log(run.info.run_id, params=flatten_config(dict(params)))
        return run.info.run_id

    def reopen_parent(self, run_id: str) -> None:
        self.client.update_run(run_id, status=RUNNING)

    def start_trial(self, run_name: str, tags: Mapping[str, str], weights: Mapping[str, float]) -> str | None:
        """A child run for a trial whose objective makes none, started with the trial so that MLflow shows it
        running; None when MLflow fails (a warning: the storage is the record)."""
        try:
            experiment_id = get_or_create_experiment_id(self.client, self.experiment, self.uri)
            run_id = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
        except Exception as error:
            log.warning("starting the MLflow run of trial %s at %s failed: %s", run_name, self.uri, error)
            return None
        try:
            self._log(run_id, params=weight_params(weights))
        except Exception as error:
            log.warning("logging trial %s to MLflow at %s failed: %s", run_name, self.uri, error)
        return run_id

    def record_trial(self, run_id: str | None, owned: bool, run_name: str, tags: Mapping[str, str],
                     weights: Mapping[str, float], outcome: str, value: float | None,
                     objective_name: str) -> str | None:
        """Log a trial's outcome into its child run (``owned``: one the search started; else the training's, or
        a new one when there is none) and end the run; a failure to log is only a warning, the trial's result is
        in the Optuna storage either way."""
        if run_id is None:
            run_id, owned = self.start_trial(run_name, tags, weights), True
            if run_id is None:
                return None
        metrics = {"objective": value} if value is not None else {}
        try:
            self._log(run_id, params=weight_params(weights), metrics=metrics,
                      tags={**tags, OUTCOME_TAG: outcome, "sweep.objective": objective_name})
        except Exception as error:  # MLflow is the comparison view; the storage is the record
            log.warning("logging trial %s to MLflow at %s failed: %s", run_name, self.uri, error)
        self._end_trial(run_id, run_name, outcome, owned)
        return run_id

    def _end_trial(self, run_id: str, run_name: str, outcome: str, owned: bool) -> None:
        """End the runs the search made, an interrupted training's run (a signal may have come before the training
        could end it), and a training's run that is somehow still RUNNING."""
        try:
            if owned or outcome == "interrupted" or self.client.get_run(run_id).info.status == RUNNING:
                self.client.set_terminated(run_id, STATUS[outcome])
        except Exception as error:
            log.warning("ending the MLflow run of trial %s at %s failed: %s", run_name, self.uri, error)

    def end_orphans(self, search: str, live_trials: set[tuple[str, str]], parent: str | None) -> list[str]:
        """End (``ORPHAN_STATUS``) the runs of ``search`` still RUNNING whose process is gone: the trial runs whose
        (stage study, trial number) is not in ``live_trials``, and the run ``parent`` if one is given. Returns
        the ids of the runs it ended; a run MLflow fails to end is a warning."""
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return []
        ended = []
        for run in runs_with_status(self.client, [experiment.experiment_id], RUNNING):
            tags = run.data.tags
            if tags.get(SEARCH_TAG) != search:
                continue
            trial = (tags.get(STUDY_TAG), tags.get(TRIAL_TAG))
            orphaned = run.info.run_id == parent if trial[1] is None else trial not in live_trials
            if orphaned and self._end_orphan(run.info.run_id):
                ended.append(run.info.run_id)
        return ended

    def _end_orphan(self, run_id: str) -> bool:
        try:
            self.client.set_tag(run_id, ORPHAN_TAG, "true")
            self.client.set_terminated(run_id, ORPHAN_STATUS)
        except Exception as error:
            log.warning("ending the orphaned MLflow run %s at %s failed: %s", run_id, self.uri, error)
            return False
        return True

    def finish_parent(self, run_id: str, params: Mapping[str, Any], trajectory: list[tuple[float, float]],
                      tags: Mapping[str, str], artifacts: str | None) -> None:
        """The search's outcome: best weights as params, each trial's objective and the running best as metric
        series (step = trial in order of completion), the report files as artifacts."""
        metrics = [("objective", value, step) for step, (value, _) in enumerate(trajectory)]
        metrics += [("best_objective", best, step) for step, (_, best) in enumerate(trajectory)]
        from mlflow.entities import Metric

        now = now_ms()
        for start in range(0, len(metrics), 900):  # MLflow takes at most 1000 metrics per batch
            batch = metrics[start:start + 900]
            self.client.log_batch(run_id, metrics=[Metric(key, float(v), now, step) for key, v, step in batch])
        self._log(run_id, params=flatten_config(dict(params)), tags=tags)
        if artifacts is not None:
            self.client.log_artifacts(run_id, artifacts)
        self.client.set_terminated(run_id, "FINISHED")

    def end_parent(self, run_id: str, status: str) -> None:
        """End the parent run of a search that stopped before its end (KILLED, FAILED); resuming reopens it."""
        try:
            self.client.set_terminated(run_id, status)
        except Exception as error:  # the search's own error, not MLflow's, is what the user must see
            log.warning("ending the search's MLflow run %s at %s failed: %s", run_id, self.uri, error)

    def _log(self, run_id: str, params: Mapping[str, str] | None = None, metrics: Mapping[str, float] | None = None,
             tags: Mapping[str, str] | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        logged = self.client.get_run(run_id).data.params
        now = now_ms()
        self.client.log_batch(
            run_id,
            metrics=[Metric(key, float(value), now, 0) for key, value in (metrics or {}).items()],
            params=[Param(key, str(value)) for key, value in (params or {}).items() if key not in logged],
            tags=[RunTag(key, str(value)) for key, value in (tags or {}).items()])
