"""Config flattening into MLflow params: dotted keys, every container kind, long values cut visibly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from lama.tracking import CONFIG_ARTIFACT, PARAM_VALUE_LIMIT, flatten_config

# MLflow's SQLite store trips a SQLAlchemy deprecation that is MLflow's to fix, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")


@dataclasses.dataclass
class Loader:
    batch_size: int = 4
    shuffle: bool = True


@dataclasses.dataclass
class Data:
    root: Path = Path("data/sample")
    loader: Loader = dataclasses.field(default_factory=Loader)


def test_flatten_config_gives_dotted_string_params_for_every_container_kind() -> None:
    config = {
        "loss": OmegaConf.create({"kappa": 10, "alpha": 30.0, "mask_interp": "nearest", "beta": "${kappa}"}),
        "data": Data(),
        "masks": {"kinds": ["thin", "thick"], "sizes": (256, 512), "extra": []},
        "seed": None,
        "optim": {},
        "fp": np.float32(0.5),
    }
    assert flatten_config(config) == {
        "loss.kappa": "10",
        "loss.alpha": "30.0",
        "loss.mask_interp": "nearest",
        "loss.beta": "10",
        "data.root": "data/sample",
        "data.loader.batch_size": "4",
        "data.loader.shuffle": "True",
        "masks.kinds.0": "thin",
        "masks.kinds.1": "thick",
        "masks.sizes.0": "256",
        "masks.sizes.1": "512",
        "masks.extra": "[]",
        "seed": "None",
        "optim": "{}",
        "fp": "0.5",
    }
    assert flatten_config(OmegaConf.create({"a": {"b": [1]}})) == {"a.b.0": "1"}
    with pytest.raises(TypeError):
        flatten_config([1, 2])


def test_long_param_values_are_cut_with_a_visible_marker() -> None:
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    assert PARAM_VALUE_LIMIT == MAX_PARAM_VAL_LENGTH
    long = "x" * (PARAM_VALUE_LIMIT + 500)
    flat = flatten_config({"a": {"long": long, "short": "y"}})
    assert len(flat["a.long"]) == PARAM_VALUE_LIMIT
    assert flat["a.long"].startswith("x" * 1000)
    assert "truncated" in flat["a.long"] and CONFIG_ARTIFACT in flat["a.long"]
    assert flat["a.short"] == "y"
    assert flatten_config({"long": long}, max_length=None)["long"] == long
