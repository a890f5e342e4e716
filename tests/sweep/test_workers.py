"""``lama sweep`` processes sharing one storage: two at once (PostgreSQL where a server can be started, else
SQLite), one killed with SIGKILL in the middle of a trial, then rerun, and one stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy.exc
from optuna.trial import TrialState

from lama.pipeline.params import compose_params
from lama.sweep.config import PAPER_WEIGHTS
from lama.sweep.storage import DUPLICATE, KEY, TRANSIENT, WORKER
from lama.sweep.tracking import ORPHAN_TAG
from tests.sweep.conftest import QUICK, START

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
STARTED = re.compile(r"sweep: round (\d+)/\d+ (\w+), trial \d+/\d+ #(\d+) .*: started")


@pytest.fixture(scope="module")
def params_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    compose_params([], REPO / "configs", path)
    return path


def sweep_command(params_file: Path, *extra: str, **values) -> list[str]:
    settings = {**QUICK, **values}
    overrides = [f"sweep.{key}={value}" for key, value in settings.items() if key != "coordinates"]
    overrides += [f"sweep.coordinates=[{','.join(settings['coordinates'])}]"]
    overrides += [f"loss.{name}={value}" for name, value in START.items()]
    return [sys.executable, "-m", "lama", "sweep", "--params", str(params_file), *overrides, *extra]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}


def finished_trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    trials = []
    for summary in optuna.get_all_study_summaries(storage):
        if "/" in summary.study_name:
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            trials += [t for t in study.get_trials() if not t.user_attrs.get(DUPLICATE)]
    return trials


def all_runs(tmp_path: Path) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def trial_runs(runs: list, trial: optuna.trial.FrozenTrial) -> list[str]:
    """The ids of a trial's MLflow runs: one, or none where the trial was stopped before its run started."""
    return [run.info.run_id for run in runs if run.data.tags.get("optuna.trial") == str(trial.number)
            and run.data.tags.get("sweep.stage") == trial.user_attrs["lama.stage"]]


def started_trials(stderr: str) -> set[tuple[str, int]]:
    """(stage, trial number) of every trial a process's progress lines say it started."""
    return {(f"r{match[0]}-{match[1]}", int(match[2])) for match in STARTED.findall(stderr)}


def test_two_workers_share_one_search_without_losing_or_repeating_a_trial(tmp_path, params_file, postgres_url):
    storage = postgres_url or f"sqlite:///{tmp_path / 'optuna.db'}"
    name = f"shared-{tmp_path.name}"
    slow = {"closed_form.seconds_per_step": 0.1, "beam_width": 2}  # trials of ~0.4 s, up to six per stage
    main = subprocess.Popen(sweep_command(params_file, "--storage", storage, "--name", name, **slow), cwd=tmp_path,
                            env=env(), stderr=subprocess.PIPE, text=True)
    worker = subprocess.Popen([sys.executable, "-m", "lama", "sweep", "--worker", "--storage", storage], cwd=tmp_path,
                              env=env(), stderr=subprocess.PIPE, text=True)
    main_err = main.communicate(timeout=300)[1]
    worker_err = worker.communicate(timeout=300)[1]
    assert main.returncode == 0, main_err[-2000:]
    assert worker.returncode == 0, worker_err[-2000:]
    assert "this worker is done" in worker_err

    trials = finished_trials(storage)
    by_stage: dict[str, list[str]] = {}
    for trial in trials:
        assert trial.state == TrialState.COMPLETE, (trial.state, trial.user_attrs)
        by_stage.setdefault(trial.user_attrs["lama.stage"], []).append(trial.user_attrs[KEY])
    for stage, keys in by_stage.items():
        assert len(keys) == len(set(keys)), f"{stage}: a setting was evaluated twice"
    assert len({trial.user_attrs[KEY] for trial in trials}) == len(trials)
    workers = {trial.user_attrs[WORKER] for trial in trials}
    assert len(workers) == 2, f"one worker did everything: {workers}"
    best = (tmp_path / "configs" / "loss" / "swept.yaml").read_text()
    assert f"kappa: {PAPER_WEIGHTS['kappa']!r}" in best and f"gamma: {PAPER_WEIGHTS['gamma']!r}" in best

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parent = [run for run in runs if run.info.run_name == name]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert len(children) == len(trials)
    assert {run.data.tags["sweep.worker"] for run in children} == workers
    assert "RUNNING" not in {run.info.status for run in runs}
    mine, theirs = started_trials(main_err), started_trials(worker_err)  # each process reports its own trials
    assert mine and theirs and not mine & theirs
    assert mine | theirs == {(trial.user_attrs["lama.stage"], trial.number) for trial in trials}
    print(f"storage: {'PostgreSQL' if postgres_url else 'SQLite'}; {len(trials)} trials over {len(workers)} workers")


