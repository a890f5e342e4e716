"""Shared test helpers: where the official fixtures live, and skipping cleanly when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The official-code fixtures sit in ../shared beside a developer's checkout and in CI; a user's clone has none.
FIXTURES = Path(os.environ.get("LAMA_FIXTURES", REPO.parent / "shared" / "fixtures"))
FIXTURE_MODELS = ("tiny-biglama", "tiny-lama-regular", "tiny-lama-multidilated")


@pytest.fixture(scope="session")
def fixtures() -> Path:
    if not (FIXTURES / "README.md").is_file():
        pytest.skip(f"official fixtures not found at {FIXTURES} (set LAMA_FIXTURES; they ship beside the repo)")
    return FIXTURES
