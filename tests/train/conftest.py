"""A tiny prepared dataset, a val mask set and a tiny model config shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lama.data.prepare import PrepareConfig, prepare
from lama.masks import build_eval_mask_set

REPO = Path(__file__).resolve().parents[2]

# The tiny generator of the shipped CPU example (94k parameters), so the example's section stays valid too.
TINY_GENERATOR = OmegaConf.to_container(OmegaConf.load(REPO / "examples" / "train-cpu.yaml").generator)


@pytest.fixture(scope="session")
def embedded_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("embedded")
    prepare(PrepareConfig(source="embedded", eval_sizes=[256], shard_size=60), root / "data", progress=False)
    build_eval_mask_set("thick_256", root / "data" / "val" / "256", root / "val", progress=False)
    return root


def tiny_config(prepared: Path, out_dir: Path, **sections: dict) -> dict:
    """A run config (as a ``base`` mapping) that trains a 94k-parameter generator on 64² crops."""
    config = {
        "generator": TINY_GENERATOR,
        "discriminator": {"ndf": 8, "n_layers": 3},
        "loss": {"hrf_weights": "stand-in"},
        "data": {"train": str(prepared / "data"), "val": str(prepared / "val"), "val_limit": 2,
                 "loader": {"batch_size": 2, "num_workers": 0, "crop_size": 64, "augment": "no_augs"}},
        "train": {"steps": 4, "out_dir": str(out_dir), "save_every": 2, "val_every": 2, "log_every": 1,
                  "sample_every": 2, "eval_weights": "stand-in", "progress": False},
        "tracking": {"uri": f"sqlite:///{out_dir.parent / 'mlflow.db'}", "system_metrics": False},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config