def test_a_killed_sweep_resumes_and_retries_the_trial_it_was_running(tmp_path, params_file):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    command = sweep_command(params_file, "--storage", storage, "--name", "killed",
                            **{"closed_form.seconds_per_step": 0.15})
    first = subprocess.Popen(command, cwd=tmp_path, env=env(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        assert first.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "no trial was running after two completed"
        trials = finished_trials(storage) if (tmp_path / "optuna.db").exists() else []
        states = [t.state for t in trials]
        if states.count(TrialState.COMPLETE) >= 2 and TrialState.RUNNING in states:
            break
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = {t.number: t for t in finished_trials(storage) if t.user_attrs["lama.stage"] == "r1-kappa"}
    killed = [t for t in finished_trials(storage) if t.state == TrialState.RUNNING]
    assert len(killed) == 1
    runs = all_runs(tmp_path)
    parent, orphan = [run.info.run_id for run in runs if run.info.run_name == "killed"], trial_runs(runs, killed[0])
    assert {*parent, *orphan} <= {run.info.run_id for run in runs if run.info.status == "RUNNING"}

    again = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    trials = finished_trials(storage)
    states = {t.number: t.state for t in trials if t.user_attrs["lama.stage"] == killed[0].user_attrs["lama.stage"]}
    assert states[killed[0].number] == TrialState.FAIL  # marked failed once its heartbeat stopped
    completed = [t.user_attrs[KEY] for t in trials if t.state == TrialState.COMPLETE]
    assert completed.count(killed[0].user_attrs[KEY]) == 1  # retried, once
    assert len(completed) == len(set(completed))  # nothing finished before the kill was evaluated again
    for number, trial in before.items():
        if trial.state == TrialState.COMPLETE:
            assert [t.value for t in trials if t.number == number and t.user_attrs["lama.stage"] == "r1-kappa"] \
                == [trial.value]
    assert "best kappa=10,alpha=30,beta=100,gamma=0.001" in again.stderr
    runs = {run.info.run_id: run for run in all_runs(tmp_path)}
    assert "RUNNING" not in {run.info.status for run in runs.values()}
    assert [(runs[run_id].info.status, runs[run_id].data.tags.get(ORPHAN_TAG)) for run_id in orphan] == \
        [("KILLED", "true")] * len(orphan)
    assert [runs[run_id].info.status for run_id in parent] == ["FINISHED"]


def wait_for_a_running_trial(process: subprocess.Popen, storage: str, database: Path) -> None:
    """Until the sweep has completed a trial and is running the next one."""
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, "the sweep ended before it could be signalled"
        assert time.monotonic() < deadline, "no trial was running after one completed"
        try:
            states = [t.state for t in finished_trials(storage)] if database.exists() else []
        except sqlalchemy.exc.OperationalError:  # the sweep is still creating the tables this reader would create
            states = []
        if TrialState.COMPLETE in states and TrialState.RUNNING in states:
            return
        time.sleep(0.1)


def test_sigterm_to_the_sweeps_process_group_records_the_trial_interrupted_and_exits_143(tmp_path, params_file):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    command = sweep_command(params_file, "--storage", storage, "--name", "stopped",
                            **{"closed_form.seconds_per_step": 0.3})
    first = subprocess.Popen(command, cwd=tmp_path, env=env(), stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # its own process group, as a scheduler's job
    wait_for_a_running_trial(first, storage, tmp_path / "optuna.db")
    os.killpg(first.pid, signal.SIGTERM)
    err = first.communicate(timeout=120)[1]
    assert first.returncode == 128 + signal.SIGTERM, err[-2000:]
    said = [line for line in err.splitlines() if line.startswith("lama sweep:")]
    assert len(said) == 1 and said[0].startswith("lama sweep: interrupted by SIGTERM;") and "Traceback" not in err

    trials = finished_trials(storage)
    assert TrialState.RUNNING not in [t.state for t in trials]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 1 and interrupted[0].user_attrs[TRANSIENT]
    assert all(t.datetime_start <= interrupted[0].datetime_start for t in trials)  # no trial started after it
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parent = [run for run in runs if run.info.run_name == "stopped"]
    assert [run.info.status for run in parent] == ["KILLED"]
    child = [run for run in runs if run.data.tags.get("optuna.trial") == str(interrupted[0].number)
             and run.data.tags.get("sweep.stage") == interrupted[0].user_attrs["lama.stage"]]
    assert [run.info.status for run in child] == ["KILLED"]
    assert "RUNNING" not in {run.info.status for run in runs}

    again = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    completed = [t.user_attrs[KEY] for t in finished_trials(storage) if t.state == TrialState.COMPLETE]
    assert completed.count(interrupted[0].user_attrs[KEY]) == 1 and len(completed) == len(set(completed))
    assert client.get_run(parent[0].info.run_id).info.status == "FINISHED"
    assert "RUNNING" not in {run.info.status for run in all_runs(tmp_path)}
