"""Fixtures shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lama import weights
from lama.eval import fid as fid_module
from lama.eval import lpips as lpips_module
from tests.eval import inception_state_dict, vgg16_state_dict


@pytest.fixture(scope="session")
def formula_weights_cache(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixtures' formula weights under the registry's file names, written once per session (about 150 MB)."""
    home = tmp_path_factory.mktemp("lama-home")
    for entry, state_dict in ((weights.get_entry(lpips_module.WEIGHTS_NAME), vgg16_state_dict(fixtures)),
                              (weights.get_entry(fid_module.WEIGHTS_NAME), inception_state_dict(fixtures))):
        path = home / entry.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state_dict, path)
    return home


@pytest.fixture
def formula_weights_home(formula_weights_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$LAMA_HOME holding the formula weights (the 'pretrained' route)."""
    monkeypatch.setenv("LAMA_HOME", str(formula_weights_cache))
    return formula_weights_cache
