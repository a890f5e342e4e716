"""Shared test helpers: where the official fixtures live, and skipping cleanly when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# The official-code fixtures sit in ../shared beside a developer's checkout and in CI; a user's clone has none.
FIXTURES = Path(os.environ.get("LAMA_FIXTURES", REPO.parent / "shared" / "fixtures"))
FIXTURE_MODELS = ("tiny-biglama", "tiny-lama-regular", "tiny-lama-multidilated")


@pytest.fixture(scope="session")
def fixtures() -> Path:
    if not (FIXTURES / "README.md").is_file():
        pytest.skip(f"official fixtures not found at {FIXTURES} (set LAMA_FIXTURES; they ship beside the repo)")
    return FIXTURES


def pixels(path: Path) -> np.ndarray:
    """An image file's RGB pixels as int16, so that differences do not wrap."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def assert_matches_official(expected_dir: Path, output_dir: Path, input_dir: Path) -> None:
    """Fixture rule: known pixels exact; at most 0.5 % of pixels differ, none by more than 1."""
    expected = sorted(p.relative_to(expected_dir) for p in expected_dir.rglob("*.png"))
    assert expected
    for relative in expected:
        got, ref = pixels(output_dir / relative), pixels(expected_dir / relative)
        assert got.shape == ref.shape, relative
        known = np.asarray(Image.open(input_dir / relative).convert("L")) == 0
        delta = np.abs(got - ref).max(axis=-1)
        assert delta[known].max() == 0, relative
        assert delta.max() <= 1, relative
        assert (delta > 0).mean() <= 0.005, relative
