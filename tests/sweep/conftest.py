"""Storage for the search tests: SQLite in a temp dir, and PostgreSQL where a server can be started here."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lama.signals import STOP_SIGNALS
from lama.sweep.config import PAPER_WEIGHTS, SweepConfig
from lama.sweep.storage import DUPLICATE

# A closed-form search small enough for seconds: two coordinates, three points, a beam of one.
QUICK = {"objective": "closed-form", "coordinates": ["kappa", "gamma"], "grid_points": 3, "beam_width": 1,
         "max_rounds": 3, "steps": 4, "val_every": 2, "pruner": "none", "heartbeat_interval": 1,
         "grace_period": 3, "poll_seconds": 0.2}
START = {"kappa": 1.0, "alpha": 30.0, "beta": 100.0, "gamma": 0.01}
OPTIMUM = {**START, "kappa": PAPER_WEIGHTS["kappa"], "gamma": PAPER_WEIGHTS["gamma"]}


def quick_config(tmp_path: Path, **values) -> SweepConfig:
    return SweepConfig(**{**QUICK, "out_dir": str(tmp_path / "reports"), "loss_config": str(tmp_path / "swept.yaml"),
                          "trials_dir": str(tmp_path / "trials"), **values})


def quick_base(tmp_path: Path) -> dict:
    return {"loss": dict(START), "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "sweep"}}


def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def mlflow_runs(tmp_path: Path) -> list:
    """Every MLflow run of the quick searches' experiment, in the store of ``quick_base``."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("sweep").experiment_id])


def ended_trials(search) -> list:
    """The search's finished trials, without the copies a duplicate claim left."""
    plan = search.plan()
    return [trial for _, trial in search.storage.all_trials([stage.id for stage in plan.stages])
            if not trial.user_attrs.get(DUPLICATE)]


@pytest.fixture
def unhandled_signals_fail() -> Iterator[None]:
    """A stop signal that the code under test leaves to the previous handler fails the test instead of ending
    pytest (SIGTERM's default) or the whole session (SIGINT's KeyboardInterrupt)."""

    def unhandled(signum: int, _frame: object) -> None:
        raise AssertionError(f"{signal.Signals(signum).name} reached the handler outside the sweep")

    previous = {sig: signal.signal(sig, unhandled) for sig in STOP_SIGNALS}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _postgres_binaries() -> tuple[str, str] | None:
    for folder in [os.path.dirname(shutil.which("initdb") or ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"))]:
        if folder and os.path.exists(os.path.join(folder, "initdb")) and os.path.exists(os.path.join(folder, "pg_ctl")):
            return os.path.join(folder, "initdb"), os.path.join(folder, "pg_ctl")
    return None


def _start_postgres() -> tuple[str, list[str], str] | str:
    """(url, stop command, data dir), or why no server could be started."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed"
    binaries = _postgres_binaries()
    if binaries is None:
        return "no initdb/pg_ctl (Debian package postgresql)"
    initdb, pg_ctl = binaries
    as_user: list[str] = []
    data = tempfile.mkdtemp(prefix="lama-pg-")  # not under pytest's 0700 tmp root: the server user must reach it
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            return "running as root without runuser"
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    steps = [[initdb, "-D", f"{data}/db", "-U", "lama", "--auth=trust", "-E", "UTF8"],
             [pg_ctl, "-D", f"{data}/db", "-l", f"{data}/log", "-w", "-t", "60", "-o",
              f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"]]
    for step in steps:
        done = subprocess.run(as_user + step, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            return f"{Path(step[0]).name} failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return (f"postgresql+psycopg2://lama@127.0.0.1:{port}/postgres",
            [*as_user, pg_ctl, "-D", f"{data}/db", "-m", "fast", "-w", "stop"], data)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A throw-away PostgreSQL server's URL, or None (SQLite then) unless $LAMA_REQUIRE_POSTGRES is set (CI)."""
    started = _start_postgres()
    if isinstance(started, str):
        if os.environ.get("LAMA_REQUIRE_POSTGRES"):
            pytest.fail(f"LAMA_REQUIRE_POSTGRES is set but no PostgreSQL server could be started: {started}")
        yield None
        return
    url, stop, data = started
    yield url
    subprocess.run(stop, capture_output=True)
    shutil.rmtree(data, ignore_errors=True)
