"""Shared fixtures and helpers of the MLflow tracking tests.

Everything is read back with ``mlflow.MlflowClient`` directly, never through the code under test.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

FALLBACK = "recorded in"  # the words of the one warning a fallback gives


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "RANK", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_STAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the whole module: creating its schema costs more than all the runs in it."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def client(store: str):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        yield mlflow.MlflowClient(tracking_uri=store)


def history(client, run_id: str, key: str) -> list[tuple[int, float, int]]:
    return sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, key))


def artifact_paths(client, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found.extend(artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return found


def model_dir(root: Path) -> Path:
    directory = root / "model"
    (directory / "models").mkdir(parents=True)
    (directory / "models" / "best.ckpt").write_bytes(b"\0" * 1000)
    (directory / "config.yaml").write_text("generator: {}\n")
    return directory


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The fallback warnings logged by the tracking package (``lama.tracking`` and its modules)."""
    return [
        r.getMessage()
        for r in caplog.records
        if (r.name == "lama.tracking" or r.name.startswith("lama.tracking.")) and FALLBACK in r.getMessage()
    ]
