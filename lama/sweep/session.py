"""Work on a search until it ends, or join one that another process opened: what ``lama sweep`` and the sweep
stage do with a :class:`~lama.sweep.search.Search`, wherever it came from."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna

from lama.config import ConfigError
from lama.sweep.results import finish
from lama.sweep.search import Search, join_search, own_parent_run, work
from lama.sweep.storage import RECORD, heartbeat, open_storage, redact

log = logging.getLogger(__name__)


def run_search(search: Search) -> dict[str, Any]:
    """Work on the search until it ends, then write its results (best weights, summary, plot, loss config) and
    finish its MLflow parent run. A search stopped before its end leaves the parent run KILLED (a stop signal) or
    FAILED (an error, in the results too); this process holds the parent run's lease throughout."""
    if search.tracking is not None and search.lease is None:  # the lease was given back by an earlier run
        own_parent_run(search)
    with _lease_kept(search):
        try:
            plan = work(search)
            return finish(search, plan, search.config.out_dir, search.config.loss_config)
        except BaseException as error:
            _end_parent(search, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
            raise


@contextmanager
def _lease_kept(search: Search) -> Iterator[None]:
    """Send the lease's heartbeats while the block runs, and give the lease back after."""
    if search.lease is None:
        yield
        return
    try:
        with heartbeat(search.storage.storage, search.lease, search.config.heartbeat_interval):
            yield
    finally:
        lease, search.lease = search.lease, None
        try:
            search.storage.release_lease(lease)
        except Exception as error:  # it lapses by itself once its heartbeats stop
            log.warning("giving back the lease on search %s failed: %s", search.name, error)


def _end_parent(search: Search, status: str) -> None:
    if search.tracking is None:
        return
    try:
        parent = search.storage.parent_run()
    except Exception as error:  # the error that stopped the search may be the storage's: that one is reported
        log.warning("the search's MLflow run was left open: its id could not be read (%s)", error)
        return
    if parent is not None:
        search.tracking.end_parent(parent, status)


def join(storage: str, name: str | None, wait: float, poll: float = 1.0) -> Search:
    """Join the search ``name`` in ``storage``, or the only search there when ``name`` is None; either may still be
    on its way (workers are often started before, or with, the ``lama sweep`` that opens it)."""
    if name is None:
        optuna_storage = open_storage(storage, 30, 120)
        deadline = time.monotonic() + wait
        while True:
            summaries = optuna.get_all_study_summaries(optuna_storage, include_best_trial=False)
            names = [summary.study_name for summary in summaries if RECORD in summary.user_attrs]
            if len(names) == 1:
                name = names[0]
                break
            if len(names) > 1 or time.monotonic() > deadline:
                found = ", ".join(names) or "none"
                raise ConfigError(f"{redact(storage)} holds {len(names)} searches ({found}); name one with --name")
            time.sleep(poll)
        wait = max(deadline - time.monotonic(), 1.0)
    return join_search(storage, name, wait)
