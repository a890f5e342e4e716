"""The search on an Optuna storage, in one process: the optimum, MLflow parent and child runs, the claim rule,
failed trials retried, a resumed search, a changed definition refused, and the results it writes."""

from __future__ import annotations

import json
import math

import mlflow
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lama.config import ConfigError
from lama.sweep.objective import closed_form
from lama.sweep.plan import setting_key
from lama.sweep.results import finish, render_loss_config
from lama.sweep.search import start_search, work
from lama.sweep.storage import KEY, TRANSIENT
from tests.sweep.conftest import OPTIMUM, ended_trials, quick_base, quick_config, storage_url


def test_search_finds_the_optimum_and_tracks_a_parent_with_a_child_per_trial(tmp_path):
    config = quick_config(tmp_path)
    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    plan = work(search, worker="w1")
    assert plan.finished and plan.best == (OPTIMUM, 0.0)
    assert plan.reason == "round 2 brought no improvement"  # kappa 1->10 and gamma 0.01->0.001 in round 1
    trials = ended_trials(search)
    keys = [t.user_attrs[KEY] for t in trials]
    assert len(keys) == len(set(keys)) and all(t.state == TrialState.COMPLETE for t in trials)
    for trial in trials:  # the stored value is the closed form at the stored weights
        assert trial.value == pytest.approx(sum((math.log10(trial.params[n]) - math.log10(OPTIMUM[n])) ** 2
                                                for n in ("kappa", "gamma")))
        assert sorted(trial.intermediate_values) == [2, 4]

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(trials) == len(runs) - 1
    by_trial = {(t.user_attrs["lama.stage"], str(t.number)): t for t in trials}
    for child in children:
        trial = by_trial[(child.data.tags["sweep.stage"], child.data.tags["optuna.trial"])]
        assert {n: float(child.data.params[n]) for n in ("kappa", "alpha", "beta", "gamma")} == trial.params
        assert child.data.metrics["objective"] == pytest.approx(trial.value)
        assert child.info.status == "FINISHED"
    assert parent.info.status == "RUNNING"  # until the search's results are written
    summary = finish(search, plan, config.out_dir, config.loss_config)
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    assert float(parent.data.params["best.kappa"]) == 10.0 and float(parent.data.params["best.gamma"]) == 0.001
    history = client.get_metric_history(parent.info.run_id, "best_objective")
    assert [m.step for m in history] == list(range(len(trials)))
    assert [m.value for m in history] == sorted((m.value for m in history), reverse=True)  # minimised
    assert history[-1].value == 0.0

    best = json.loads((tmp_path / "reports" / "best.json").read_text())
    assert best["best"]["weights"] == OPTIMUM and best == json.loads(json.dumps(summary))
    assert (tmp_path / "reports" / "trajectory.png").stat().st_size > 10_000
    assert "| **best** | 10 | 30 | 100 | 0.001 | 0 |" in (tmp_path / "reports" / "sweep.md").read_text()
    swept = yaml.safe_load((tmp_path / "swept.yaml").read_text())
    assert swept["defaults"] == ["lama", "_self_"]
    assert {n: swept[n] for n in OPTIMUM} == OPTIMUM


def test_pruning_stops_hopeless_trials_early_and_the_optimum_is_still_found(tmp_path):
    config = quick_config(tmp_path, pruner="median", pruner_startup_trials=1, steps=6, val_every=2)
    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    plan = work(search, worker="w1")
    assert plan.best == (OPTIMUM, 0.0)
    trials = ended_trials(search)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "the median pruner gave up no trial"
    for trial in pruned:
        assert max(trial.intermediate_values) < 6  # stopped before the last validation
        completed = [t.value for t in trials if t.state == TrialState.COMPLETE
                     and t.user_attrs["lama.stage"] == trial.user_attrs["lama.stage"]]
        final = sum((math.log10(trial.params[n]) - math.log10(OPTIMUM[n])) ** 2 for n in ("kappa", "gamma"))
        assert final > min(completed)  # only settings worse than one already finished were pruned


