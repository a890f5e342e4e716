"""Every MLflow run of a search ends in a final state, whatever stopped it: FINISHED at the end, KILLED by a stop
signal, FAILED by an error (a trial's own, or the search's); runs that a process killed without a word left
RUNNING are ended KILLED by the next process that opens or joins the search, once their heartbeats stopped."""

from __future__ import annotations

import os
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState

from lama.sweep.objective import closed_form
from lama.sweep.search import join_search, start_search, trial_tags
from lama.sweep.session import run_search
from lama.sweep.storage import heartbeat
from lama.sweep.tracking import ORPHAN_TAG, PARENT_TAG
from tests.sweep.conftest import ended_trials, mlflow_runs, quick_base, quick_config, storage_url

DOOMED = "kappa=0.1,alpha=30,beta=100,gamma=0.01"  # a grid point of the first stage, not on the way to the best


def statuses(tmp_path) -> tuple[list[str], dict[str, str]]:
    """The parent run's status, and each trial run's by its setting (its last trial's, for a retried one)."""
    runs = mlflow_runs(tmp_path)
    parent = [run.info.status for run in runs if PARENT_TAG not in run.data.tags]
    children = {run.data.tags["sweep.setting"]: run.info.status
                for run in sorted(runs, key=lambda run: run.info.start_time) if PARENT_TAG in run.data.tags}
    return parent, children


def leases(search) -> list[TrialState]:
    """The states of the leases on the parent run: the trials of the search's root study."""
    return [trial.state for trial in optuna.load_study(study_name=search.name, storage=search.storage.storage).trials]


def open_quick(tmp_path, **values):
    return start_search(quick_config(tmp_path, **values), quick_base(tmp_path), "lama", storage_url(tmp_path))


def test_after_a_sweep_the_parent_and_every_trial_run_are_finished_and_the_lease_given_back(tmp_path):
    search = open_quick(tmp_path)
    assert leases(search) == [TrialState.RUNNING]
    run_search(search)
    parent, children = statuses(tmp_path)
    assert parent == ["FINISHED"] and len(children) == len(ended_trials(search))
    assert set(children.values()) == {"FINISHED"}
    assert leases(search) == [TrialState.COMPLETE]


def test_a_trial_that_raises_ends_its_run_failed_and_the_search_goes_on(tmp_path, monkeypatch):
    search = open_quick(tmp_path, max_retries=0)
    objective = closed_form(search.config)

    def diverging_at_doomed(context):
        if context.key == DOOMED:
            raise RuntimeError("the generator diverged")
        return objective(context)

    monkeypatch.setattr("lama.sweep.search.make_objective", lambda search: diverging_at_doomed)
    run_search(search)
    parent, children = statuses(tmp_path)
    assert parent == ["FINISHED"] and children.pop(DOOMED) == "FAILED"
    assert children and set(children.values()) == {"FINISHED"}


def test_sigterm_in_the_middle_of_a_sweep_ends_the_parent_and_the_trial_killed(tmp_path, monkeypatch,
                                                                               unhandled_signals_fail):
    search = open_quick(tmp_path)
    objective = closed_form(search.config)
    calls: list[str] = []

    def signalled_in_the_third(context):
        calls.append(context.key)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the signal ends this wait
        return objective(context)

    monkeypatch.setattr("lama.sweep.search.make_objective", lambda search: signalled_in_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_search(search)
    parent, children = statuses(tmp_path)
    assert parent == ["KILLED"] and children.pop(calls[2]) == "KILLED"
    assert len(children) == 2 and set(children.values()) == {"FINISHED"}
    assert leases(search) == [TrialState.COMPLETE]


@pytest.mark.parametrize("error", ["a trial's missing data", "results that cannot be written"])
def test_an_error_that_stops_the_search_ends_the_parent_failed(tmp_path, monkeypatch, error):
    if error == "results that cannot be written":
        (tmp_path / "reports").write_text("a file where the results folder goes")
    search = open_quick(tmp_path)
    objective = closed_form(search.config)

    def data_missing_in_the_second(context):
        if error == "a trial's missing data" and context.trial.number == 1:
            raise FileNotFoundError("data/prepared/train: shard not found")
        return objective(context)

    monkeypatch.setattr("lama.sweep.search.make_objective", lambda search: data_missing_in_the_second)
    with pytest.raises(OSError):
        run_search(search)
    parent, children = statuses(tmp_path)
    assert parent == ["FAILED"] and "RUNNING" not in children.values()
    assert ("KILLED" in children.values()) == (error == "a trial's missing data")  # it runs again on resume


def test_runs_a_killed_sweep_left_running_are_ended_killed_by_the_next_process_once_its_heartbeats_stop(tmp_path):
    search = open_quick(tmp_path)  # heartbeats every second, a grace period of 3 s
    stage = search.plan().current
    trial, trial_id = search.storage.claim(stage, "killed")
    key = trial.user_attrs["lama.setting"]
    run = search.tracking.start_trial("the killed trial", trial_tags(search, stage.id, trial, key, "killed"),
                                      {"kappa": 1.0})
    storage = search.storage.storage
    with heartbeat(storage, search.lease, 1), heartbeat(storage, trial_id, 1):  # the sweep is alive
        join_search(storage_url(tmp_path), search.name, wait=5)
        parent, children = statuses(tmp_path)
        assert parent == ["RUNNING"] and children == {key: "RUNNING"}  # a live process keeps its runs
    time.sleep(4)  # ... then killed with SIGKILL: its heartbeats stop, and the grace period passes

    join_search(storage_url(tmp_path), search.name, wait=5)  # a worker joins
    parent, children = statuses(tmp_path)
    assert parent == ["KILLED"] and children == {key: "KILLED"}
    assert search.tracking.client.get_run(run).data.tags[ORPHAN_TAG] == "true"

    resumed = open_quick(tmp_path)  # the sweep resumes
    run_search(resumed)
    parent, children = statuses(tmp_path)
    assert parent == ["FINISHED"] and "RUNNING" not in children.values()
    assert [run.info.status for run in mlflow_runs(tmp_path) if run.info.run_name == "the killed trial"] == ["KILLED"]
