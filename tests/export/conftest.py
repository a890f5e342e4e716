"""Exported files shared by the export tests: each (model, options) pair is exported once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lama.export import ExportOptions, export_model
from lama.models import InpaintingModel, build_generator, generator_config, save_model_dir

Exporter = Callable[..., Path]


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A narrow lama-fourier with random weights and random BatchNorm statistics (so that no norm is an identity)."""
    torch.manual_seed(0)
    config = {**generator_config("lama-fourier"), "ngf": 16, "n_blocks": 2}
    model = InpaintingModel(build_generator(config), config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("random-fourier")
    save_model_dir(model, path)
    return path


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exporter:
    """``exported(model_dir, suffix, **options)``: the file, written on first request."""
    folder = tmp_path_factory.mktemp("exported")
    files: dict[tuple, Path] = {}

    def export(model_dir: Path, suffix: str = ".onnx", **options: str) -> Path:
        key = (str(model_dir), suffix, tuple(sorted(vars(ExportOptions(**options)).items())))  # defaults filled
        if key not in files:
            path = folder / f"{len(files)}{suffix}"
            export_model(model_dir, path, ExportOptions(**options))
            files[key] = path
        return files[key]

    return export
