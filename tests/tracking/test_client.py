"""The MLflow client helpers: which tracking store is used."""

from __future__ import annotations

import pytest

from lama import tracking

# MLflow's SQLite store trips a SQLAlchemy deprecation that is MLflow's to fix, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")


def test_the_default_store_is_sqlite_in_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracking.resolve_tracking_uri() == tracking.DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking.resolve_tracking_uri() == "http://tracking:5000"
    assert tracking.resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
