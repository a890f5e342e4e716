"""Runs by status: a process killed without warning (SIGKILL, the OOM killer) leaves its runs RUNNING, and only a
later process can find and end them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

RUNS_PER_PAGE = 1000


def runs_with_status(client: Any, experiment_ids: list[str], status: str) -> Iterator[Any]:
    """Every run of ``experiment_ids`` whose status is ``status`` (RUNNING, FINISHED, ...), page by page."""
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=f"attributes.status = '{status}'",
                                  max_results=RUNS_PER_PAGE, page_token=token)
        yield from page
        token = page.token
        if not token:
            return