def test_a_failed_trial_is_retried_and_a_rerun_resumes_without_repeating_finished_trials(tmp_path):
    config = quick_config(tmp_path)
    objective = closed_form(config)
    calls: list[str] = []

    def crashing_on_the_fourth(context):
        calls.append(context.key)
        if len(calls) == 4:
            raise RuntimeError("out of memory")  # a crash the worker survives: the trial fails, and is retried
        if len(calls) == 6:
            raise KeyboardInterrupt  # the worker itself is stopped
        return objective(context)

    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        work(search, crashing_on_the_fourth, worker="w1")
    assert calls[4] == calls[3]  # the failed setting was claimed again at once
    failed = [t for t in ended_trials(search) if t.state == TrialState.FAIL]
    assert [t.user_attrs["lama.error"] for t in failed] == ["RuntimeError: out of memory", "KeyboardInterrupt: "]
    assert [bool(t.user_attrs.get(TRANSIENT)) for t in failed] == [False, True]  # only the crash counts

    resumed = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    assert resumed.name == search.name
    before = len(calls)
    plan = work(resumed, crashing_on_the_fourth, worker="w2")
    assert plan.best == (OPTIMUM, 0.0)
    assert calls[before] == calls[5]  # the interrupted setting comes first
    completed = [t.user_attrs[KEY] for t in ended_trials(resumed) if t.state == TrialState.COMPLETE]
    assert len(completed) == len(set(completed)) == len(set(calls))
    uninterrupted = start_search(quick_config(tmp_path, name="fresh"), quick_base(tmp_path), "lama",
                                 storage_url(tmp_path))
    assert work(uninterrupted, worker="w3").stages[-1].beam_after == plan.stages[-1].beam_after


def test_a_setting_claimed_twice_at_once_runs_once(tmp_path):
    config = quick_config(tmp_path)
    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    stage = search.plan().current
    study = search.storage.study(stage.id)
    # Two workers created trials for the first free setting at the same moment; neither has checked yet.
    first = search.storage._create_trial(study, stage.todo[0], stage, "w1")
    second = search.storage._create_trial(study, stage.todo[0], stage, "w2")
    assert not search.storage._has_precedent(study, first, setting_key(stage.todo[0]))
    assert search.storage._has_precedent(study, second, setting_key(stage.todo[0]))
    # A third worker skips the running setting and claims the next one.
    _, third = search.storage.claim(stage, "w3")
    assert search.storage.storage.get_trial(third).user_attrs[KEY] == setting_key(stage.todo[1])


def test_a_dead_workers_trial_is_failed_after_the_grace_period_and_claimed_again(tmp_path):
    config = quick_config(tmp_path, max_retries=1)
    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    stage = search.plan().current
    _, abandoned = search.storage.claim(stage, "dead")  # a heartbeat, then silence
    plan = work(search, worker="alive")
    assert plan.best == (OPTIMUM, 0.0)
    trial = search.storage.storage.get_trial(abandoned)
    assert trial.state == TrialState.FAIL
    retried = [t for t in ended_trials(search) if t.user_attrs[KEY] == trial.user_attrs[KEY]
               and t.state == TrialState.COMPLETE]
    assert len(retried) == 1 and retried[0].user_attrs["lama.worker"] == "alive"


def test_a_changed_search_under_the_same_name_is_refused_in_one_line(tmp_path):
    start_search(quick_config(tmp_path, name="mine"), quick_base(tmp_path), "lama", storage_url(tmp_path))
    with pytest.raises(ConfigError) as error:
        start_search(quick_config(tmp_path, name="mine", grid_points=5), quick_base(tmp_path), "lama",
                     storage_url(tmp_path))
    assert str(error.value).startswith("search 'mine' in sqlite:///")
    assert "sweep.grid_points: 3 stored, 5 now" in str(error.value) and "\n" not in str(error.value)
    # Operational keys may change: a resumed search may use another heartbeat or more rounds.
    start_search(quick_config(tmp_path, name="mine", heartbeat_interval=2, max_rounds=9), quick_base(tmp_path),
                 "lama", storage_url(tmp_path))
    assert optuna.load_study(study_name="mine", storage=storage_url(tmp_path)).user_attrs["lama.sweep"]


def test_the_swept_loss_option_carries_the_rest_of_the_searched_runs_loss() -> None:
    """The sample profile searches its offline loss (no HRF term, an L1 on the hole): `-S loss=swept` must keep it,
    not fall back to the paper's loss with the found weights."""
    best = {"kappa": 3.0, "alpha": 0.0, "beta": 30.0, "gamma": 0.01}
    summary = {"search": "lama-x", "objective": "hole_ssim", "reason": "done", "best": {"weights": best, "value": 0.3},
               "base_loss": {"kappa": 10.0, "alpha": 0.0, "beta": 100.0, "gamma": 0.001, "l1_known": 10.0,
                             "l1_missing": 10.0, "mask_interp": "none", "hrf_weights": "stand-in"}}
    swept = yaml.safe_load(render_loss_config(summary))
    assert {name: swept[name] for name in best} == best
    assert (swept["l1_missing"], swept["mask_interp"], swept["hrf_weights"]) == (10.0, "none", "stand-in")
