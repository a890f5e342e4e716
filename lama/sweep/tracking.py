"""The search in MLflow: one parent run, one child run per trial, across processes and hosts.

Trials run in other processes than the one that opened the parent run (``lama sweep --worker``), so the nesting
is the ``mlflow.parentRunId`` tag set on each child from the id stored with the search; Optuna's MLflowCallback
would neither create the parent nor reuse the training's own run. A training trial's child run is the training's
run itself; the search adds the four weights, the objective and the outcome to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lama.tracking.client import get_or_create_experiment_id, mlflow_client, now_ms
from lama.tracking.flatten import flatten_config

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
# A trial's outcome as the status of its run; "interrupted": stopped by its environment, it runs again later.
STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "interrupted": "KILLED"}


class SweepTracking:
    def __init__(self, uri: str, experiment: str) -> None:
        self.uri, self.experiment = uri, experiment
        self.client = mlflow_client(uri)

    def start_parent(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        experiment_id = get_or_create_experiment_id(self.client, self.experiment, self.uri)
        run = self.client.create_run(experiment_id, run_name=name, tags={"lama.sweep": name, **tags})
        self._log(run.info.run_id, params=flatten_config(dict(params)))
        return run.info.run_id

    def reopen_parent(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def record_trial(self, run_id: str | None, run_name: str, tags: Mapping[str, str], weights: Mapping[str, float],
                     outcome: str, value: float | None, objective_name: str) -> str | None:
        """Log a trial into its child run (the training's, or a new one); a failure to log is only a warning, the
        trial's result is in the Optuna storage either way. The search ends the runs it made, and an interrupted
        training's run too (a signal may have come before the training could end it)."""
        try:
            if run_id is None:
                experiment_id = get_or_create_experiment_id(self.client, self.experiment, self.uri)
                run_id = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
                owned = True
            else:
                owned = False
            metrics = {"objective": value} if value is not None else {}
            self._log(run_id, params={name: repr(float(v)) for name, v in weights.items()}, metrics=metrics,
                      tags={**tags, "sweep.outcome": outcome, "sweep.objective": objective_name})
            if owned or outcome == "interrupted":
                self.client.set_terminated(run_id, STATUS[outcome])
        except Exception as error:  # MLflow is the comparison view; the storage is the record
            log.warning("logging trial %s to MLflow at %s failed: %s", run_name, self.uri, error)
        return run_id

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
