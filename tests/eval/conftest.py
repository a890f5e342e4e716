"""Fixtures shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lama import weights
from lama.eval import fid as fid_module
from lama.eval import lpips as lpips_module
from tests.eval import inception_state_dict, vgg16_state_dict


@pytest.fixture
def formula_weights_home(fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$LAMA_HOME holding the fixtures' formula weights under the registry's file names (the 'pretrained' route)."""
    home = tmp_path / "lama-home"
    monkeypatch.setenv("LAMA_HOME", str(home))
    for name, state_dict in ((lpips_module.WEIGHTS_NAME, vgg16_state_dict(fixtures)),
                             (fid_module.WEIGHTS_NAME, inception_state_dict(fixtures))):
        path = weights.weight_path(name)
        path.parent.mkdir(parents=True)
        torch.save(state_dict, path)
    return home
