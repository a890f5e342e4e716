"""A real, short sweep: each setting trains the tiny generator and is scored on the val set; the best weights
land in a loss config that Hydra composes into params.yaml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
from optuna.trial import TrialState

from lama.pipeline.params import compose_params
from lama.sweep.config import SweepConfig
from lama.sweep.objective import slug
from lama.sweep.search import start_search
from lama.sweep.session import run_search
from lama.sweep.storage import KEY
from lama.train.config import load_config
from tests.train.conftest import embedded_data, tiny_config  # noqa: F401 (the fixture)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_a_short_training_sweep_tracks_its_trials_and_writes_weights_the_train_stage_composes(tmp_path,
                                                                                             embedded_data):  # noqa: F811
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    base = load_config(base=tiny_config(embedded_data, tmp_path / "base", train={"sample_count": 0})).to_dict()
    config = SweepConfig(coordinates=["kappa", "gamma"], grid_points=3, beam_width=1, max_rounds=1, steps=2,
                         val_every=1, metric="ssim", pruner="median", pruner_startup_trials=1,
                         out_dir=str(tmp_path / "reports"), loss_config=str(configs / "loss" / "swept.yaml"),
                         trials_dir=str(tmp_path / "trials"))
    search = start_search(config, base, "lama", f"sqlite:///{tmp_path / 'optuna.db'}")
    summary = run_search(search)

    trials = [t for _, t in search.storage.all_trials([search.plan().stages[0].id, search.plan().stages[1].id])]
    assert len(trials) == 5  # 3 kappa values around the start, then 2 new gamma values around the best
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 3
    for trial in complete:  # the objective is the trial's own validation SSIM, read back from its training log
        folder = tmp_path / "trials" / search.name / trial.user_attrs["lama.stage"] / slug(trial.user_attrs[KEY])
        log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
        assert [r["val/ssim"] for r in log if "val/ssim" in r][-1] == pytest.approx(trial.value)
        assert not (folder / "models").exists() and not (folder / "state").exists()  # keep_models=false
    best = summary["best"]
    assert best["value"] == max(t.value for t in complete)

    client = mlflow.MlflowClient(base["tracking"]["uri"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parent = [run for run in runs if run.info.run_name == search.name]
    assert len(parent) == 1 and float(parent[0].data.params["best.kappa"]) == best["weights"]["kappa"]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert len(children) == len(trials)
    for child in children:  # the training's own run: its full config, its curves, and the search's numbers
        assert child.data.params["loss.kappa"] == child.data.params["kappa"]
        assert "train/gen/total" in child.data.metrics
        outcome = child.data.tags["sweep.outcome"]
        assert child.info.status == {"complete": "FINISHED", "pruned": "KILLED"}[outcome]
        assert ("objective" in child.data.metrics) == (outcome == "complete")

    params = compose_params(["loss=swept"], configs, tmp_path / "params.yaml")
    assert {name: getattr(params.loss, name) for name in best["weights"]} == best["weights"]
    assert params.loss.mask_interp == "none" and params.loss.l1_known == 10.0  # the rest of loss/lama
