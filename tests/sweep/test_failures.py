"""Failures of the environment against failures of a setting, and stop signals: a missing file or a signal stops
the worker without using up a retry of the setting it was evaluating; a setting that keeps failing is given up
and reported with its error; a signal records the running trial as interrupted and starts no other."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from lama.cli import main
from lama.signals import Interrupted
from lama.sweep.objective import TrialInterruptedError, closed_form
from lama.sweep.results import finish
from lama.sweep.search import start_search, work
from lama.sweep.session import run_search
from lama.sweep.storage import KEY, TRANSIENT
from tests.sweep.conftest import OPTIMUM, ended_trials, mlflow_runs, quick_base, quick_config, storage_url


def test_a_missing_file_more_often_than_max_retries_does_not_give_the_setting_up(tmp_path):
    config = quick_config(tmp_path, max_retries=1)
    objective = closed_form(config)
    calls: list[str] = []

    def data_missing_three_times(context):
        calls.append(context.key)
        if len(calls) <= 3:
            raise FileNotFoundError("data/prepared/train: shard not found")
        return objective(context)

    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    for attempt in range(3):  # each time the worker stops, and is started again
        with pytest.raises(FileNotFoundError):
            work(search, data_missing_three_times, worker=f"w{attempt}")
    assert calls[:3] == [calls[0]] * 3  # the same setting, claimed again each time
    plan = work(search, data_missing_three_times, worker="w3")  # the data is back
    assert calls[3] == calls[0] and plan.best == (OPTIMUM, 0.0)

    trials = [t for t in ended_trials(search) if t.user_attrs[KEY] == calls[0]]
    assert [t.state for t in trials] == [TrialState.FAIL] * 3 + [TrialState.COMPLETE]
    assert all(t.user_attrs.get(TRANSIENT) for t in trials[:3])
    summary = finish(search, plan, config.out_dir, None)
    first = summary["stages"][0]
    assert calls[0] in first["evaluated"] and first["values"][calls[0]] == trials[-1].value
    assert first["given_up"] == []
    states = [t["state"] for t in summary["trials"] if t["setting"] == calls[0]]
    assert sorted(states) == ["complete", "interrupted", "interrupted", "interrupted"]


def test_a_setting_that_keeps_failing_is_given_up_and_reported_with_its_error(tmp_path):
    config = quick_config(tmp_path, max_retries=1)
    objective = closed_form(config)
    doomed = "kappa=0.1,alpha=30,beta=100,gamma=0.01"  # a grid point of the first stage, not on the way to the best

    def diverging_at_doomed(context):
        if context.key == doomed:
            raise RuntimeError("the generator diverged")
        return objective(context)

    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    plan = work(search, diverging_at_doomed, worker="w1")
    assert plan.best == (OPTIMUM, 0.0)
    failed = [t for t in ended_trials(search) if t.user_attrs[KEY] == doomed]
    assert [t.state for t in failed] == [TrialState.FAIL] * 2 and not any(t.user_attrs.get(TRANSIENT) for t in failed)

    summary = finish(search, plan, config.out_dir, config.loss_config)
    stage = summary["stages"][0]
    assert stage["given_up"] == [{"setting": doomed, "failures": 2, "error": "RuntimeError: the generator diverged"}]
    assert doomed not in stage["evaluated"] and doomed not in stage["values"]  # not a setting evaluated to null
    assert all(doomed not in later["values"] for later in summary["stages"])
    assert json.loads((tmp_path / "reports" / "best.json").read_text())["stages"][0]["given_up"] == stage["given_up"]
    report = (tmp_path / "reports" / "sweep.md").read_text()
    assert f"- r1-kappa `{doomed}`: 2 failures, the last: RuntimeError: the generator diverged" in report
    assert "| r1-kappa | 2 | 0 | 1 |" in report


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_during_a_trial_records_it_interrupted_and_starts_no_other(tmp_path, stop,
                                                                                   unhandled_signals_fail):
    config = quick_config(tmp_path, max_retries=0)  # a counted failure would give the setting up at once
    objective = closed_form(config)
    calls: list[str] = []

    def signalled_in_the_third(context):
        calls.append(context.key)
        if len(calls) == 3:
            os.kill(os.getpid(), stop)
            time.sleep(10)  # the signal ends this wait
        return objective(context)

    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    with pytest.raises(KeyboardInterrupt) as stopped:
        work(search, signalled_in_the_third, worker="w1")
    assert isinstance(stopped.value, Interrupted) and stopped.value.exit_code == 128 + stop
    assert len(calls) == 3  # no trial after the interrupted one
    trials = ended_trials(search)
    assert len(trials) == 3 and all(t.state != TrialState.RUNNING for t in trials)
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.user_attrs[KEY] for t in interrupted] == [calls[2]] and interrupted[0].user_attrs[TRANSIENT]
    assert interrupted[0].user_attrs["lama.error"] == f"Interrupted: interrupted by {signal.Signals(stop).name}"
    child = [run for run in mlflow_runs(tmp_path) if run.data.tags.get("optuna.trial") == str(interrupted[0].number)
             and run.data.tags.get("sweep.stage") == interrupted[0].user_attrs["lama.stage"]]
    assert [(run.info.status, run.data.tags["sweep.outcome"]) for run in child] == [("KILLED", "interrupted")]

    plan = work(search, signalled_in_the_third, worker="w2")  # resumed: the interrupted setting first
    assert calls[3] == calls[2] and plan.best == (OPTIMUM, 0.0)


def test_a_stop_signal_during_a_storage_call_of_the_objective_lets_the_call_finish(tmp_path, monkeypatch,
                                                                                  unhandled_signals_fail):
    """Raised inside SQLAlchemy, the signal could leave a SQLite connection locked and the worker waiting on it
    when it records the trial: it is raised once the intermediate value is stored."""
    config = quick_config(tmp_path, max_retries=0)
    store = optuna.storages.RDBStorage.set_trial_intermediate_value
    calls = []

    def signalled_inside(self, trial_id, step, value):
        calls.append(step)
        if len(calls) == 3:  # the second trial's first report
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100_000):  # bytecode on which Python runs the handler, before the write
                pass
        return store(self, trial_id, step, value)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_intermediate_value", signalled_inside)
    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    with pytest.raises(KeyboardInterrupt) as stopped:
        work(search, closed_form(config), worker="w1")
    assert isinstance(stopped.value, Interrupted) and stopped.value.exit_code == 128 + signal.SIGTERM
    interrupted = [t for t in ended_trials(search) if t.state == TrialState.FAIL]
    assert len(interrupted) == 1 and interrupted[0].user_attrs[TRANSIENT]
    assert list(interrupted[0].intermediate_values) == [calls[2]]  # stored before the worker stopped


def test_a_stop_signal_while_waiting_for_other_workers_stops_the_worker(tmp_path, unhandled_signals_fail):
    config = quick_config(tmp_path, grace_period=60)
    objective = closed_form(config)
    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    search.storage.claim(search.plan().current, "other")  # a live trial of another worker: this one must wait
    calls: list[str] = []

    def signal_soon_after_the_last_free_setting(context):
        calls.append(context.key)
        if len(calls) == 2:
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return objective(context)

    with pytest.raises(KeyboardInterrupt) as stopped:
        work(search, signal_soon_after_the_last_free_setting, worker="w1")
    assert isinstance(stopped.value, Interrupted) and stopped.value.exit_code == 128 + signal.SIGTERM
    mine = [t for t in ended_trials(search) if t.user_attrs["lama.worker"] == "w1"]
    assert len(calls) == 2 and [t.state for t in mine] == [TrialState.COMPLETE] * 2


def test_a_training_stopped_by_a_signal_stops_the_search_and_its_mlflow_runs_end_killed(tmp_path, monkeypatch):
    config = quick_config(tmp_path, max_retries=0)
    objective = closed_form(config)
    calls: list[str] = []

    def training_interrupted_in_the_second(context):  # what TrainingObjective raises after the training saved
        calls.append(context.key)
        if len(calls) == 2:
            raise TrialInterruptedError(128 + signal.SIGTERM)
        return objective(context)

    monkeypatch.setattr("lama.sweep.search.make_objective", lambda search: training_interrupted_in_the_second)
    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    with pytest.raises(KeyboardInterrupt) as stopped:
        run_search(search)
    assert isinstance(stopped.value, Interrupted) and stopped.value.exit_code == 143 and len(calls) == 2
    trial = [t for t in ended_trials(search) if t.state == TrialState.FAIL]
    assert len(trial) == 1 and trial[0].user_attrs[TRANSIENT]
    runs = mlflow_runs(tmp_path)
    parent = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert [run.info.status for run in parent] == ["KILLED"]
    children = sorted((run.data.tags["sweep.outcome"], run.info.status) for run in runs if run not in parent)
    assert children == [("complete", "FINISHED"), ("interrupted", "KILLED")]

    summary = run_search(search)  # resumed: the parent run is reopened and finished
    assert summary["best"]["weights"] == OPTIMUM and calls[2] == calls[1]
    assert [run.info.status for run in mlflow_runs(tmp_path) if "mlflow.parentRunId" not in run.data.tags] \
        == ["FINISHED"]


def test_a_worker_stopped_by_a_signal_says_so_in_one_line_and_exits_128_plus_n(tmp_path, monkeypatch, capsys,
                                                                               unhandled_signals_fail):
    config = quick_config(tmp_path, name="stopped")
    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    objective = closed_form(config)

    def interrupted_at_once(context):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)
        return objective(context)

    monkeypatch.setattr("lama.sweep.search.make_objective", lambda search: interrupted_at_once)
    status = main(["sweep", "--worker", "--storage", storage_url(tmp_path), "--name", "stopped"])
    err = capsys.readouterr().err
    assert status == 128 + signal.SIGINT
    said = [line for line in err.splitlines() if line.startswith("lama sweep:")]
    assert len(said) == 1 and said[0].startswith("lama sweep: interrupted by SIGINT;") and "Traceback" not in err
    trials = ended_trials(search)
    assert len(trials) == 1 and trials[0].user_attrs[TRANSIENT]
